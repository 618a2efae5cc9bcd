package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/ids"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
)

// MFAEvidence is a second factor given with a request (the built-in TOTP).
type MFAEvidence struct {
	TOTP string `json:"totp"`
}

// ActivationRequest asks to activate an eligible role.
type ActivationRequest struct {
	Role          string        `json:"role"`
	Scope         string        `json:"scope"`
	Duration      string        `json:"duration"`
	Justification string        `json:"justification"`
	Ticket        *store.Ticket `json:"ticket"`
	MFA           *MFAEvidence  `json:"mfa"`
	// Start schedules the activation for later.
	Start *time.Time `json:"start"`
}

// retries bounds how often a change is decided again after another replica
// changed the same activation first.
const retries = 8

// user refuses decision clients: they decide, and never act on a
// principal's own requests, roles or audit trail, even one of the same name.
func (s *Service) user(c Caller, what string) error {
	if c.Kind != identity.User {
		return fmt.Errorf("%w: a decision client cannot %s", ErrForbidden, what)
	}
	return nil
}

// mfa is the caller's second-factor evidence: a TOTP code given with the
// request, or what the caller's token says. A code is checked here but not
// used up: the caller passes the Accepted code (nil when none) to useTOTP
// just before making the change, so a request refused for another reason
// does not cost the user the code.
func (s *Service) mfa(ctx context.Context, c Caller, ev *MFAEvidence, now time.Time, a audit.Event) (any, *identity.Accepted, error) {
	if ev != nil && ev.TOTP != "" {
		code, err := s.checkTOTP(ctx, c, ev.TOTP, now, a)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"methods": []any{"totp"}, "auth_time": now.UnixNano()}, &code, nil
	}
	if len(c.MFA.Methods) == 0 {
		return nil, nil, nil
	}
	methods := make([]any, len(c.MFA.Methods))
	for i, m := range c.MFA.Methods {
		methods[i] = m
	}
	var authTime any
	if !c.MFA.AuthTime.IsZero() {
		authTime = c.MFA.AuthTime.UnixNano()
	}
	return map[string]any{"methods": methods, "auth_time": authTime}, nil, nil
}

func ticketInput(t *store.Ticket) any {
	if t == nil {
		return nil
	}
	return map[string]any{"system": t.System, "number": t.Number}
}

func number(v any) int64 {
	switch n := v.(type) {
	case interface{ Int64() (int64, error) }:
		i, _ := n.Int64()
		return i
	case float64:
		return int64(n)
	}
	return 0
}

