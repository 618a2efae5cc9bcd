package redis

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/internal/store"
)

// The holdings cache spares a decision its Redis round trip. Every script
// that changes what a principal holds publishes the principal's hash tag on
// the invalidation channel, in the same atomic step as the change; each
// replica subscribes and drops the entry. Time needs no message: entries
// keep what Redis held, unfiltered, and every read filters them at its own
// time, so an elevation stops granting at its end whether or not Redis has
// expired its key yet.
//
// The cache is used only while the subscription is known to deliver: a
// ping on it is answered at least every staleAfter. When the subscription
// breaks the cache is emptied and bypassed, and emptied again once Redis
// confirms the new subscription, since messages in between are lost. A
// replica cut off from Redis therefore stops serving from the cache within
// staleAfter, and then fails closed like any read.
const (
	pingEvery  = 250 * time.Millisecond
	staleAfter = time.Second
	// cacheShards spread the entries over locks and generations, so a
	// write to one principal rarely stops a concurrent read of another
	// from being kept.
	cacheShards = 64
)

// Option configures a Store.
type Option func(*Store)

// WithCache keeps the holdings of up to size principals in this process,
// invalidated through Redis (see above). size <= 0 disables it.
func WithCache(size int) Option {
	return func(s *Store) {
		if size > 0 {
			s.cache = newCache(size)
		}
	}
}

// holdings is what Redis held for a principal: every assignment and every
// running activation, the latter not yet filtered by time.
type holdings struct {
	assignments []store.Assignment
	elevations  []store.Activation
}

// at is h as Store.Holdings answers at now. It copies: h is shared by
// every reader of the cache.
func (h *holdings) at(now time.Time) store.Holdings {
	out := store.Holdings{Assignments: slices.Clone(h.assignments), Elevations: []store.Activation{}}
	for _, a := range h.elevations {
		if a.LiveAt(now) {
			out.Elevations = append(out.Elevations, a)
		}
	}
	return out
}

type cache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	perMax int
	// freshUntil is the Unix nanosecond until which the subscription is
	// known to deliver; 0 while it is down.
	freshUntil atomic.Int64
	hits       atomic.Int64
	misses     atomic.Int64
}

type cacheShard struct {
	mu sync.RWMutex
	// gen counts invalidations of this shard: a read from Redis is kept
	// only if none happened while it was in flight, else it may predate
	// the change that was announced.
	gen     uint64
	entries map[string]*holdings
}

func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed(), perMax: max(1, size/cacheShards)}
	for i := range c.shards {
		c.shards[i].entries = map[string]*holdings{}
	}
	return c
}

func (c *cache) shard(tag string) *cacheShard {
	return &c.shards[maphash.String(c.seed, tag)%cacheShards]
}

func (c *cache) fresh() bool { return time.Now().UnixNano() < c.freshUntil.Load() }

// get returns the entry for tag and, on a miss, the shard generation to
// hand to put. ok is false, and nothing may be kept, while the
// subscription is not known to deliver.
func (c *cache) get(tag string) (h *holdings, gen uint64, ok bool) {
	if !c.fresh() {
		return nil, 0, false
	}
	sh := c.shard(tag)
	sh.mu.RLock()
	h, gen = sh.entries[tag], sh.gen
	sh.mu.RUnlock()
	if h != nil {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return h, gen, true
}

// put keeps h, read from Redis after get returned gen, unless tag's shard
// was invalidated since or the subscription stopped delivering.
func (c *cache) put(tag string, gen uint64, h *holdings) {
	sh := c.shard(tag)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen || !c.fresh() {
		return
	}
	if _, ok := sh.entries[tag]; !ok && len(sh.entries) >= c.perMax {
		for k := range sh.entries { // map order is random: a random eviction
			delete(sh.entries, k)
			break
		}
	}
	sh.entries[tag] = h
}

// invalidate drops tag's entry and voids the reads of its shard in flight.
func (c *cache) invalidate(tag string) {
	sh := c.shard(tag)
	sh.mu.Lock()
	sh.gen++
	delete(sh.entries, tag)
	sh.mu.Unlock()
}

// reset drops everything and marks the cache unusable until fresh is
// called again.
func (c *cache) reset() {
	c.freshUntil.Store(0)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		sh.gen++
		clear(sh.entries)
		sh.mu.Unlock()
	}
}

// alive records that the subscription delivered just now.
func (c *cache) alive() { c.freshUntil.Store(time.Now().Add(staleAfter).UnixNano()) }

// CacheStats are the holdings cache's lookups since the store was made
// (exported as metrics by serve).
type CacheStats struct {
	Hits, Misses int64
	// Fresh reports whether the cache is in use: its invalidation
	// subscription is known to deliver.
	Fresh bool
}

// CacheStats reports the holdings cache's use; zero without a cache.
func (s *Store) CacheStats() CacheStats {
	if s.cache == nil {
		return CacheStats{}
	}
	return CacheStats{Hits: s.cache.hits.Load(), Misses: s.cache.misses.Load(), Fresh: s.cache.fresh()}
}

// subscribe keeps the cache's subscription to the invalidation channel
// until ctx ends, re-subscribing after failures.
func (s *Store) subscribe(ctx context.Context) {
	c := s.cache
	for ctx.Err() == nil {
		ps := s.c.Subscribe(ctx, s.invalidations())
		unblock := context.AfterFunc(ctx, func() { ps.Close() })
		s.listen(ctx, ps)
		unblock()
		_ = ps.Close()
		c.reset()
		select {
		case <-ctx.Done():
		case <-time.After(pingEvery):
		}
	}
}

// listen serves one subscription until it fails. go-redis would reconnect
// it by itself; it is dropped instead, so that the cache is emptied on
// every gap in delivery.
func (s *Store) listen(ctx context.Context, ps *goredis.PubSub) {
	c := s.cache
	pingCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(pingEvery)
		defer t.Stop()
		for {
			select {
			case <-pingCtx.Done():
				return
			case <-t.C:
				if err := ps.Ping(pingCtx); err != nil {
					// Receive sees the broken connection too.
					return
				}
			}
		}
	}()
	for {
		// Pongs come every pingEvery: silence for staleAfter is a broken
		// connection, even one the network has not reported yet.
		msg, err := ps.ReceiveTimeout(ctx, staleAfter)
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" {
				c.reset() // what was published before this is unknown
				c.alive()
			}
		case *goredis.Message:
			c.invalidate(m.Payload)
			c.alive()
		case *goredis.Pong:
			c.alive()
		}
	}
}
