package audit

import (
	"context"
	"sync"
)

// MemorySink keeps the newest events in this process, for `make run`.
type MemorySink struct {
	mu     sync.Mutex
	max    int
	events []Event
}

// NewMemorySink keeps up to max events (the oldest are dropped first).
func NewMemorySink(max int) *MemorySink { return &MemorySink{max: max} }

func (m *MemorySink) Append(_ context.Context, e Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
	if len(m.events) > m.max {
		m.events = append([]Event(nil), m.events[len(m.events)-m.max:]...)
	}
	return nil
}

func (m *MemorySink) Events(_ context.Context, f Filter) ([]Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []Event{}
	for _, e := range m.events {
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out, nil
}
