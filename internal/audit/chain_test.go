package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/test/harness"
)

var update = flag.Bool("update", false, "rewrite the golden exports in testdata/")

// sinks are the sinks every chain test runs against: a constructor of a
// fresh, empty sink with a retention.
func sinks(t *testing.T) map[string]func(t *testing.T, keep Retention) Sink {
	srv := harness.Redis(t)
	return map[string]func(t *testing.T, keep Retention) Sink{
		"memory": func(_ *testing.T, keep Retention) Sink { return NewMemorySinkWith(keep) },
		"redis": func(t *testing.T, keep Retention) Sink {
			c := srv.Client(t)
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			return NewRedisSinkWith(c, keep)
		},
	}
}

var t0 = time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.UTC)

func appendN(t *testing.T, s Sink, n int) []Event {
	t.Helper()
	var out []Event
	for i := range n {
		e, err := s.Append(context.Background(), Event{ID: fmt.Sprintf("evt_%d", i), Type: Activated, Actor: "sophia@x",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", Time: t0.Add(time.Duration(i) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func wantChain(t *testing.T, events []Event, from int64, anchor *Anchor) {
	t.Helper()
	for i, e := range events {
		if e.Seq != from+int64(i) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, from+int64(i))
		}
		if i > 0 && e.PrevHash != events[i-1].Hash {
			t.Fatalf("seq %d: prev_hash is not the hash of seq %d", e.Seq, events[i-1].Seq)
		}
	}
	if err := Verify(events, anchor); err != nil {
		t.Fatal(err)
	}
}

// Ten writers, each with its own sink (and, for Redis, its own client:
// separate replicas), append at once and form one chain.
func TestAuditChainConcurrentWriters(t *testing.T) {
	const writers, each = 10, 30
	srv := harness.Redis(t)
	shared := NewMemorySink(0)
	tests := map[string]func(t *testing.T) Sink{
		"memory": func(*testing.T) Sink { return shared },
		"redis":  func(t *testing.T) Sink { return NewRedisSink(srv.Client(t), 0) },
	}
	for name, newSink := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			mine := make([][]Event, writers)
			errs := make(chan error, writers)
			var wg sync.WaitGroup
			var reader Sink
			for w := range writers {
				s := newSink(t)
				reader = s
				wg.Go(func() {
					for i := range each {
						e, err := s.Append(ctx, Event{Type: AssignmentCreated, Actor: fmt.Sprintf("writer%d", w), ID: fmt.Sprintf("evt_%d_%d", w, i), Time: time.Now()})
						if err != nil {
							errs <- err
							return
						}
						mine[w] = append(mine[w], e)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			all, err := reader.Events(ctx, Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != writers*each {
				t.Fatalf("%d events, want %d", len(all), writers*each)
			}
			wantChain(t, all, 1, nil)
			// What each writer was told it appended is what the chain holds.
			bySeq := map[int64]Event{}
			for _, e := range all {
				bySeq[e.Seq] = e
			}
			for w := range writers {
				for _, e := range mine[w] {
					if bySeq[e.Seq].Hash != e.Hash || bySeq[e.Seq].ID != e.ID {
						t.Fatalf("writer %d appended %s as seq %d, the chain holds %s there", w, e.ID, e.Seq, bySeq[e.Seq].ID)
					}
				}
			}
		})
	}
}

// ev is an event of a chain for tampering with.
func chainOf(t *testing.T, n int) []Event {
	t.Helper()
	return appendN(t, NewMemorySink(0), n)
}

func rehash(t *testing.T, e Event) Event {
	t.Helper()
	h, err := HashOf(e)
	if err != nil {
		t.Fatal(err)
	}
	e.Hash = h
	return e
}

func TestAuditVerify(t *testing.T) {
	type change func(t *testing.T, c []Event) ([]Event, *Anchor)
	tests := map[string]struct {
		change      change
		problem     Problem // "" for a chain that verifies
		seq, found  int64
		detail      string
		wantNoError bool
	}{
		"untouched": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) { return c, nil }},
		"empty":     {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) { return nil, nil }},
		"field edited": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			c[3].Scope = "/elsewhere"
			return c, nil
		}, problem: Altered, seq: 4, found: 4, detail: "does not match its hash"},
		"violation added": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			c[0].Violations = []string{"x"}
			return c, nil
		}, problem: Altered, seq: 1, found: 1},
		"seq edited": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			c[4].Seq = 50
			return c, nil
		}, problem: Altered, seq: 5, found: 50},
		"prev_hash edited": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			c[2].PrevHash = Genesis
			return c, nil
		}, problem: Altered, seq: 3, found: 3},
		"edited and re-hashed": {change: func(t *testing.T, c []Event) ([]Event, *Anchor) {
			c[3].Actor = "mallory@x"
			c[3] = rehash(t, c[3])
			return c, nil
		}, problem: Reordered, seq: 5, found: 5, detail: "does not follow"},
		"one removed": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return slices.Delete(c, 3, 4), nil
		}, problem: Removed, seq: 4, found: 5, detail: "seq 4 missing"},
		"two removed": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return slices.Delete(c, 3, 5), nil
		}, problem: Removed, seq: 4, found: 6, detail: "seqs 4..5 missing"},
		"first removed": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return c[1:], nil
		}, problem: Removed, seq: 1, found: 2, detail: "anchor"},
		"swapped": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			c[2], c[3] = c[3], c[2]
			return c, nil
		}, problem: Reordered, seq: 3, found: 4, detail: "seq 3 comes later"},
		"moved to the end": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			moved := c[1]
			return append(slices.Delete(c, 1, 2), moved), nil
		}, problem: Reordered, seq: 2, found: 3},
		"duplicated": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return slices.Insert(c, 3, c[2]), nil
		}, problem: Reordered, seq: 4, found: 3, detail: "twice"},
		"from another chain": {change: func(t *testing.T, c []Event) ([]Event, *Anchor) {
			s := NewMemorySink(0)
			var other Event
			for i := range 6 {
				other, _ = s.Append(context.Background(), Event{ID: fmt.Sprintf("other_%d", i), Type: Expired, Actor: "elevate", Time: t0})
			}
			c[5] = other
			return c, nil
		}, problem: Reordered, seq: 6, found: 6},
		"anchored, first retained removed": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return c[4:], &Anchor{Seq: c[2].Seq, Hash: c[2].Hash}
		}, problem: Removed, seq: 4, found: 5},
		"anchored, verifies": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return c[3:], &Anchor{Seq: c[2].Seq, Hash: c[2].Hash}
		}},
		"anchor of another chain": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) {
			return c[3:], &Anchor{Seq: 3, Hash: strings.Repeat("ab", 32)}
		}, problem: Reordered, seq: 4, found: 4, detail: "anchor's hash"},
		// Cutting off the newest events leaves a valid chain: the package
		// doc says to compare the head with one kept elsewhere.
		"last removed": {change: func(_ *testing.T, c []Event) ([]Event, *Anchor) { return c[:7], nil }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			events, anchor := tc.change(t, chainOf(t, 8))
			err := Verify(events, anchor)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v, want a *ChainError", err)
			}
			if ce.Problem != tc.problem || ce.Seq != tc.seq || ce.Found != tc.found || !strings.Contains(ce.Error(), tc.detail) {
				t.Fatalf("got %s (seq %d, found %d), want %s at seq %d (found %d) saying %q", ce, ce.Seq, ce.Found, tc.problem, tc.seq, tc.found, tc.detail)
			}
			if !strings.Contains(ce.Error(), fmt.Sprintf("seq %d", tc.seq)) {
				t.Fatalf("%q does not name seq %d", ce, tc.seq)
			}
		})
	}
}

