package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elevatepdp/elevate/test/harness"
)

// gate holds a client's first script run until opened, so a test can queue
// appends behind a batch in flight. It counts the script runs.
type gate struct {
	held    chan struct{} // closed once the first run is held
	release chan struct{}
	open    func()
	runs    atomic.Int64
}

// heldSink is a sink on a fresh Redis whose first batch, the event
// "first", is held in flight by its gate: appends made now queue behind it.
func heldSink(t *testing.T) (*RedisSink, *gate, <-chan result) {
	t.Helper()
	c := harness.Redis(t).Client(t)
	g := newGate(t, c)
	s := NewRedisSink(c, 0)
	first := goAppend(context.Background(), s, "first")
	<-g.held
	return s, g, first
}

func newGate(t *testing.T, c *goredis.Client) *gate {
	g := &gate{held: make(chan struct{}), release: make(chan struct{})}
	g.open = sync.OnceFunc(func() { close(g.release) })
	c.AddHook(g)
	t.Cleanup(g.open) // never leave a batch held when a test fails early
	return g
}

func (g *gate) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		// Script.Run sends EVALSHA, and EVAL only when Redis lacks the
		// script, so EVALSHA counts runs.
		if cmd.Name() == "evalsha" && g.runs.Add(1) == 1 {
			close(g.held)
			<-g.release
		}
		return next(ctx, cmd)
	}
}

func (g *gate) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (g *gate) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// waitQueued waits until n appends of s wait for a batch.
func waitQueued(t *testing.T, s *RedisSink, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.qmu.Lock()
		q := len(s.queue)
		s.qmu.Unlock()
		if q == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d appends queued, want %d", q, n)
		}
	}
}

type result struct {
	e   Event
	err error
}

// goAppend appends an event with id in a goroutine of its own.
func goAppend(ctx context.Context, s Sink, id string) <-chan result {
	out := make(chan result, 1)
	go func() {
		e, err := s.Append(ctx, Event{ID: id, Type: Activated, Actor: "sophia@x", Time: t0})
		out <- result{e, err}
	}()
	return out
}

// byID reads every event of s, by id.
func byID(t *testing.T, s Sink) map[string]Event {
	t.Helper()
	all, err := s.Events(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Event{}
	for _, e := range all {
		m[e.ID] = e
	}
	return m
}

// Two replicas, each with its own sink and client, append 300 events at
// once: every append is stored once, in one chain, as its caller was told,
// and the trail holds exactly what appending the same events one at a time
// in that order holds.
func TestRedisSinkGroupCommitReplicas(t *testing.T) {
	const n = 300
	srv := harness.Redis(t)
	ctx := context.Background()
	replicas := []Sink{NewRedisSink(srv.Client(t), 0), NewRedisSink(srv.Client(t), 0)}
	got := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i] = <-goAppend(ctx, replicas[i%2], fmt.Sprintf("evt_%d", i)) })
	}
	wg.Wait()

	all, err := replicas[0].Events(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != n {
		t.Fatalf("%d events stored, want %d", len(all), n)
	}
	wantChain(t, all, 1, nil)
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("append %d: %v", i, r.err)
		}
		if s := all[r.e.Seq-1]; s.ID != r.e.ID || s.Hash != r.e.Hash || !equalEvents(s, r.e) {
			t.Fatalf("append %d was told seq %d hash %.12s, the chain holds %s with hash %.12s there",
				i, r.e.Seq, r.e.Hash, s.ID, s.Hash)
		}
	}

	// The same events, one at a time, into another database of the server.
	one := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DB: 1})
	t.Cleanup(func() { one.Close() })
	serial := NewRedisSink(one, 0)
	for _, e := range all {
		if _, err := serial.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	two := srv.Client(t)
	for _, key := range []string{streamKey, headKey} {
		var batched, alone any
		if key == streamKey {
			batched, alone = two.XRange(ctx, key, "-", "+").Val(), one.XRange(ctx, key, "-", "+").Val()
		} else {
			batched, alone = two.HGetAll(ctx, key).Val(), one.HGetAll(ctx, key).Val()
		}
		if !reflect.DeepEqual(batched, alone) {
			t.Fatalf("%s differs from what appends one at a time store", key)
		}
	}
}

