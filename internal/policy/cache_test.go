package policy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/open-policy-agent/opa/v1/topdown/cache"
)

// TestHTTPSendCacheShared: evaluations share OPA's inter-query builtin
// cache, so http.send with force_cache fetches once for many requests (a
// JWKS, a ticket lookup), as in OPA's server and the OPA-Envoy plugin; the
// cache is configured as OPA's "caching" section configures it.
func TestHTTPSendCacheShared(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"keys": ["k1"]}`)
	}))
	t.Cleanup(srv.Close)
	module := `package t

keys := http.send({"method": "GET", "url": input.url, "force_cache": true, "force_cache_duration_seconds": 300}).body.keys
`
	q := MustQuery("data.t.keys")
	for name, tc := range map[string]struct {
		caching string
		fetches int32
	}{
		"OPA's defaults": {caching: ``, fetches: 1},
		"configured":     {caching: `{"inter_query_builtin_cache": {"max_size_bytes": 10000000}}`, fetches: 1},
	} {
		t.Run(name, func(t *testing.T) {
			hits.Store(0)
			var caching *cache.Config
			if tc.caching != "" {
				var err error
				if caching, err = cache.ParseCachingConfig([]byte(tc.caching)); err != nil {
					t.Fatal(err)
				}
			}
			e := newEngine(t, Source{Paths: []string{policyDir(t, module)}}, func(o *Options) { o.Caching = caching })
			for range 5 {
				v, err := eval(t, e, q, map[string]any{"url": srv.URL})
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(v) != "[k1]" {
					t.Fatalf("keys = %v", v)
				}
			}
			if got := hits.Load(); got != tc.fetches {
				t.Errorf("%d fetches for 5 evaluations, want %d", got, tc.fetches)
			}
		})
	}
}