// Activate asks data.pim.activation.decision whether the caller may activate
// the role and, when allowed, stores the activation: live at once, pending
// approval, or scheduled.
func (s *Service) Activate(ctx context.Context, c Caller, r ActivationRequest) (store.Activation, error) {
	if err := s.user(c, "activate roles"); err != nil {
		return store.Activation{}, err
	}
	now := s.now().UTC()
	if err := s.limits.activation(&r, now); err != nil {
		return store.Activation{}, err
	}
	if r.Role == "" {
		return store.Activation{}, invalid("role is required, such as user-administrator")
	}
	sc, err := scope(r.Scope)
	if err != nil {
		return store.Activation{}, err
	}
	if r.Duration != "" {
		if _, err := time.ParseDuration(r.Duration); err != nil {
			return store.Activation{}, invalid("duration %q is not a duration such as 30m or 2h", r.Duration)
		}
	}
	role, err := s.role(ctx, r.Role)
	if err != nil {
		return store.Activation{}, err
	}
	id := ids.New("act_")
	event := audit.Event{
		Actor: c.Principal, Principal: c.Principal, Role: role.ID, Scope: sc,
		ActivationID: id, RequestID: c.RequestID, Justification: r.Justification,
	}
	requested := event
	requested.Type = audit.ActivationRequested
	if err := s.commit(ctx, requested, nil); err != nil {
		return store.Activation{}, err
	}

	mfa, code, err := s.mfa(ctx, c, r.MFA, now, event)
	if err != nil {
		return store.Activation{}, err
	}
	f, err := s.facts(ctx, c.Principal, now)
	if err != nil {
		return store.Activation{}, err
	}
	// The policy says so too; a conflict with existing state is a 409 to
	// the caller, whichever replica saw it first.
	for _, e := range f.Elevations {
		if e.Role == role.ID && e.Scope == sc && (e.ExpiresAt == nil || now.Before(*e.ExpiresAt)) {
			return store.Activation{}, fmt.Errorf("%s is already active at %s: %w", role.Name, sc, store.ErrConflict)
		}
	}
	request := map[string]any{
		"role": role.ID, "scope": sc, "duration": r.Duration,
		"justification": r.Justification, "ticket": ticketInput(r.Ticket),
	}
	if r.Start != nil {
		request["start"] = r.Start.UnixNano()
	}
	d, err := s.decide(ctx, policy.ActivationDecision, map[string]any{
		"now": now.UnixNano(), "principal": c.Principal, "request": request, "mfa": mfa,
		"assignments": f.assignmentsInput(), "elevations": f.elevationsInput(),
	})
	if err != nil {
		return store.Activation{}, err
	}
	if d["allow"] != true {
		denied := event
		denied.Type, denied.Violations = audit.PolicyDenied, violations(d)
		s.record(ctx, denied)
		return store.Activation{}, &DeniedError{What: "activation", Violations: denied.Violations}
	}

	duration := time.Duration(number(d["duration_ns"]))
	assignmentID, _ := d["assignment"].(string)
	granted, _ := d["duration"].(string)
	act := store.Activation{
		ID: id, Principal: c.Principal, Role: role.ID, Scope: sc, AssignmentID: assignmentID,
		Duration: granted, Justification: r.Justification, Ticket: r.Ticket,
		Approvals: []store.Approval{}, RequestedAt: now,
	}
	if r.Start != nil && r.Start.After(now) {
		// Decided again at its start (see scheduledStart), with the
		// second factor given now.
		act.StartAt, act.MFA = utc(r.Start), mfaRecord(mfa)
	}
	switch {
	case d["requires_approval"] == true:
		timeout, err := parseDuration("pending_timeout", role.Settings.PendingTimeout)
		if err != nil {
			return store.Activation{}, err
		}
		act.Status, act.ApprovalsRequired = store.Pending, int(number(d["approvals_required"]))
		act.Deadline = ptr(now.Add(timeout))
	case act.StartAt != nil:
		act.Status = store.Scheduled
	default:
		start(&act, now, duration)
	}
	if code != nil {
		if err := s.useTOTP(ctx, c, *code); err != nil {
			return store.Activation{}, err
		}
	}
	act, err = s.store.CreateActivation(ctx, act)
	if err != nil {
		return store.Activation{}, storeErr(err)
	}
	if act.Status == store.Live {
		undo := func(ctx context.Context) error {
			_, err := s.store.UpdateActivation(ctx, end(act, store.Revoked, system, "the audit trail could not be written", s.now().UTC()))
			return err
		}
		if err := s.commitActivation(ctx, audit.Activated, c.Principal, c.RequestID, act, undo); err != nil {
			return store.Activation{}, err
		}
	}
	return act, nil
}

func ptr(t time.Time) *time.Time { return &t }

// start makes act live from now for d.
func start(act *store.Activation, now time.Time, d time.Duration) {
	act.Status, act.Deadline = store.Live, nil
	act.ActivatedAt, act.ExpiresAt = ptr(now), ptr(now.Add(d))
}

func activationEvent(t audit.Type, actor, requestID string, a store.Activation) audit.Event {
	return audit.Event{
		Type: t, Actor: actor, Principal: a.Principal, Role: a.Role, Scope: a.Scope,
		ActivationID: a.ID, AssignmentID: a.AssignmentID, RequestID: requestID,
		Justification: a.Justification, ExpiresAt: a.ExpiresAt, Reason: a.EndReason,
	}
}

// commitActivation is commit of an activation's event.
func (s *Service) commitActivation(ctx context.Context, t audit.Type, actor, requestID string, a store.Activation, undo func(context.Context) error) error {
	return s.commit(ctx, activationEvent(t, actor, requestID, a), undo)
}

