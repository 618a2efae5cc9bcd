package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	srv := Redis(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := rdb.Set(ctx, "k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v\n%s", err, srv.Log())
	}
	if got, err := rdb.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want v", got, err)
	}
	if ttl, err := rdb.TTL(ctx, "k").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v, %v; want within (0, 1m]", ttl, err)
	}

	// The URL must reach the same server.
	opts, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	byURL := redis.NewClient(opts)
	defer byURL.Close()
	if got, err := byURL.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET via %s = %q, %v; want v", srv.URL, got, err)
	}

	srv.Stop(t)
	// A short deadline: the client retries dials, and a failure is all we
	// need to see.
	down, cancelDown := context.WithTimeout(ctx, time.Second)
	defer cancelDown()
	if err := rdb.Ping(down).Err(); err == nil {
		t.Fatal("PING succeeded with the server stopped")
	}

	addr := srv.Addr
	srv.Start(t)
	if srv.Addr != addr {
		t.Fatalf("restarted on %s, want %s", srv.Addr, addr)
	}
	// Same client, same address: it reconnects by itself. No persistence,
	// so the key is gone.
	if err := rdb.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("GET after restart: %v, want redis.Nil\n%s", err, srv.Log())
	}
	if err := rdb.Set(ctx, "k", "again", 0).Err(); err != nil {
		t.Fatalf("SET after restart: %v\n%s", err, srv.Log())
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := RedisCluster(t)
	rdb := cl.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if len(cl.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3", cl.Addrs)
	}
	info, err := rdb.ClusterInfo(ctx).Result()
	if err != nil || infoField(info, "cluster_state") != "ok" || infoField(info, "cluster_size") != "3" {
		t.Fatalf("CLUSTER INFO = %v\n%s\n%s", err, info, cl.Log())
	}

	t.Run("keys spread over masters", func(t *testing.T) {
		slots := map[int64]bool{}
		for i := 1; i <= 30; i++ {
			key := fmt.Sprintf("k{%d}", i)
			if err := rdb.Set(ctx, key, i, time.Minute).Err(); err != nil {
				t.Fatalf("SET %s: %v", key, err)
			}
			slot, err := rdb.ClusterKeySlot(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			slots[slot] = true
		}
		if len(slots) < 2 {
			t.Fatalf("30 hash tags fell in %d slot(s)", len(slots))
		}
		var mu sync.Mutex
		holding := 0
		err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			n, err := m.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			if n > 0 {
				mu.Lock()
				holding++
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if holding < 2 {
			t.Fatalf("keys on %d master(s), want at least 2", holding)
		}
	})

	t.Run("one hash tag: MULTI/EXEC and Lua", func(t *testing.T) {
		_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "{acct}:a", "1", time.Minute)
			p.Set(ctx, "{acct}:b", "2", time.Minute)
			return nil
		})
		if err != nil {
			t.Fatalf("MULTI/EXEC: %v", err)
		}
		sum := redis.NewScript(`return tonumber(redis.call("GET", KEYS[1])) + tonumber(redis.call("GET", KEYS[2]))`)
		if got, err := sum.Run(ctx, rdb, []string{"{acct}:a", "{acct}:b"}).Int(); err != nil || got != 3 {
			t.Fatalf("script = %d, %v; want 3", got, err)
		}
	})

	t.Run("URL", func(t *testing.T) {
		opts, err := redis.ParseClusterURL(cl.URL)
		if err != nil {
			t.Fatalf("ParseClusterURL(%q): %v", cl.URL, err)
		}
		if len(opts.Addrs) != 3 {
			t.Fatalf("ParseClusterURL(%q).Addrs = %v, want 3", cl.URL, opts.Addrs)
		}
		byURL := redis.NewClusterClient(opts)
		defer byURL.Close()
		if got, err := byURL.Get(ctx, "k{7}").Int(); err != nil || got != 7 {
			t.Fatalf("GET k{7} via URL = %d, %v; want 7", got, err)
		}
	})
}

// A port taken between FreeAddr and redis-server's bind must come back as
// errPortTaken, the one error Redis and RedisCluster retry on a new port.
func TestLaunchRedisPortTaken(t *testing.T) {
	t.Parallel()
	bin := redisTool(t, "redis-server")
	cluster := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"}
	tests := map[string]struct {
		squat func(t *testing.T, port int) // takes a port launchRedis needs
		args  []string
	}{
		"client port": {squat: func(t *testing.T, port int) { listen(t, port) }},
		"cluster bus port": {
			squat: func(t *testing.T, port int) { listen(t, port+clusterBusOffset) },
			args:  cluster,
		},
		"another redis": {squat: func(t *testing.T, port int) {
			p, err := launchRedis(bin, t.TempDir(), port, nil, &LogBuffer{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.stop)
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			port := clusterPort(t)
			tc.squat(t, port)
			log := &LogBuffer{}
			p, err := launchRedis(bin, t.TempDir(), port, tc.args, log)
			if p != nil {
				p.stop()
			}
			if !errors.Is(err, errPortTaken) {
				t.Fatalf("launchRedis on a taken port: %v, want errPortTaken\n%s", err, log)
			}
		})
	}
}

func listen(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

func TestRedisToolMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ft := &fatalTB{TB: t}
	func() {
		defer func() { recover() }()
		redisTool(ft, "redis-server")
	}()
	if !ft.fatal || !strings.Contains(ft.msg, "make redis") {
		t.Fatalf("missing redis-server: fatal=%v %q; want a fatal naming `make redis`", ft.fatal, ft.msg)
	}
}

// fatalTB records a Fatalf instead of ending the test, so a test can check
// that a helper fails, and how.
type fatalTB struct {
	testing.TB
	fatal bool
	msg   string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.fatal, f.msg = true, fmt.Sprintf(format, args...)
	panic(f) // stop the helper, as Fatalf would
}