func TestAuditVerifyBadAnchor(t *testing.T) {
	if err := Verify(nil, &Anchor{Seq: 3, Hash: "nope"}); !errors.Is(err, ErrNotChained) {
		t.Fatalf("error %v, want ErrNotChained", err)
	}
}

// The canonical form: sorted keys, empty members left out, fixed-width UTC
// times, strings escaped as jq prints them.
func TestAuditCanonical(t *testing.T) {
	exp := time.Date(2026, 3, 1, 18, 0, 0, 0, time.FixedZone("CET", 3600))
	tests := map[string]struct {
		e    Event
		want string
	}{
		"minimal": {Event{Seq: 1, PrevHash: Genesis, ID: "evt_1", Time: t0, Type: Expired, Actor: "elevate"},
			`{"actor":"elevate","id":"evt_1","prev_hash":"` + Genesis + `","seq":1,"time":"2026-03-01T09:30:00.123456789Z","type":"activation.expired"}`},
		"every member": {Event{Seq: 2, PrevHash: "p", Hash: "left out", ID: "i", Time: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), Type: PolicyDenied,
			Actor: "a", Principal: "pr", Role: "r", Scope: "/s", ActivationID: "act", AssignmentID: "asg", RequestID: "req",
			Justification: "j", Violations: []string{"v1", "v2"}, ExpiresAt: &exp, Reason: "why"},
			`{"activation_id":"act","actor":"a","assignment_id":"asg","expires_at":"2026-03-01T17:00:00.000000000Z","id":"i","justification":"j",` +
				`"prev_hash":"p","principal":"pr","reason":"why","request_id":"req","role":"r","scope":"/s","seq":2,` +
				`"time":"2026-03-01T10:00:00.000000000Z","type":"policy.denied","violations":["v1","v2"]}`},
		"escapes as jq": {Event{ID: "i", Actor: "<b>&amp;\"q\"\\ \u2028\u2029 é😀 \x7f\x00\x01\x1f\b\f\n\r\t /"},
			`{"actor":"<b>&amp;\"q\"\\ ` + "\u2028\u2029 é😀" + ` \u007f\u0000\u0001\u001f\b\f\n\r\t /","id":"i","prev_hash":"","seq":0,"time":"0001-01-01T00:00:00.000000000Z","type":""}`},
		"invalid UTF-8": {Event{ID: "i", Actor: "a\xff\xfeb"},
			`{"actor":"a` + "\uFFFD\uFFFD" + `b","id":"i","prev_hash":"","seq":0,"time":"0001-01-01T00:00:00.000000000Z","type":""}`},
		"empty violations": {Event{ID: "i", Violations: []string{}},
			`{"actor":"","id":"i","prev_hash":"","seq":0,"time":"0001-01-01T00:00:00.000000000Z","type":""}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Canonical(tc.e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("canonical\n got %s\nwant %s", got, tc.want)
			}
			// The members come out sorted, as jq -S and Go's encoding of a
			// map[string]any sort them.
			if keys := topKeys(t, got); !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
				t.Fatalf("members %v are not sorted and unique", keys)
			}
		})
	}
	if _, err := Canonical(Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Fatal("a year past 9999 was encoded")
	}
}

// The worked example of the package doc, kept true.
func TestAuditDocExample(t *testing.T) {
	e := Event{Seq: 1, PrevHash: Genesis, ID: "evt_1", Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC),
		Type: AssignmentCreated, Actor: "perparim@x", Principal: "sophia@x", Role: "user-administrator", Scope: "/"}
	c, err := Canonical(e)
	if err != nil {
		t.Fatal(err)
	}
	const wantCanonical = `{"actor":"perparim@x","id":"evt_1","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","principal":"sophia@x","role":"user-administrator","scope":"/","seq":1,"time":"2026-03-01T09:30:00.000000000Z","type":"assignment.created"}`
	const wantHash = "d010f355700104790cedd4bc8408d48d49c92417f4711c0bd3bbecd916f0cc0f"
	if string(c) != wantCanonical {
		t.Fatalf("canonical %s", c)
	}
	if h, _ := HashOf(e); h != wantHash {
		t.Fatalf("hash %s, want %s", h, wantHash)
	}
}

// topKeys are the members of a JSON object, in the order written.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", b)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// Trimming keeps the newest events and anchors them, so they still verify,
// and a removed first retained event is caught.
func TestAuditRetention(t *testing.T) {
	ctx := context.Background()
	for name, newSink := range sinks(t) {
		t.Run(name+"/max events", func(t *testing.T) {
			s := newSink(t, Retention{MaxEvents: 5})
			all := appendN(t, s, 12)
			if _, err := s.(Trimmer).Trim(ctx); err != nil {
				t.Fatal(err)
			}
			var anchor Anchor
			kept, err := s.Events(ctx, Filter{AnchorOut: &anchor})
			if err != nil {
				t.Fatal(err)
			}
			if len(kept) != 5 || kept[0].Seq != 8 || kept[4].Seq != 12 {
				t.Fatalf("kept seqs %v, want 8..12", seqs(kept))
			}
			if anchor != (Anchor{Seq: 7, Hash: all[6].Hash}) {
				t.Fatalf("anchor %+v, want seq 7 and its hash", anchor)
			}
			wantChain(t, kept, 8, &anchor)
			wantProblem(t, Verify(kept[1:], &anchor), Removed, 8)
			wantProblem(t, Verify(kept, nil), Removed, 1)
			// Trimming again changes nothing; appending goes on from the head.
			if n, err := s.(Trimmer).Trim(ctx); err != nil || n != 0 {
				t.Fatalf("second trim: %d, %v", n, err)
			}
			next, err := s.Append(ctx, Event{ID: "evt_next", Type: Expired, Actor: "elevate", Time: t0})
			if err != nil || next.Seq != 13 || next.PrevHash != all[11].Hash {
				t.Fatalf("append after trim: %+v, %v", next, err)
			}
		})
		t.Run(name+"/max age", func(t *testing.T) {
			s := newSink(t, Retention{MaxAge: time.Hour})
			now := time.Now()
			for i, at := range []time.Time{now.Add(-3 * time.Hour), now.Add(-2 * time.Hour), now.Add(-time.Minute),
				now.Add(-4 * time.Hour), now} { // the fourth: a replica with a slow clock
				if _, err := s.Append(ctx, Event{ID: fmt.Sprint(i), Type: Expired, Actor: "elevate", Time: at}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.(Trimmer).Trim(ctx); err != nil {
				t.Fatal(err)
			}
			var anchor Anchor
			kept, _ := s.Events(ctx, Filter{AnchorOut: &anchor})
			if got := seqs(kept); !slices.Equal(got, []int64{3, 4, 5}) || anchor.Seq != 2 {
				t.Fatalf("kept %v with anchor %d; want 3..5 anchored at 2 (trimming stops at the first young event)", got, anchor.Seq)
			}
			wantChain(t, kept, 3, &anchor)
		})
		t.Run(name+"/keep all", func(t *testing.T) {
			s := newSink(t, Retention{})
			appendN(t, s, 3)
			var anchor Anchor
			kept, _ := s.Events(ctx, Filter{AnchorOut: &anchor})
			if len(kept) != 3 || !anchor.IsZero() {
				t.Fatalf("kept %d, anchor %+v", len(kept), anchor)
			}
		})
	}
}

// Log.Record trims its sink at its first record and every trimEvery after.
func TestAuditRecordTrims(t *testing.T) {
	srv := harness.Redis(t)
	s := NewRedisSinkWith(srv.Client(t), Retention{MaxEvents: 10})
	logger := logrus.New()
	var out bytes.Buffer
	logger.SetOutput(&out)
	logger.SetFormatter(&logrus.JSONFormatter{})
	l := New(s, logger)
	ctx := context.Background()
	for range trimEvery + 1 {
		if err := l.Record(ctx, Event{Type: Expired, Actor: "elevate"}); err != nil {
			t.Fatal(err)
		}
	}
	var anchor Anchor
	kept, _ := l.Events(ctx, Filter{AnchorOut: &anchor})
	if len(kept) != 10 || anchor.Seq != trimEvery-9 {
		t.Fatalf("kept %d events from seq %d, anchor %d; want 10 after the trim at record %d", len(kept), kept[0].Seq, anchor.Seq, trimEvery+1)
	}
	wantChain(t, kept, anchor.Seq+1, &anchor)
	if !strings.Contains(out.String(), `"seq":101`) || !strings.Contains(out.String(), `"hash":"`+kept[9].Hash) {
		t.Fatalf("the process log lacks the chain's links: %.300s", out.String())
	}
}