// change reads an activation, lets next decide its new state, and stores it,
// deciding again when another replica changed it in between. It returns the
// activation as it was and as it is now.
func (s *Service) change(ctx context.Context, id string, next func(store.Activation, time.Time) (store.Activation, error)) (before, after store.Activation, err error) {
	for range retries {
		act, err := s.store.Activation(ctx, id)
		if err != nil {
			return store.Activation{}, store.Activation{}, storeErr(err)
		}
		updated, err := next(act, s.now().UTC())
		if err != nil {
			return store.Activation{}, store.Activation{}, err
		}
		stored, err := s.store.UpdateActivation(ctx, updated)
		if errors.Is(err, store.ErrStale) {
			continue
		}
		if err != nil {
			return store.Activation{}, store.Activation{}, storeErr(err)
		}
		return act, stored, nil
	}
	return store.Activation{}, store.Activation{}, fmt.Errorf("activation %s kept changing: %w", id, store.ErrConflict)
}

// approval asks data.pim.approval.decision whether the caller may take
// action on act, returning its violations when it may not.
func (s *Service) approval(ctx context.Context, c Caller, act store.Activation, action, justification string, now time.Time) (bool, []string, error) {
	f, err := s.facts(ctx, c.Principal, now)
	if err != nil {
		return false, nil, err
	}
	approvals := make([]any, len(act.Approvals))
	for i, a := range act.Approvals {
		approvals[i] = map[string]any{"approver": a.Approver, "at": a.At.UnixNano(), "justification": a.Justification}
	}
	d, err := s.decide(ctx, policy.ApprovalDecision, map[string]any{
		"now": now.UnixNano(), "approver": c.Principal, "action": action, "justification": justification,
		"request": map[string]any{
			"id": act.ID, "principal": act.Principal, "role": act.Role, "scope": act.Scope,
			"status": string(act.Status), "expires_at": ns(act.Deadline), "approvals": approvals,
		},
		"elevations": f.elevationsInput(),
	})
	if err != nil {
		return false, nil, err
	}
	return d["allow"] == true, violations(d), nil
}

// decideApproval is approval, audited, with a no as a DeniedError.
func (s *Service) decideApproval(ctx context.Context, c Caller, act store.Activation, action, justification string, now time.Time) error {
	ok, v, err := s.approval(ctx, c, act, action, justification, now)
	if err != nil || ok {
		return err
	}
	s.record(ctx, audit.Event{
		Type: audit.PolicyDenied, Actor: c.Principal, Principal: act.Principal, Role: act.Role, Scope: act.Scope,
		ActivationID: act.ID, RequestID: c.RequestID, Justification: justification, Violations: v, Reason: action,
	})
	return &DeniedError{What: action, Violations: v}
}

// mayApprove reports whether the caller could approve act, giving a
// justification: the view of an approver's queue, not a decision, so it is
// not audited.
func (s *Service) mayApprove(ctx context.Context, c Caller, act store.Activation) (bool, error) {
	if c.Kind != identity.User || act.Status != store.Pending {
		return false, nil
	}
	ok, _, err := s.approval(ctx, c, act, "approve", "reviewing the queue", s.now().UTC())
	return ok, err
}

// notFound is what a caller who may not see an activation is told: the
// same as for an id that does not exist.
func notFound(id string) error {
	return fmt.Errorf("activation %s: %w", id, store.ErrNotFound)
}

func notPending(act store.Activation) error {
	return fmt.Errorf("activation %s is %s, not pending approval: %w", act.ID, act.Status, store.ErrConflict)
}

