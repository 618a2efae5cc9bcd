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
// one standalone server and a three-master cluster.
func TestConformanceStandalone(t *testing.T) {
	srv := harness.Redis(t)
	c := srv.Client(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return New(c)
	})
}

func TestConformanceCluster(t *testing.T) {
	cluster := harness.RedisCluster(t)
	c := cluster.Client(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
			return m.FlushAll(ctx).Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return New(c)
	})
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