func seqs(events []Event) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

func wantProblem(t *testing.T, err error, p Problem, seq int64) {
	t.Helper()
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Problem != p || ce.Seq != seq {
		t.Fatalf("error %v, want %s at seq %d", err, p, seq)
	}
}

// AfterSeq and Limit page through the trail; filters apply within pages.
func TestAuditPaging(t *testing.T) {
	ctx := context.Background()
	for name, newSink := range sinks(t) {
		t.Run(name, func(t *testing.T) {
			s := newSink(t, Retention{})
			for i := range 1205 { // more than two pages of the Redis reader
				if _, err := s.Append(ctx, Event{Type: Activated, Actor: "a", Principal: fmt.Sprintf("p%d", i%2), Time: t0}); err != nil {
					t.Fatal(err)
				}
			}
			tests := map[string]struct {
				f     Filter
				first int64
				n     int
			}{
				"first page":        {Filter{Limit: 100}, 1, 100},
				"next page":         {Filter{AfterSeq: 100, Limit: 100}, 101, 100},
				"across reads":      {Filter{AfterSeq: 450, Limit: 700}, 451, 700},
				"last, short":       {Filter{AfterSeq: 1200, Limit: 100}, 1201, 5},
				"past the end":      {Filter{AfterSeq: 1205}, 0, 0},
				"filtered in pages": {Filter{AfterSeq: 10, Principal: "p1", Limit: 3}, 12, 3},
			}
			for name, tc := range tests {
				got, err := s.Events(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != tc.n || tc.n > 0 && got[0].Seq != tc.first {
					t.Fatalf("%s: %d events from seq %v, want %d from %d", name, len(got), seqs(got[:min(1, len(got))]), tc.n, tc.first)
				}
			}
		})
	}
}

// fixture is a small chain with every member and the characters where
// encoders differ, written to testdata/ for the shell recipe to check.
func fixture(t *testing.T, keep Retention) (Sink, []Event) {
	t.Helper()
	s := NewMemorySinkWith(keep)
	exp := time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC)
	var out []Event
	for _, e := range []Event{
		{ID: "evt_1", Time: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC), Type: AssignmentCreated, Actor: "perparim@x",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", AssignmentID: "asg_1", Justification: `New <admin> & "owner" \ team`},
		{ID: "evt_2", Time: time.Date(2026, 3, 1, 9, 31, 0, 5, time.UTC), Type: ActivationRequested, Actor: "sophia@x",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", ActivationID: "act_1", RequestID: "req\x01\x7f",
			Justification: "Onboarding\n\tthree hires \u2028 é 😀"},
		{ID: "evt_3", Time: time.Date(2026, 3, 1, 9, 31, 1, 0, time.UTC), Type: PolicyDenied, Actor: "sophia@x",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", Violations: []string{"a ticket is required", "MFA is required"}},
		{ID: "evt_4", Time: time.Date(2026, 3, 1, 9, 32, 0, 0, time.UTC), Type: Activated, Actor: "perparim@x",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", ActivationID: "act_1", ExpiresAt: &exp},
		{ID: "evt_5", Time: time.Date(2026, 3, 1, 17, 30, 0, 0, time.UTC), Type: Expired, Actor: "elevate",
			Principal: "sophia@x", Role: "user-administrator", Scope: "/", ActivationID: "act_1", Reason: "its time ran out"},
	} {
		kept, err := s.Append(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, kept)
	}
	return s, out
}

func export(t *testing.T, s Sink, format Format, f Filter) []byte {
	t.Helper()
	var anchor Anchor
	f.AnchorOut = &anchor
	events, err := s.Events(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	x, err := NewExportWriter(&b, format, &anchor)
	if err != nil {
		t.Fatal(err)
	}
	// In two writes, as the CLI writes pages.
	half := len(events) / 2
	if err := x.Write(events[:half]...); err != nil {
		t.Fatal(err)
	}
	if err := x.Write(events[half:]...); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The exports in testdata/ are what the package doc's shell recipe is run
// against; regenerate them with -update.
func TestAuditGoldenExports(t *testing.T) {
	whole, _ := fixture(t, Retention{})
	trimmed, _ := fixture(t, Retention{MaxEvents: 3})
	tests := map[string]struct {
		s      Sink
		anchor int64
	}{"export.jsonl": {whole, 0}, "trimmed.jsonl": {trimmed, 2}}
	for file, tc := range tests {
		t.Run(file, func(t *testing.T) {
			got := export(t, tc.s, JSONL, Filter{})
			path := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s changed (run with -update if on purpose):\n%s", path, got)
			}
			x, err := ReadExport(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			if err := x.Verify(); err != nil {
				t.Fatal(err)
			}
			if (x.Anchor == nil) != (tc.anchor == 0) || x.Anchor != nil && x.Anchor.Seq != tc.anchor {
				t.Fatalf("anchor %+v, want seq %d", x.Anchor, tc.anchor)
			}
		})
	}
}

// Every format reads back to the same events, anchor included.
func TestAuditExportRoundTrip(t *testing.T) {
	s, events := fixture(t, Retention{MaxEvents: 4})
	for _, format := range []Format{JSONL, JSON} {
		t.Run(string(format), func(t *testing.T) {
			x, err := ReadExport(bytes.NewReader(export(t, s, format, Filter{})))
			if err != nil {
				t.Fatal(err)
			}
			if x.Anchor == nil || *x.Anchor != (Anchor{Seq: 1, Hash: events[0].Hash}) {
				t.Fatalf("anchor %+v", x.Anchor)
			}
			if err := x.Verify(); err != nil {
				t.Fatal(err)
			}
			for i, e := range x.Events {
				if !equalEvents(e, events[i+1]) {
					t.Fatalf("event %d read back as %+v, was %+v", i, e, events[i+1])
				}
			}
		})
	}
	t.Run("bare array", func(t *testing.T) {
		raw, _ := json.Marshal(events)
		x, err := ReadExport(bytes.NewReader(raw))
		if err != nil || len(x.Events) != 5 || x.Verify() != nil {
			t.Fatalf("%d events, %v, %v", len(x.Events), err, x.Verify())
		}
	})
	t.Run("csv", func(t *testing.T) {
		out := string(export(t, s, CSV, Filter{}))
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != strings.Join(csvHeader, ",") || !strings.HasPrefix(lines[1], "2,2026-03-01T09:31:00.000000005Z,activation.requested,") {
			t.Fatalf("csv:\n%s", out)
		}
		if !strings.Contains(out, ",a ticket is required; MFA is required,") {
			t.Fatalf("violations not joined by \"; \":\n%s", out)
		}
	})
}

func equalEvents(a, b Event) bool {
	ca, _ := appendEvent(nil, a, true)
	cb, _ := appendEvent(nil, b, true)
	return bytes.Equal(ca, cb)
}

// A file whose bytes are not what was hashed fails, even where its values
// decode to the same event: the shell recipe would fail it too.
func TestAuditExportOffForm(t *testing.T) {
	_, events := fixture(t, Retention{})
	line, _ := appendEvent(nil, events[2], true)
	tests := map[string]struct {
		edit   func(string) string
		reads  bool
		detail string
	}{
		"as written":          {edit: func(s string) string { return s }, reads: true},
		"reformatted":         {edit: func(s string) string { return strings.ReplaceAll(s, `":`, `": `) }, reads: true},
		"empty member added":  {edit: func(s string) string { return strings.Replace(s, `{`, `{"reason":"",`, 1) }, detail: `"reason"`},
		"null member added":   {edit: func(s string) string { return strings.Replace(s, `{`, `{"expires_at":null,`, 1) }, detail: `"expires_at"`},
		"time with an offset": {edit: func(s string) string { return strings.Replace(s, `09:31:01.000000000Z`, `10:31:01+01:00`, 1) }, detail: `"time"`},
		"seq as 3.0":          {edit: func(s string) string { return strings.Replace(s, `"seq":3`, `"seq":3.0`, 1) }},
		"unknown member":      {edit: func(s string) string { return strings.Replace(s, `{`, `{"note":"hi",`, 1) }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var file bytes.Buffer
			for i, e := range events {
				l, _ := appendEvent(nil, e, true)
				if i == 2 {
					l = []byte(tc.edit(string(line)))
				}
				file.Write(append(l, '\n'))
			}
			x, err := ReadExport(&file)
			if tc.detail == "" && !tc.reads {
				if err == nil {
					t.Fatal("read")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			err = x.Verify()
			if tc.reads {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantProblem(t, err, Altered, 3)
			if !strings.Contains(err.Error(), tc.detail) {
				t.Fatalf("%v does not name %s", err, tc.detail)
			}
		})
	}
}

func TestAuditReadExportRefuses(t *testing.T) {
	_, events := fixture(t, Retention{})
	ev, _ := appendEvent(nil, events[0], true)
	anchor := `{"anchor":{"hash":"` + Genesis + `","seq":1}}`
	tests := map[string]string{
		"nothing":                 "",
		"not JSON":                "hello\n",
		"anchor not first":        string(ev) + "\n" + anchor + "\n",
		"bad anchor hash":         `{"anchor":{"hash":"x","seq":1}}` + "\n",
		"anchor seq 0":            `{"anchor":{"hash":"` + Genesis + `","seq":0}}` + "\n",
		"two values on a line":    string(ev) + string(ev) + "\n",
		"array of strings":        `["a"]`,
		"json export, extra":      `{"events":[],"more":1}`,
		"event of the wrong type": `{"seq":"one"}` + "\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := ReadExport(strings.NewReader(in)); !errors.Is(err, ErrExport) && err == nil {
				t.Fatalf("read %q", in)
			}
		})
	}
}

// The parser of exports, which are untrusted input: it never panics, and
// what it accepts writes back out and reads back as the same events, with
// the same verdict.
func FuzzAuditReadExport(f *testing.F) {
	for _, file := range []string{"export.jsonl", "trimmed.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("sophia"), []byte("sofia")))
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"events":[{"seq":1}]}`))
	f.Add([]byte(`[{"seq":1,"time":"2026-01-01T00:00:00Z"}]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := ReadExport(bytes.NewReader(in))
		if err != nil {
			return
		}
		verdict := x.Verify()
		var b bytes.Buffer
		w, err := NewExportWriter(&b, JSONL, x.Anchor)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(x.Events...); err != nil {
			return // a value with no canonical form (such as a year past 9999)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		y, err := ReadExport(&b)
		if err != nil {
			if len(x.Events) == 0 && x.Anchor == nil {
				return
			}
			t.Fatalf("re-export does not read back: %v\n%s", err, b.String())
		}
		if len(y.Events) != len(x.Events) {
			t.Fatalf("%d events read back as %d", len(x.Events), len(y.Events))
		}
		for i := range x.Events {
			if !equalEvents(x.Events[i], y.Events[i]) {
				t.Fatalf("event %d changed on re-export", i)
			}
		}
		// Re-export writes the canonical form, so only an off-form verdict
		// may go away; any chain verdict stays.
		if again := y.Verify(); (again == nil) != (verdict == nil) && !offFormOnly(x) {
			t.Fatalf("verdict %v became %v", verdict, again)
		}
	})
}

func offFormOnly(x Export) bool { return len(x.offForm) > 0 }

// Whatever the strings of an event, it is kept, exported, read back and
// verified byte for byte: the canonical form round-trips.
func FuzzAuditCanonical(f *testing.F) {
	f.Add("sophia@x", "Onboarding <3> & \"more\"", "\u2028\x7f\x00", int64(1_700_000_000_123))
	f.Add("\xff", "", "\\", int64(0))
	f.Fuzz(func(t *testing.T, principal, justification, reason string, nanos int64) {
		s := NewMemorySink(0)
		at := time.Unix(0, nanos)
		for i := range 3 {
			if _, err := s.Append(context.Background(), Event{ID: fmt.Sprint(i), Type: Denied, Actor: principal, Principal: principal,
				Justification: justification, Reason: reason, Violations: []string{reason, justification}, Time: at, ExpiresAt: &at}); err != nil {
				t.Fatal(err)
			}
		}
		x, err := ReadExport(bytes.NewReader(export(t, s, JSONL, Filter{})))
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

// The keys share a hash tag, so appending, trimming and reading the anchor
// with its page (scripts and MULTI over several keys) work in a Cluster.
func TestAuditChainRedisCluster(t *testing.T) {
	cluster := harness.RedisCluster(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 3 {
		s := NewRedisSinkWith(cluster.Client(t), Retention{MaxEvents: 5})
		wg.Go(func() {
			for i := range 5 {
				if _, err := s.Append(ctx, Event{ID: fmt.Sprintf("%d-%d", w, i), Type: Expired, Actor: "elevate", Time: t0}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := NewRedisSinkWith(cluster.Client(t), Retention{MaxEvents: 5})
	if n, err := s.Trim(ctx); err != nil || n != 10 {
		t.Fatalf("trimmed %d, %v; want 10", n, err)
	}
	var anchor Anchor
	kept, err := s.Events(ctx, Filter{AnchorOut: &anchor})
	if err != nil {
		t.Fatal(err)
	}
	if anchor.Seq != 10 {
		t.Fatalf("anchor %+v, want seq 10", anchor)
	}
	wantChain(t, kept, 11, &anchor)
}
