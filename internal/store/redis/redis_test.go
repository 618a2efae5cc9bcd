package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/internal/store/storetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// The suite runs against real redis-server processes the harness starts:
// one standalone server and a three-master cluster, each without and with
// the holdings cache (cache_test.go); with it, every read a test makes
// after a write through the same store must see the write.
func TestConformanceStandalone(t *testing.T) {
	srv := harness.Redis(t)
	c := srv.Client(t)
	conformance(t, srv.URL, c, func(ctx context.Context) error { return c.FlushAll(ctx).Err() })
}

func TestConformanceCluster(t *testing.T) {
	cluster := harness.RedisCluster(t)
	c := cluster.Client(t)
	conformance(t, cluster.URL, c, func(ctx context.Context) error {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return m.FlushAll(ctx).Err() })
	})
}

func conformance(t *testing.T, url string, c goredis.UniversalClient, flush func(context.Context) error) {
	open := func(cache bool) storetest.Open {
		return func(t *testing.T) store.Store {
			if err := flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if cache {
				return cached(t, url)
			}
			return New(c)
		}
	}
	t.Run("uncached", func(t *testing.T) { storetest.Run(t, open(false)) })
	t.Run("cached", func(t *testing.T) { storetest.Run(t, open(true)) })
}

func TestEscapeIsInjectiveAndKeySafe(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{"a}b", "a%7Db", "a:b", "a%3Ab", "{a}", "A", "a", "ü", "%C3%BC", "a b", ""} {
		e := escape(s)
		if prev, ok := seen[e]; ok {
			t.Fatalf("%q and %q both escape to %q", prev, s, e)
		}
		seen[e] = s
		for _, c := range []byte(e) {
			if c == ':' || c == '{' || c == '}' {
				t.Fatalf("escape(%q) = %q keeps key syntax", s, e)
			}
		}
	}
}

func TestSecrets(t *testing.T) {
	storetest.RunSecrets(t, New(harness.Redis(t).Client(t)))
}

func TestDial(t *testing.T) {
	ctx := context.Background()
	srv := harness.Redis(t)
	cluster := harness.RedisCluster(t)
	for name, url := range map[string]string{
		"standalone":       srv.URL,
		"cluster by addrs": cluster.URL,
		"cluster by flag":  "redis://" + cluster.Addrs[0] + "?cluster=true",
	} {
		c, err := Dial(url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("%s: ping: %v", name, err)
		}
		_, isCluster := c.(*goredis.ClusterClient)
		if isCluster != (name != "standalone") {
			t.Errorf("%s: got %T", name, c)
		}
		c.Close()
	}
	for _, bad := range []string{"http://x", "redis://x?master_name=m&bogus=1", "::"} {
		if _, err := Dial(bad); err == nil {
			t.Errorf("Dial(%q) succeeded", bad)
		}
	}
}