// Approve adds the caller's approval when data.pim.approval.decision allows
// it; the last approval needed starts the elevation in the same atomic step.
func (s *Service) Approve(ctx context.Context, c Caller, id, justification string) (store.Activation, error) {
	if err := s.user(c, "approve"); err != nil {
		return store.Activation{}, err
	}
	justification, err := s.limits.reason("justification", justification)
	if err != nil {
		return store.Activation{}, err
	}
	before, act, err := s.change(ctx, id, func(act store.Activation, now time.Time) (store.Activation, error) {
		if act.Status != store.Pending {
			return act, notPending(act)
		}
		if err := s.decideApproval(ctx, c, act, "approve", justification, now); err != nil {
			return act, err
		}
		act.Approvals = append(append([]store.Approval{}, act.Approvals...), store.Approval{Approver: c.Principal, At: now, Justification: justification})
		if len(act.Approvals) < act.ApprovalsRequired {
			return act, nil
		}
		d, err := time.ParseDuration(act.Duration)
		if err != nil {
			return act, fmt.Errorf("%w: stored duration %q: %w", ErrUnavailable, act.Duration, err)
		}
		if act.StartAt != nil {
			// The sweep starts it, decided again, for the time it was
			// requested for: at once when its start has passed, ending
			// at its start plus its duration, not a duration from now.
			act.Status, act.Deadline = store.Scheduled, nil
		} else {
			start(&act, now, d)
		}
		return act, nil
	})
	if err != nil {
		return store.Activation{}, err
	}
	approved := audit.Event{
		Type: audit.Approved, Actor: c.Principal, Principal: act.Principal, Role: act.Role, Scope: act.Scope,
		ActivationID: act.ID, RequestID: c.RequestID, Justification: justification,
	}
	undo := s.restore(before, act)
	if err := s.commit(ctx, approved, undo); err != nil {
		return store.Activation{}, err
	}
	if act.Status == store.Live {
		if err := s.commitActivation(ctx, audit.Activated, c.Principal, c.RequestID, act, undo); err != nil {
			return store.Activation{}, err
		}
	}
	return act, nil
}

// Deny ends a pending request when data.pim.approval.decision lets the
// caller decide it. One denial is enough.
func (s *Service) Deny(ctx context.Context, c Caller, id, justification string) (store.Activation, error) {
	if err := s.user(c, "deny"); err != nil {
		return store.Activation{}, err
	}
	justification, err := s.limits.reason("justification", justification)
	if err != nil {
		return store.Activation{}, err
	}
	before, act, err := s.change(ctx, id, func(act store.Activation, now time.Time) (store.Activation, error) {
		if act.Status != store.Pending {
			return act, notPending(act)
		}
		if err := s.decideApproval(ctx, c, act, "deny", justification, now); err != nil {
			return act, err
		}
		return end(act, store.Denied, c.Principal, justification, now), nil
	})
	if err != nil {
		return store.Activation{}, err
	}
	if err := s.commitActivation(ctx, audit.Denied, c.Principal, c.RequestID, act, s.restore(before, act)); err != nil {
		return store.Activation{}, err
	}
	return act, nil
}

func end(act store.Activation, status store.Status, by, reason string, now time.Time) store.Activation {
	act.Status, act.EndedAt, act.EndedBy, act.EndReason = status, ptr(now), by, reason
	return act
}

// Cancel withdraws the caller's own pending or scheduled request.
func (s *Service) Cancel(ctx context.Context, c Caller, id, reason string) (store.Activation, error) {
	if err := s.user(c, "cancel"); err != nil {
		return store.Activation{}, err
	}
	reason, err := s.limits.reason("justification", reason)
	if err != nil {
		return store.Activation{}, err
	}
	before, act, err := s.change(ctx, id, func(act store.Activation, now time.Time) (store.Activation, error) {
		if act.Principal != c.Principal {
			return act, notFound(act.ID)
		}
		if act.Status != store.Pending && act.Status != store.Scheduled {
			return act, fmt.Errorf("activation %s is %s: only pending or scheduled requests can be cancelled: %w", act.ID, act.Status, store.ErrConflict)
		}
		return end(act, store.Cancelled, c.Principal, reason, now), nil
	})
	if err != nil {
		return store.Activation{}, err
	}
	if err := s.commitActivation(ctx, audit.Cancelled, c.Principal, c.RequestID, act, s.restore(before, act)); err != nil {
		return store.Activation{}, err
	}
	return act, nil
}

// Deactivate ends a live elevation early: its holder may, and so may an
// admin of its scope.
func (s *Service) Deactivate(ctx context.Context, c Caller, id, reason string) (store.Activation, error) {
	if err := s.user(c, "deactivate"); err != nil {
		return store.Activation{}, err
	}
	reason, err := s.limits.reason("justification", reason)
	if err != nil {
		return store.Activation{}, err
	}
	before, act, err := s.change(ctx, id, func(act store.Activation, now time.Time) (store.Activation, error) {
		if act.Principal != c.Principal {
			ok, err := s.admin(ctx, c, "activations.deactivate", act.Scope, now)
			if err != nil {
				return act, err
			}
			if !ok {
				return act, notFound(act.ID)
			}
		}
		if !act.LiveAt(now) {
			return act, fmt.Errorf("activation %s is not active (%s): %w", act.ID, act.Status, store.ErrConflict)
		}
		return end(act, store.Deactivated, c.Principal, reason, now), nil
	})
	if err != nil {
		return store.Activation{}, err
	}
	if err := s.commitActivation(ctx, audit.Deactivated, c.Principal, c.RequestID, act, s.restore(before, act)); err != nil {
		return store.Activation{}, err
	}
	return act, nil
}

