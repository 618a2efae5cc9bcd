package workflow

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/store"
)

// lease is how long a replica has to act on what it claimed before another
// replica may take it over.
const lease = 30 * time.Second

// Sweep does what has come due: pending requests time out, scheduled
// activations start (when their eligibility still holds), and elevations
// whose time ran out are recorded as expired. Access never waits for it: an
// ended elevation stops granting at its end whether or not it has run. Each
// transition, and so each audit event, happens once across all replicas.
func (s *Service) Sweep(ctx context.Context) error {
	due, err := s.store.ClaimDue(ctx, s.now(), lease, 100)
	if err != nil {
		return err
	}
	for _, act := range due {
		s.sweepOne(ctx, act)
	}
	return nil
}

func (s *Service) sweepOne(ctx context.Context, act store.Activation) {
	now := s.now().UTC()
	next := act
	event := audit.Expired
	switch act.Status {
	case store.Pending:
		next, event = end(act, store.TimedOut, system, "nobody decided in time", now), audit.TimedOut
	case store.Live:
		next = end(act, store.Expired, system, "", *act.ExpiresAt)
	case store.Scheduled:
		// Eligibility is checked again when the activation starts: the
		// assignment that allowed it must still exist and hold now.
		a, err := s.store.Assignment(ctx, act.AssignmentID)
		d, derr := time.ParseDuration(act.Duration)
		switch {
		case err == nil && derr == nil && windowHolds(a, now):
			start(&next, now, d)
			event = audit.Activated
		case err == nil || errors.Is(err, store.ErrNotFound):
			next, event = end(act, store.Revoked, system, "the eligibility no longer holds at the scheduled start", now), audit.Revoked
		default:
			s.log.WithError(err).WithField("activation_id", act.ID).Warn("scheduled activation not started; will retry")
			return
		}
	default:
		return
	}
	stored, err := s.store.UpdateActivation(ctx, next)
	if err != nil {
		// Someone else changed it first (stale), or it is not over yet by the
		// store's clock (conflict): either way the lease brings it back if
		// anything is left to do.
		s.log.WithFields(logrus.Fields{"activation_id": act.ID, "error": err.Error()}).Debug("due activation not changed")
		return
	}
	// The transition happened once, here; its event cannot be undone into
	// the past (an expiry stays an expiry), so a lost event is only logged.
	if err := s.commitActivation(ctx, event, system, "", stored, nil); err != nil {
		s.log.WithFields(logrus.Fields{"activation_id": stored.ID, "error": err.Error()}).Error("audit event of a due transition lost")
	}
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.WithError(err).Warn("sweep failed; retrying")
			}
		}
	}
}
