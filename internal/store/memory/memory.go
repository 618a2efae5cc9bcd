// Package memory is a Store kept in this process: nothing is shared with
// other replicas or kept across restarts. It serves `make run` and
// `elevate serve` without Redis, with the same semantics as the Redis store,
// expiry included.
package memory

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/elevatepdp/elevate/internal/store"
)

// Store is an in-process store.Store.
type Store struct {
	mu          sync.Mutex
	now         func() time.Time
	assignments map[string]store.Assignment
	// elevations holds live elevations and those that ran out but were not
	// yet claimed by ClaimExpired.
	elevations map[string]store.Elevation
	seq        map[string]int // insertion order, for stable listings
	next       int
}

var _ store.Store = (*Store)(nil)

// New returns an empty store reading the time from now (time.Now if nil).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:         now,
		assignments: map[string]store.Assignment{},
		elevations:  map[string]store.Elevation{},
		seq:         map[string]int{},
	}
}

func (s *Store) order(id string) int {
	if _, ok := s.seq[id]; !ok {
		s.next++
		s.seq[id] = s.next
	}
	return s.seq[id]
}

func (s *Store) CreateAssignment(_ context.Context, a store.Assignment) error {
	if err := store.ValidateAssignment(a); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.assignments[a.ID]; ok {
		return fmt.Errorf("assignment %s: %w", a.ID, store.ErrConflict)
	}
	s.assignments[a.ID] = a
	s.order(a.ID)
	return nil
}

func (s *Store) Assignment(_ context.Context, id string) (store.Assignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assignments[id]
	if !ok {
		return store.Assignment{}, fmt.Errorf("assignment %s: %w", id, store.ErrNotFound)
	}
	return a, nil
}

func (s *Store) Assignments(_ context.Context, f store.AssignmentFilter) ([]store.Assignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []store.Assignment{}
	for _, a := range s.assignments {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return s.seq[out[i].ID] < s.seq[out[j].ID] })
	return out, nil
}

func (s *Store) DeleteAssignment(_ context.Context, id string) (store.Assignment, []store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assignments[id]
	if !ok {
		return store.Assignment{}, nil, fmt.Errorf("assignment %s: %w", id, store.ErrNotFound)
	}
	delete(s.assignments, id)
	now := s.now()
	ended := []store.Elevation{}
	for _, e := range s.sortedElevations(a.Principal) {
		if e.AssignmentID == id && now.Before(e.ExpiresAt) {
			delete(s.elevations, e.ID)
			ended = append(ended, e)
		}
	}
	return a, ended, nil
}

func (s *Store) Activate(_ context.Context, e store.Elevation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if err := store.ValidateElevation(e, now); err != nil {
		return err
	}
	if _, ok := s.assignments[e.AssignmentID]; !ok {
		return fmt.Errorf("assignment %s of elevation %s: %w", e.AssignmentID, e.ID, store.ErrNotFound)
	}
	if _, ok := s.elevations[e.ID]; ok {
		return fmt.Errorf("elevation %s: %w", e.ID, store.ErrConflict)
	}
	for _, other := range s.elevations {
		if other.Principal == e.Principal && other.Role == e.Role && other.Scope == e.Scope && now.Before(other.ExpiresAt) {
			return fmt.Errorf("%s already holds %s at %s: %w", e.Principal, e.Role, e.Scope, store.ErrConflict)
		}
	}
	s.elevations[e.ID] = e
	s.order(e.ID)
	return nil
}

func (s *Store) sortedElevations(principal string) []store.Elevation {
	out := []store.Elevation{}
	for _, e := range s.elevations {
		if e.Principal == principal {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return s.seq[out[i].ID] < s.seq[out[j].ID] })
	return out
}

func (s *Store) Elevations(_ context.Context, principal string, now time.Time) ([]store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := []store.Elevation{}
	for _, e := range s.sortedElevations(principal) {
		if e.Live(now) && s.now().Before(e.ExpiresAt) {
			live = append(live, e)
		}
	}
	return live, nil
}

func (s *Store) Elevation(_ context.Context, id string, now time.Time) (store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.elevations[id]
	if !ok || !now.Before(e.ExpiresAt) || !s.now().Before(e.ExpiresAt) {
		return store.Elevation{}, fmt.Errorf("elevation %s: %w", id, store.ErrNotFound)
	}
	return e, nil
}

func (s *Store) Deactivate(_ context.Context, id string) (store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.elevations[id]
	if !ok || !s.now().Before(e.ExpiresAt) {
		// An elevation that ran out is left for ClaimExpired to report.
		return store.Elevation{}, fmt.Errorf("elevation %s: %w", id, store.ErrNotFound)
	}
	delete(s.elevations, id)
	return e, nil
}

func (s *Store) Extend(_ context.Context, id string, expiresAt time.Time) (store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.elevations[id]
	if !ok || !now.Before(e.ExpiresAt) {
		return store.Elevation{}, fmt.Errorf("elevation %s: %w", id, store.ErrNotFound)
	}
	e.ExpiresAt = expiresAt
	if err := store.ValidateElevation(e, now); err != nil {
		return store.Elevation{}, err
	}
	s.elevations[id] = e
	return e, nil
}

func (s *Store) ClaimExpired(_ context.Context, now time.Time, limit int) ([]store.Elevation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	claimed := []store.Elevation{}
	for id, e := range s.elevations {
		if limit > 0 && len(claimed) == limit {
			break
		}
		if !now.Before(e.ExpiresAt) {
			delete(s.elevations, id)
			claimed = append(claimed, e)
		}
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].ExpiresAt.Before(claimed[j].ExpiresAt) })
	return claimed, nil
}

func (s *Store) Ping(context.Context) error { return nil }

func (s *Store) Close() error { return nil }
