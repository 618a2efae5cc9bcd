package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/elevatepdp/elevate/internal/store"
)

// Store times every operation of s and counts its failures.
func (m *Metrics) Store(s store.Store) store.Store { return &timedStore{s: s, m: m} }

type timedStore struct {
	s store.Store
	m *Metrics
}

var _ store.Store = (*timedStore)(nil)

// done records an operation; answers callers branch on (not found,
// conflict, stale, invalid) are not failures of the store.
func (t *timedStore) done(op string, start time.Time, err error) {
	failed := err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) &&
		!errors.Is(err, store.ErrStale) && !errors.Is(err, store.ErrInvalid)
	t.m.StoreOp(op, time.Since(start), failed)
}

func (t *timedStore) CreateAssignment(ctx context.Context, a store.Assignment) (err error) {
	defer func(start time.Time) { t.done("create_assignment", start, err) }(time.Now())
	return t.s.CreateAssignment(ctx, a)
}

func (t *timedStore) Assignment(ctx context.Context, id string) (a store.Assignment, err error) {
	defer func(start time.Time) { t.done("assignment", start, err) }(time.Now())
	return t.s.Assignment(ctx, id)
}

func (t *timedStore) Assignments(ctx context.Context, f store.AssignmentFilter) (as []store.Assignment, err error) {
	defer func(start time.Time) { t.done("assignments", start, err) }(time.Now())
	return t.s.Assignments(ctx, f)
}

func (t *timedStore) DeleteAssignment(ctx context.Context, id, by string, now time.Time) (a store.Assignment, r []store.Activation, err error) {
	defer func(start time.Time) { t.done("delete_assignment", start, err) }(time.Now())
	return t.s.DeleteAssignment(ctx, id, by, now)
}

func (t *timedStore) CreateActivation(ctx context.Context, a store.Activation) (out store.Activation, err error) {
	defer func(start time.Time) { t.done("create_activation", start, err) }(time.Now())
	return t.s.CreateActivation(ctx, a)
}

func (t *timedStore) UpdateActivation(ctx context.Context, a store.Activation) (out store.Activation, err error) {
	defer func(start time.Time) { t.done("update_activation", start, err) }(time.Now())
	return t.s.UpdateActivation(ctx, a)
}

func (t *timedStore) Activation(ctx context.Context, id string) (a store.Activation, err error) {
	defer func(start time.Time) { t.done("activation", start, err) }(time.Now())
	return t.s.Activation(ctx, id)
}

func (t *timedStore) Activations(ctx context.Context, f store.ActivationFilter) (as []store.Activation, err error) {
	defer func(start time.Time) { t.done("activations", start, err) }(time.Now())
	return t.s.Activations(ctx, f)
}

func (t *timedStore) Holdings(ctx context.Context, principal string, now time.Time) (h store.Holdings, err error) {
	defer func(start time.Time) { t.done("holdings", start, err) }(time.Now())
	return t.s.Holdings(ctx, principal, now)
}

func (t *timedStore) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) (as []store.Activation, err error) {
	defer func(start time.Time) { t.done("claim_due", start, err) }(time.Now())
	return t.s.ClaimDue(ctx, now, lease, limit)
}

func (t *timedStore) Ping(ctx context.Context) (err error) {
	defer func(start time.Time) { t.done("ping", start, err) }(time.Now())
	return t.s.Ping(ctx)
}

func (t *timedStore) Close() error { return t.s.Close() }