// ExtendRequest asks for more time on a live elevation.
type ExtendRequest struct {
	// Duration is the time to add.
	Duration      string       `json:"duration"`
	Justification string       `json:"justification"`
	MFA           *MFAEvidence `json:"mfa"`
}

// Extend lengthens the caller's live elevation. It is decided like an
// activation of the whole new length (justification, MFA, at most the
// role's max_duration); roles that need approval need a new activation.
func (s *Service) Extend(ctx context.Context, c Caller, id string, r ExtendRequest) (store.Activation, error) {
	if err := s.user(c, "extend"); err != nil {
		return store.Activation{}, err
	}
	extra, err := time.ParseDuration(r.Duration)
	if err != nil || extra <= 0 {
		return store.Activation{}, invalid("duration %q is not a positive duration such as 30m", r.Duration)
	}
	if r.Justification, err = s.limits.reason("justification", r.Justification); err != nil {
		return store.Activation{}, err
	}
	var mfaChecked, codeUsed bool
	var mfa any
	var code *identity.Accepted
	before, act, err := s.change(ctx, id, func(act store.Activation, now time.Time) (store.Activation, error) {
		if act.Principal != c.Principal {
			return act, notFound(act.ID)
		}
		if !act.LiveAt(now) {
			return act, fmt.Errorf("activation %s is not active (%s): %w", act.ID, act.Status, store.ErrConflict)
		}
		if err := TimeField("duration", act.ExpiresAt.Add(extra)); err != nil {
			return act, err
		}
		event := audit.Event{Actor: c.Principal, Principal: c.Principal, Role: act.Role, Scope: act.Scope,
			ActivationID: act.ID, RequestID: c.RequestID, Justification: r.Justification}
		if !mfaChecked {
			// A TOTP code is good once: a retry reuses the first check.
			if mfa, code, err = s.mfa(ctx, c, r.MFA, now, event); err != nil {
				return act, err
			}
			mfaChecked = true
		}
		f, err := s.facts(ctx, c.Principal, now)
		if err != nil {
			return act, err
		}
		others := f.Elevations[:0:0]
		for _, e := range f.Elevations {
			if e.ID != act.ID {
				others = append(others, e)
			}
		}
		f.Elevations = others
		total := act.ExpiresAt.Add(extra).Sub(*act.ActivatedAt)
		d, err := s.decide(ctx, policy.ActivationDecision, map[string]any{
			"now": now.UnixNano(), "principal": c.Principal,
			"request": map[string]any{
				"role": act.Role, "scope": act.Scope, "duration": total.String(),
				"justification": r.Justification, "ticket": ticketInput(act.Ticket),
			},
			"mfa": mfa, "assignments": f.assignmentsInput(), "elevations": f.elevationsInput(),
		})
		if err != nil {
			return act, err
		}
		v := violations(d)
		if d["requires_approval"] == true {
			v = append(v, "extending "+act.Role+" needs approval: request a new activation")
		}
		if d["allow"] != true || d["requires_approval"] == true {
			event.Type, event.Violations = audit.PolicyDenied, v
			s.record(ctx, event)
			return act, &DeniedError{What: "extension", Violations: v}
		}
		if code != nil && !codeUsed {
			if err := s.useTOTP(ctx, c, *code); err != nil {
				return act, err
			}
			codeUsed = true
		}
		act.ExpiresAt = ptr(act.ExpiresAt.Add(extra))
		return act, nil
	})
	if err != nil {
		return store.Activation{}, err
	}
	if err := s.commitActivation(ctx, audit.Extended, c.Principal, c.RequestID, act, s.restore(before, act)); err != nil {
		return store.Activation{}, err
	}
	return act, nil
}
