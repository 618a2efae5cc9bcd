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
	activations map[string]store.Activation
	// leases hold activations claimed by ClaimDue until they run out.
	leases map[string]time.Time
	seq    map[string]int // insertion order, for stable listings
	next   int
	totp   totpState
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
		activations: map[string]store.Activation{},
		leases:      map[string]time.Time{},
		seq:         map[string]int{},
		totp:        totpState{secrets: map[string]string{}, used: map[string]time.Time{}, failures: map[string]totpFailures{}, wrong: map[string]totpFailures{}, invites: map[string]totpInvite{}},
	}
}

func (s *Store) order(id string) int {
	if _, ok := s.seq[id]; !ok {
		s.next++
		s.seq[id] = s.next
	}
	return s.seq[id]
}

func sortBySeq[T any](s *Store, xs []T, id func(T) string) {
	sort.Slice(xs, func(i, j int) bool { return s.seq[id(xs[i])] < s.seq[id(xs[j])] })
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
	sortBySeq(s, out, func(a store.Assignment) string { return a.ID })
	return out, nil
}

func (s *Store) DeleteAssignment(_ context.Context, id, by string, now time.Time) (store.Assignment, []store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assignments[id]
	if !ok {
		return store.Assignment{}, nil, fmt.Errorf("assignment %s: %w", id, store.ErrNotFound)
	}
	delete(s.assignments, id)
	revoked := []store.Activation{}
	for _, act := range s.byPrincipal(a.Principal) {
		if act.AssignmentID == id && (s.live(act) || act.Status == store.Pending || act.Status == store.Scheduled) {
			act = store.Revoke(act, by, now)
			act.Version++
			s.activations[act.ID] = act
			revoked = append(revoked, act)
		}
	}
	return a, revoked, nil
}

// live reports whether the elevation of a runs by the store's clock, as a
// Redis key would exist.
func (s *Store) live(a store.Activation) bool {
	return a.Status == store.Live && s.now().Before(*a.ExpiresAt)
}

func (s *Store) byPrincipal(principal string) []store.Activation {
	out := []store.Activation{}
	for _, a := range s.activations {
		if a.Principal == principal {
			out = append(out, a)
		}
	}
	sortBySeq(s, out, func(a store.Activation) string { return a.ID })
	return out
}

func (s *Store) CreateActivation(_ context.Context, a store.Activation) (store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.activations[a.ID]; ok {
		return store.Activation{}, fmt.Errorf("activation %s: %w", a.ID, store.ErrConflict)
	}
	a.Version = 1
	if err := s.apply(nil, a); err != nil {
		return store.Activation{}, err
	}
	s.order(a.ID)
	return a, nil
}

func (s *Store) UpdateActivation(_ context.Context, a store.Activation) (store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.activations[a.ID]
	if !ok {
		return store.Activation{}, fmt.Errorf("activation %s: %w", a.ID, store.ErrNotFound)
	}
	if old.Version != a.Version {
		return store.Activation{}, fmt.Errorf("activation %s: %w", a.ID, store.ErrStale)
	}
	a.Version++
	if err := s.apply(&old, a); err != nil {
		return store.Activation{}, err
	}
	return a, nil
}

// apply checks that old may become a and stores it, with s.mu held.
func (s *Store) apply(old *store.Activation, a store.Activation) error {
	effect, err := store.EffectOf(old, a, s.now())
	if err != nil {
		return err
	}
	switch effect {
	case store.Start:
		if _, ok := s.assignments[a.AssignmentID]; !ok {
			return fmt.Errorf("assignment %s of activation %s: %w", a.AssignmentID, a.ID, store.ErrNotFound)
		}
		for _, other := range s.byPrincipal(a.Principal) {
			if other.ID != a.ID && other.Role == a.Role && other.Scope == a.Scope && s.live(other) {
				return fmt.Errorf("%s already holds %s at %s: %w", a.Principal, a.Role, a.Scope, store.ErrConflict)
			}
		}
	case store.End, store.Extend:
		if !s.live(*old) {
			return fmt.Errorf("activation %s already ended: %w", a.ID, store.ErrConflict)
		}
	case store.Expire:
		if s.live(*old) {
			return fmt.Errorf("activation %s has not run out: %w", a.ID, store.ErrConflict)
		}
	}
	s.activations[a.ID] = a
	delete(s.leases, a.ID)
	return nil
}

func (s *Store) Activation(_ context.Context, id string) (store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activations[id]
	if !ok {
		return store.Activation{}, fmt.Errorf("activation %s: %w", id, store.ErrNotFound)
	}
	return a, nil
}

func (s *Store) Activations(_ context.Context, f store.ActivationFilter) ([]store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []store.Activation{}
	for _, a := range s.activations {
		if f.Match(a) {
			out = append(out, a)
		}
	}
	sortBySeq(s, out, func(a store.Activation) string { return a.ID })
	return out, nil
}

func (s *Store) Holdings(_ context.Context, principal string, now time.Time) (store.Holdings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := store.Holdings{Assignments: []store.Assignment{}, Elevations: []store.Activation{}}
	for _, a := range s.byPrincipal(principal) {
		if s.live(a) && a.LiveAt(now) {
			h.Elevations = append(h.Elevations, a)
		}
	}
	for _, a := range s.assignments {
		if a.Principal == principal {
			h.Assignments = append(h.Assignments, a)
		}
	}
	sortBySeq(s, h.Assignments, func(a store.Assignment) string { return a.ID })
	return h, nil
}

func (s *Store) ClaimDue(_ context.Context, now time.Time, lease time.Duration, limit int) ([]store.Activation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	due := []store.Activation{}
	for _, a := range s.activations {
		at := a.Due()
		if at == nil || now.Before(*at) || now.Before(s.leases[a.ID]) {
			continue
		}
		due = append(due, a)
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Due().Before(*due[j].Due()) })
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	for _, a := range due {
		s.leases[a.ID] = now.Add(lease)
	}
	return due, nil
}

func (s *Store) Ping(context.Context) error { return nil }

func (s *Store) Close() error { return nil }