// Appends queued behind a batch in flight go out together, at most
// maxBatch to a script run.
func TestRedisSinkBatchesQueued(t *testing.T) {
	const queued = maxBatch + 44
	s, g, first := heldSink(t)
	ctx := context.Background()
	rest := make([]<-chan result, queued)
	for i := range rest {
		rest[i] = goAppend(ctx, s, fmt.Sprintf("evt_%d", i))
	}
	waitQueued(t, s, queued)
	g.open()
	for _, ch := range append(rest, first) {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if runs := g.runs.Load(); runs != 3 {
		t.Fatalf("%d script runs, want 3: the held one, then %d and %d queued events", runs, maxBatch, queued-maxBatch)
	}
	all, err := s.Events(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != queued+1 {
		t.Fatalf("%d events stored, want %d", len(all), queued+1)
	}
	wantChain(t, all, 1, nil)
}

// An event that cannot be chained (its time has no RFC 3339 form) fails
// alone; the rest of its batch is stored.
func TestRedisSinkBatchBadEvent(t *testing.T) {
	s, g, first := heldSink(t)
	ctx := context.Background()
	good := goAppend(ctx, s, "good")
	waitQueued(t, s, 1)
	bad := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, Event{ID: "bad", Type: Activated, Actor: "sophia@x", Time: t0.AddDate(8000, 0, 0)})
		bad <- err
	}()
	waitQueued(t, s, 2)
	also := goAppend(ctx, s, "also good")
	waitQueued(t, s, 3)
	g.open()
	if err := <-bad; err == nil {
		t.Fatal("an event in the year 10026 was stored")
	}
	for _, ch := range []<-chan result{first, good, also} {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if runs := g.runs.Load(); runs != 2 {
		t.Fatalf("%d script runs, want 2", runs)
	}
	stored := byID(t, s)
	if _, ok := stored["bad"]; ok || stored["good"].Seq != 2 || stored["also good"].Seq != 3 {
		t.Fatalf("stored %v", stored)
	}
}

// A caller whose context ends before a batch takes its event gets the
// context's error and its event is never stored; one whose event is in a
// batch already waits for that batch and gets its outcome.
func TestRedisSinkAppendCancelled(t *testing.T) {
	srv := harness.Redis(t)
	fresh := func(t *testing.T) (*RedisSink, *gate) {
		c := srv.Client(t)
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return NewRedisSink(c, 0), newGate(t, c)
	}

	t.Run("before", func(t *testing.T) {
		s, g := fresh(t)
		g.open() // only counting here
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if r := <-goAppend(ctx, s, "gone"); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("append with a cancelled context: %+v, want context.Canceled", r)
		}
		if n := g.runs.Load(); n != 0 {
			t.Fatalf("%d script runs for a cancelled append", n)
		}
		if r := <-goAppend(context.Background(), s, "next"); r.err != nil || r.e.Seq != 1 {
			t.Fatalf("next append: seq %d, %v; want seq 1", r.e.Seq, r.err)
		}
	})

	t.Run("while queued", func(t *testing.T) {
		s, g := fresh(t)
		first := goAppend(context.Background(), s, "first")
		<-g.held
		ctx, cancel := context.WithCancel(context.Background())
		gone := goAppend(ctx, s, "gone")
		waitQueued(t, s, 1)
		kept := goAppend(context.Background(), s, "kept")
		waitQueued(t, s, 2)
		cancel()
		// The batch in flight is still held: the cancelled caller does
		// not wait for it.
		if r := <-gone; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("append cancelled while queued: %+v, want context.Canceled", r)
		}
		g.open()
		for _, ch := range []<-chan result{first, kept} {
			if r := <-ch; r.err != nil {
				t.Fatal(r.err)
			}
		}
		stored := byID(t, s)
		if _, ok := stored["gone"]; ok || len(stored) != 2 {
			t.Fatalf("stored %v, want first and kept only", stored)
		}
		if stored["kept"].Seq != 2 {
			t.Fatalf("kept has seq %d, want 2", stored["kept"].Seq)
		}
	})

	t.Run("while in flight", func(t *testing.T) {
		s, g := fresh(t)
		ctx, cancel := context.WithCancel(context.Background())
		inFlight := goAppend(ctx, s, "in flight")
		<-g.held
		cancel()
		g.open()
		r := <-inFlight
		if r.err != nil {
			t.Fatalf("append cancelled in flight: %v, but its batch was stored", r.err)
		}
		if stored := byID(t, s)["in flight"]; stored.Seq != 1 || stored.Hash != r.e.Hash {
			t.Fatalf("stored %+v, told %+v", stored, r.e)
		}
	})
}

// Redis going away with a batch in flight and more queued: every caller
// gets an error, and the sink recovers once Redis is back.
//
// The harness's Redis keeps nothing across a restart, so that the failed
// events are absent afterwards proves little; what rules out a partial
// batch is that a batch is one script, which Redis runs whole or not at
// all.
func TestRedisSinkAppendRedisDown(t *testing.T) {
	const queued = 20
	srv := harness.Redis(t)
	c := srv.Client(t)
	s := NewRedisSink(c, 0)
	ctx := context.Background()
	if r := <-goAppend(ctx, s, "before"); r.err != nil {
		t.Fatal(r.err)
	}
	g := newGate(t, c)
	calls := []<-chan result{goAppend(ctx, s, "held")}
	<-g.held
	for i := range queued {
		calls = append(calls, goAppend(ctx, s, fmt.Sprintf("evt_%d", i)))
	}
	waitQueued(t, s, queued)
	srv.Stop(t)
	g.open()
	for i, ch := range calls {
		if r := <-ch; r.err == nil {
			t.Fatalf("append %d with Redis down: stored as seq %d", i, r.e.Seq)
		}
	}

	srv.Start(t)
	if r := <-goAppend(ctx, s, "after"); r.err != nil || r.e.Seq != 1 {
		t.Fatalf("append after the restart: seq %d, %v; want seq 1 of the empty trail", r.e.Seq, r.err)
	}
	all, err := s.Events(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != "after" {
		t.Fatalf("after the restart Redis holds %v, want only the event appended since", all)
	}
	wantChain(t, all, 1, nil)
}

// Hundreds of concurrent appends through one sink, as API calls that each
// wait for their audit event. Events that failed are reported, not fatal,
// so the figure stays comparable when contention makes appends fail.
func BenchmarkRedisSinkAppendParallel(b *testing.B) {
	srv := harness.Redis(b)
	s := NewRedisSink(srv.Client(b), 0)
	ctx := context.Background()
	var ids, failed atomic.Int64
	b.SetParallelism(128) // 128 goroutines per GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := Event{ID: fmt.Sprintf("evt_%d", ids.Add(1)), Type: Activated, Actor: "sophia@x",
				Principal: "sophia@x", Role: "user-administrator", Scope: "/", Time: time.Now()}
			if _, err := s.Append(ctx, e); err != nil {
				failed.Add(1)
			}
		}
	})
	b.ReportMetric(float64(int64(b.N)-failed.Load())/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/op")
}
