package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
)

// lease is how long a replica has to act on what it claimed before another
// replica may take it over.
const lease = 30 * time.Second

// Sweep does what has come due: pending requests time out, scheduled
// activations start (decided again, see scheduledStart), and elevations
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
	var refused []string
	switch act.Status {
	case store.Pending:
		next, event = end(act, store.TimedOut, system, "nobody decided in time", now), audit.TimedOut
	case store.Live:
		next = end(act, store.Expired, system, "", *act.ExpiresAt)
	case store.Scheduled:
		var err error
		if next, refused, err = s.scheduledStart(ctx, act, now); err != nil {
			s.log.WithError(err).WithField("activation_id", act.ID).Warn("scheduled activation not started; will retry")
			return
		}
		event = audit.Activated
		if refused != nil {
			event = audit.Revoked
		}
	default:
		return
	}
	stored, err := s.store.UpdateActivation(ctx, next)
	if err != nil {
		// Someone else changed it first (stale), or it is not over yet by the
		// store's clock, or the role is live at the scope meanwhile
		// (conflict): the lease brings it back if anything is left to do,
		// and a scheduled start is then decided again.
		s.log.WithFields(logrus.Fields{"activation_id": act.ID, "error": err.Error()}).Debug("due activation not changed")
		return
	}
	// The transition happened once, here; its event cannot be undone into
	// the past (an expiry stays an expiry), so a lost event is only logged.
	e := activationEvent(event, system, "", stored)
	if event == audit.Revoked {
		e.Violations = refused
	}
	if err := s.commit(ctx, e, nil); err != nil {
		s.log.WithFields(logrus.Fields{"activation_id": stored.ID, "error": err.Error()}).Error("audit event of a due transition lost")
	}
}

// scheduledStart decides a scheduled activation again when its start has
// come, on the facts of now: its eligible assignment must still exist and
// hold now, and the activation policy must allow the request again (the
// role not live at the scope, the eligibility's window, the role's settings
// as they are now; its start and its second factor are judged as at the
// request). It starts for what is left of the time it was approved for,
// StartAt plus its duration and never past its eligibility's end, however
// late the sweep comes; one whose time has passed, or that the policy
// refuses, is ended as revoked with the reasons (returned too). An error is
// a failure to decide: nothing changes and the lease brings it back.
func (s *Service) scheduledStart(ctx context.Context, act store.Activation, now time.Time) (store.Activation, []string, error) {
	refuse := func(reasons ...string) (store.Activation, []string, error) {
		if len(reasons) == 0 {
			reasons = []string{"the activation policy did not allow it"}
		}
		next := end(act, store.Revoked, system, "not started at its scheduled start: "+strings.Join(reasons, "; "), now)
		return next, reasons, nil
	}
	d, err := time.ParseDuration(act.Duration)
	if err != nil || act.StartAt == nil {
		return refuse(fmt.Sprintf("its duration %q or its start is not usable", act.Duration))
	}
	a, err := s.store.Assignment(ctx, act.AssignmentID)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("the eligible assignment " + act.AssignmentID + " was removed")
	}
	if err != nil {
		return store.Activation{}, nil, err
	}
	until := act.StartAt.Add(d)
	if a.End != nil && a.End.Before(until) {
		until = *a.End
	}
	if !windowHolds(a, now) {
		return refuse("the eligible assignment " + a.ID + " does not hold at " + now.Format(time.RFC3339Nano))
	}
	if !now.Before(until) {
		return refuse("the time it was approved for ended at " + until.Format(time.RFC3339Nano) + ", before it could start")
	}
	f, err := s.facts(ctx, act.Principal, now)
	if err != nil {
		return store.Activation{}, nil, err
	}
	dec, err := s.decide(ctx, policy.ActivationDecision, map[string]any{
		"now": now.UnixNano(), "principal": act.Principal,
		"request": map[string]any{
			"role": act.Role, "scope": act.Scope, "duration": act.Duration,
			"justification": act.Justification, "ticket": ticketInput(act.Ticket),
			"start": act.StartAt.UnixNano(), "requested_at": act.RequestedAt.UnixNano(),
		},
		"mfa": mfaInput(act.MFA), "assignments": f.assignmentsInput(), "elevations": f.elevationsInput(),
	})
	if err != nil {
		return store.Activation{}, nil, err
	}
	if dec["allow"] != true {
		return refuse(violations(dec)...)
	}
	if dec["requires_approval"] == true && len(act.Approvals) < int(number(dec["approvals_required"])) {
		return refuse(act.Role + " now needs approval: request it again")
	}
	next := act
	next.Status, next.Deadline = store.Live, nil
	next.ActivatedAt, next.ExpiresAt = ptr(now), ptr(until)
	return next, nil, nil
}

// mfaRecord is the second factor of a decision's input (see mfa), kept
// with a scheduled activation.
func mfaRecord(m any) *store.MFA {
	in, ok := m.(map[string]any)
	if !ok {
		return nil
	}
	r := &store.MFA{Methods: []string{}}
	methods, _ := in["methods"].([]any)
	for _, x := range methods {
		if m, ok := x.(string); ok {
			r.Methods = append(r.Methods, m)
		}
	}
	if at, ok := in["auth_time"].(int64); ok {
		r.AuthTime = ptr(time.Unix(0, at).UTC())
	}
	return r
}

// mfaInput is a kept second factor as the activation policy reads it.
func mfaInput(r *store.MFA) any {
	if r == nil {
		return nil
	}
	methods := make([]any, len(r.Methods))
	for i, m := range r.Methods {
		methods[i] = m
	}
	return map[string]any{"methods": methods, "auth_time": ns(r.AuthTime)}
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
