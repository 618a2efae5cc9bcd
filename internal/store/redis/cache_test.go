package redis

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/store"
	"github.com/elevatepdp/elevate/test/harness"
)

// cached is a store with a holdings cache on its own connection to url,
// closed with the test, once its subscription delivers.
func cached(t *testing.T, url string) *Store {
	t.Helper()
	c, err := Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, WithCache(1000))
	t.Cleanup(func() { s.Close() })
	waitFor(t, "the cache's subscription", func() bool { return s.CacheStats().Fresh })
	return s
}

func ptr(t time.Time) *time.Time { return &t }

// waitFor polls cond for up to five seconds: the bound is generous; what is
// tested is that it happens.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two replicas: what one changes, the other's cache stops serving as soon
// as the message arrives, on a single server and across a cluster, where
// the script publishes on one master and the subscriber listens on any.
func TestCacheInvalidatedByOtherReplica(t *testing.T) {
	for name, url := range map[string]string{
		"standalone": harness.Redis(t).URL,
		"cluster":    harness.RedisCluster(t).URL,
	} {
		t.Run(name, func(t *testing.T) {
			a, b := cached(t, url), cached(t, url)
			ctx := context.Background()
			// b caches the principal's empty holdings, then learns of what
			// a adds only through the message.
			if h, err := b.Holdings(ctx, "sophia@x", time.Now()); err != nil || len(h.Assignments) != 0 {
				t.Fatalf("holdings %+v, %v", h, err)
			}
			asg := store.Assignment{ID: "asg-" + name, Principal: "sophia@x", Role: "user-administrator", Scope: "/",
				Type: store.Active, CreatedBy: "admin@x", CreatedAt: time.Now().UTC()}
			if err := a.CreateAssignment(ctx, asg); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b sees the new assignment", func() bool {
				h, err := b.Holdings(ctx, "sophia@x", time.Now())
				return err == nil && len(h.Assignments) == 1
			})
			now := time.Now().UTC()
			act := store.Activation{ID: "act-" + name, Principal: "sophia@x", Role: asg.Role, Scope: "/", AssignmentID: asg.ID,
				Duration: "1h", Justification: "testing", Status: store.Live, Approvals: []store.Approval{},
				RequestedAt: now, ActivatedAt: &now, ExpiresAt: ptr(now.Add(time.Hour))}
			act, err := a.CreateActivation(ctx, act)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b sees the activation", func() bool {
				h, err := b.Holdings(ctx, "sophia@x", time.Now())
				return err == nil && len(h.Elevations) == 1
			})
			before := b.CacheStats().Hits
			for range 10 {
				if h, err := b.Holdings(ctx, "sophia@x", time.Now()); err != nil || len(h.Elevations) != 1 {
					t.Fatalf("holdings %+v, %v", h, err)
				}
			}
			if hits := b.CacheStats().Hits - before; hits < 10 {
				t.Fatalf("%d of 10 reads served from the cache", hits)
			}
			ended := time.Now().UTC()
			act.Status, act.EndedAt, act.EndedBy = store.Deactivated, &ended, "sophia@x"
			if _, err := a.UpdateActivation(ctx, act); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "b sees the deactivation", func() bool {
				h, err := b.Holdings(ctx, "sophia@x", time.Now())
				return err == nil && len(h.Elevations) == 0
			})
		})
	}
}

// An elevation ends at its time with no message at all: entries are
// filtered at every read.
func TestCacheEndsElevationsOnTime(t *testing.T) {
	s := cached(t, harness.Redis(t).URL)
	ctx := context.Background()
	asg := store.Assignment{ID: "asg", Principal: "sophia@x", Role: "user-administrator", Scope: "/",
		Type: store.Eligible, CreatedBy: "admin@x", CreatedAt: time.Now().UTC()}
	if err := s.CreateAssignment(ctx, asg); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	end := now.Add(200 * time.Millisecond)
	if _, err := s.CreateActivation(ctx, store.Activation{ID: "act", Principal: "sophia@x", Role: asg.Role, Scope: "/",
		AssignmentID: asg.ID, Duration: "1h", Justification: "testing", Status: store.Live, Approvals: []store.Approval{},
		RequestedAt: now, ActivatedAt: &now, ExpiresAt: &end}); err != nil {
		t.Fatal(err)
	}
	// Its own write's message may still drop the entry once; then a read
	// is served from the cache.
	waitFor(t, "a read served from the cache", func() bool {
		hits := s.CacheStats().Hits
		h, err := s.Holdings(ctx, "sophia@x", end.Add(-time.Nanosecond))
		if err != nil || len(h.Elevations) != 1 {
			t.Fatalf("before the end: %+v, %v", h, err)
		}
		return s.CacheStats().Hits > hits
	})
	if h, err := s.Holdings(ctx, "sophia@x", end); err != nil || len(h.Elevations) != 0 {
		t.Fatalf("at the end: %+v, %v", h, err)
	}
}

// A broken subscription empties the cache and takes it out of use until
// Redis confirms a new one; with Redis gone, reads fail (closed) instead of
// answering from memory.
func TestCacheOutOfUseWithoutSubscription(t *testing.T) {
	srv := harness.Redis(t)
	s := cached(t, srv.URL)
	ctx := context.Background()
	admin := srv.Client(t)
	if _, err := s.Holdings(ctx, "sophia@x", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache out of use", func() bool { return !s.CacheStats().Fresh })
	waitFor(t, "the cache back in use", func() bool { return s.CacheStats().Fresh })
	misses := s.CacheStats().Misses
	if _, err := s.Holdings(ctx, "sophia@x", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.CacheStats().Misses != misses+1 {
		t.Fatal("an entry kept across a broken subscription was served")
	}

	srv.Stop(t)
	waitFor(t, "reads failing with Redis stopped", func() bool {
		_, err := s.Holdings(ctx, "sophia@x", time.Now())
		return err != nil
	})
	if s.CacheStats().Fresh {
		t.Fatal("cache in use with Redis stopped")
	}
}

// A read that was in flight when its principal changed is not kept: it may
// predate the change.
func TestCacheDropsReadsOverlappingAChange(t *testing.T) {
	c := newCache(10)
	c.alive()
	_, gen, ok := c.get("t")
	if !ok {
		t.Fatal("fresh cache unusable")
	}
	c.invalidate("t")
	c.put("t", gen, &holdings{})
	if h, _, _ := c.get("t"); h != nil {
		t.Fatal("a read overlapping an invalidation was kept")
	}
	_, gen, _ = c.get("t")
	c.put("t", gen, &holdings{})
	if h, _, _ := c.get("t"); h == nil {
		t.Fatal("a read with no change meanwhile was not kept")
	}
	c.reset()
	if h, _, ok := c.get("t"); h != nil || ok {
		t.Fatal("reset cache still serves")
	}
}

// The cache holds at most its size, spread over its shards, and uses it.
func TestCacheBounded(t *testing.T) {
	c := newCache(cacheShards * 2)
	c.alive()
	for i := range 10_000 {
		tag := strconv.Itoa(i)
		_, gen, _ := c.get(tag)
		c.put(tag, gen, &holdings{})
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].entries)
	}
	// 10 000 tags fill every shard's two places.
	if n != cacheShards*2 {
		t.Fatalf("%d entries, size %d", n, cacheShards*2)
	}
}
