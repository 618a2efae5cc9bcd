package audit

import (
	"context"
	"sort"
	"sync"
	"time"
)

// MemorySink keeps the trail in this process, for `make run` and tests. It
// chains under its mutex and applies its retention on every append (cheap
// here: the oldest events are at the front of a slice).
type MemorySink struct {
	mu     sync.Mutex
	keep   Retention
	now    func() time.Time
	head   Anchor // the newest event, or the anchor, or zero
	anchor Anchor
	events []Event
}

var (
	_ Sink    = (*MemorySink)(nil)
	_ Trimmer = (*MemorySink)(nil)
)

// NewMemorySink keeps up to max events (the oldest are dropped first; 0
// keeps all).
func NewMemorySink(max int) *MemorySink { return NewMemorySinkWith(Retention{MaxEvents: max}) }

// NewMemorySinkWith keeps what keep says.
func NewMemorySinkWith(keep Retention) *MemorySink {
	return &MemorySink{keep: keep, now: time.Now}
}

func (m *MemorySink) Append(_ context.Context, e Event) (Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := chain(m.head, e)
	if err != nil {
		return Event{}, err
	}
	m.events = append(m.events, e)
	m.head = Anchor{Seq: e.Seq, Hash: e.Hash}
	m.trim()
	return e, nil
}

// Trim applies the retention; Append does too, so this only matters for a
// MaxAge passing while nothing is appended.
func (m *MemorySink) Trim(context.Context) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trim(), nil
}

func (m *MemorySink) trim() int {
	cut := 0
	if m.keep.MaxEvents > 0 && len(m.events) > m.keep.MaxEvents {
		cut = len(m.events) - m.keep.MaxEvents
	}
	if m.keep.MaxAge > 0 {
		cutoff := m.now().Add(-m.keep.MaxAge)
		for cut < len(m.events) && m.events[cut].Time.Before(cutoff) {
			cut++
		}
	}
	if cut == 0 {
		return 0
	}
	last := m.events[cut-1]
	m.anchor = Anchor{Seq: last.Seq, Hash: last.Hash}
	// Reslicing keeps this O(1) per append; the next growth of the slice
	// copies only the kept events and lets the old array go.
	clear(m.events[:cut])
	m.events = m.events[cut:]
	return cut
}

func (m *MemorySink) Events(_ context.Context, f Filter) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f.AnchorOut != nil {
		*f.AnchorOut = m.anchor
	}
	out := []Event{}
	start := sort.Search(len(m.events), func(i int) bool { return m.events[i].Seq > f.AfterSeq })
	for _, e := range m.events[start:] {
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		if f.Match(e) {
			out = append(out, copyEvent(e))
		}
	}
	return out, nil
}

// copyEvent is e sharing nothing with the sink, so a caller changing what
// it got cannot change the trail.
func copyEvent(e Event) Event {
	if e.Violations != nil {
		e.Violations = append([]string(nil), e.Violations...)
	}
	if e.ExpiresAt != nil {
		t := *e.ExpiresAt
		e.ExpiresAt = &t
	}
	return e
}
