package workflow

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/ids"
	"github.com/elevatepdp/elevate/internal/store"
)

// AssignmentRequest asks to make a principal eligible for, or give it, a role.
type AssignmentRequest struct {
	Principal     string               `json:"principal"`
	Role          string               `json:"role"`
	Scope         string               `json:"scope"`
	Type          store.AssignmentType `json:"type"`
	Start         *time.Time           `json:"start"`
	End           *time.Time           `json:"end"`
	Justification string               `json:"justification"`
}

// scopePattern is pim.lib.scope_valid's: "/" or /segment parts.
var scopePattern = regexp.MustCompile(`^(/|(/[A-Za-z0-9][A-Za-z0-9._@:-]*)+)$`)

// Principal checks a principal name from outside (API bodies, query
// parameters, decision subjects) and returns its canonical form: see
// identity.ParsePrincipal, which refuses look-alikes rather than mapping
// them.
func Principal(p string) (string, error) {
	canonical, err := identity.ParsePrincipal(p)
	if err != nil {
		return "", invalid("principal %q is not a principal name such as sophia.davis@perparims.example: %v", p, err)
	}
	return canonical, nil
}

func scope(s string) (string, error) {
	if s == "" {
		return "/", nil
	}
	if !scopePattern.MatchString(s) {
		return "", invalid(`scope %q is not "/" or a path such as /administrativeUnits/new-york-office`, s)
	}
	return s, nil
}

func parseDuration(field, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: role setting %s %q is not a duration", ErrUnavailable, field, s)
	}
	return d, nil
}

// CreateAssignment stores an eligible or active assignment, when the caller
// may manage assignments at its scope (data.pim.admin.allow) and its window
// fits the role's settings.
func (s *Service) CreateAssignment(ctx context.Context, c Caller, r AssignmentRequest) (store.Assignment, error) {
	now := s.now().UTC()
	if err := s.limits.assignment(&r, now); err != nil {
		return store.Assignment{}, err
	}
	principal, err := Principal(r.Principal)
	if err != nil {
		return store.Assignment{}, err
	}
	sc, err := scope(r.Scope)
	if err != nil {
		return store.Assignment{}, err
	}
	if r.Type == "" {
		r.Type = store.Eligible
	}
	if r.Type != store.Eligible && r.Type != store.Active {
		return store.Assignment{}, invalid("type %q is not eligible or active", r.Type)
	}
	role, err := s.role(ctx, r.Role)
	if err != nil {
		return store.Assignment{}, err
	}
	if err := checkWindow(role, r, now); err != nil {
		return store.Assignment{}, err
	}
	if ok, err := s.admin(ctx, c, "assignments.create", sc, now); err != nil {
		return store.Assignment{}, err
	} else if !ok {
		return store.Assignment{}, fmt.Errorf("%w: %s may not manage assignments at %s", ErrForbidden, c.Principal, sc)
	}
	a := store.Assignment{
		ID: ids.New("asg_"), Principal: principal, Role: role.ID, Scope: sc, Type: r.Type,
		Start: utc(r.Start), End: utc(r.End), CreatedBy: c.Principal, CreatedAt: now,
	}
	if err := s.store.CreateAssignment(ctx, a); err != nil {
		return store.Assignment{}, storeErr(err)
	}
	undo := func(ctx context.Context) error {
		_, _, err := s.store.DeleteAssignment(ctx, a.ID, system, s.now().UTC())
		return err
	}
	if err := s.commit(ctx, audit.Event{
		Type: audit.AssignmentCreated, Actor: c.Principal, Principal: a.Principal, Role: a.Role, Scope: a.Scope,
		AssignmentID: a.ID, RequestID: c.RequestID, Justification: r.Justification, ExpiresAt: a.End,
		Reason: string(a.Type),
	}, undo); err != nil {
		return store.Assignment{}, err
	}
	return a, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// checkWindow applies the role's allow_permanent_eligibility and
// max_eligibility to an eligible assignment.
func checkWindow(role Role, r AssignmentRequest, now time.Time) error {
	if r.Start != nil && r.End != nil && !r.End.After(*r.Start) {
		return invalid("end %s is not after start %s", r.End.Format(time.RFC3339), r.Start.Format(time.RFC3339))
	}
	if r.End != nil && !r.End.After(now) {
		return invalid("end %s is in the past", r.End.Format(time.RFC3339))
	}
	if r.Type != store.Eligible {
		return nil
	}
	if r.End == nil {
		if !role.Settings.AllowPermanentEligibility {
			return invalid("%s does not allow permanent eligibility: give an end", role.Name)
		}
		return nil
	}
	max, err := parseDuration("max_eligibility", role.Settings.MaxEligibility)
	if err != nil {
		return err
	}
	start := now
	if r.Start != nil && r.Start.After(now) {
		start = *r.Start
	}
	if r.End.Sub(start) > max {
		return invalid("eligibility for %s may last at most %s", role.Name, role.Settings.MaxEligibility)
	}
	return nil
}

// AssignmentState selects assignments by where they are in time.
type AssignmentState string

const (
	StateEligible AssignmentState = "eligible" // eligible assignments not yet ended
	StateActive   AssignmentState = "active"   // active assignments not yet ended
	StateExpired  AssignmentState = "expired"  // assignments whose end has passed
)

// ListAssignments lists assignments. Admins see everyone's; other users see
// their own; decision clients none.
func (s *Service) ListAssignments(ctx context.Context, c Caller, principal, role string, state AssignmentState) ([]store.Assignment, error) {
	if err := s.user(c, "list assignments"); err != nil {
		return nil, err
	}
	now := s.now()
	if principal != "" {
		var err error
		if principal, err = Principal(principal); err != nil {
			return nil, err
		}
	}
	switch state {
	case "", StateEligible, StateActive, StateExpired:
	default:
		return nil, invalid("state %q is not eligible, active or expired", state)
	}
	if principal != c.Principal {
		ok, err := s.admin(ctx, c, "assignments.read", "/", now)
		if err != nil {
			return nil, err
		}
		if !ok && principal != "" {
			return nil, fmt.Errorf("%w: %s may only list their own assignments", ErrForbidden, c.Principal)
		}
		if !ok {
			principal = c.Principal
		}
	}
	all, err := s.store.Assignments(ctx, store.AssignmentFilter{Principal: principal, Role: role})
	if err != nil {
		return nil, storeErr(err)
	}
	out := []store.Assignment{}
	for _, a := range all {
		ended := a.End != nil && !now.Before(*a.End)
		switch state {
		case StateEligible:
			if a.Type != store.Eligible || ended {
				continue
			}
		case StateActive:
			if a.Type != store.Active || ended {
				continue
			}
		case StateExpired:
			if !ended {
				continue
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// DeleteAssignment removes an assignment and revokes, in the same step, the
// live elevations that came from it.
func (s *Service) DeleteAssignment(ctx context.Context, c Caller, id string) (store.Assignment, []store.Activation, error) {
	now := s.now().UTC()
	a, err := s.store.Assignment(ctx, id)
	if err != nil {
		return store.Assignment{}, nil, storeErr(err)
	}
	if ok, err := s.admin(ctx, c, "assignments.delete", a.Scope, now); err != nil {
		return store.Assignment{}, nil, err
	} else if !ok {
		return store.Assignment{}, nil, fmt.Errorf("%w: %s may not manage assignments at %s", ErrForbidden, c.Principal, a.Scope)
	}
	a, revoked, err := s.store.DeleteAssignment(ctx, id, c.Principal, now)
	if err != nil {
		return store.Assignment{}, nil, storeErr(err)
	}
	if err := s.commit(ctx, audit.Event{
		Type: audit.AssignmentRemoved, Actor: c.Principal, Principal: a.Principal, Role: a.Role, Scope: a.Scope,
		AssignmentID: a.ID, RequestID: c.RequestID,
	}, s.unremove(a, revoked)); err != nil {
		return store.Assignment{}, nil, err
	}
	for _, r := range revoked {
		s.record(ctx, audit.Event{
			Type: audit.Revoked, Actor: c.Principal, Principal: r.Principal, Role: r.Role, Scope: r.Scope,
			ActivationID: r.ID, AssignmentID: a.ID, RequestID: c.RequestID, Reason: r.EndReason,
		})
	}
	return a, revoked, nil
}

// unremove undoes DeleteAssignment: the assignment back, and what it
// revoked back as it was (an elevation whose time ran out meanwhile stays
// ended).
func (s *Service) unremove(a store.Assignment, revoked []store.Activation) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := s.store.CreateAssignment(ctx, a); err != nil {
			return err
		}
		var errs []error
		for _, r := range revoked {
			before := r
			before.EndedAt, before.EndedBy, before.EndReason = nil, "", ""
			switch {
			case r.ActivatedAt != nil:
				before.Status = store.Live
			case r.StartAt != nil && r.Deadline == nil:
				before.Status = store.Scheduled
			default:
				before.Status = store.Pending
			}
			if _, err := s.store.UpdateActivation(ctx, before); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// MyRoles is the brief's "My roles": what the caller may activate, what it
// holds now, and what it is waiting for.
type MyRoles struct {
	Eligible []store.Assignment `json:"eligible"`
	Active   []Elevation        `json:"active"`
	Pending  []store.Activation `json:"pending"`
}

// MyRoles returns the caller's roles.
func (s *Service) MyRoles(ctx context.Context, c Caller) (MyRoles, error) {
	if c.Kind != identity.User {
		return MyRoles{}, fmt.Errorf("%w: decision clients hold no roles", ErrForbidden)
	}
	now := s.now()
	f, err := s.facts(ctx, c.Principal, now)
	if err != nil {
		return MyRoles{}, err
	}
	out := MyRoles{Eligible: []store.Assignment{}, Active: f.Elevations, Pending: []store.Activation{}}
	for _, a := range f.Assignments {
		if a.Type == store.Eligible && (a.End == nil || now.Before(*a.End)) {
			out.Eligible = append(out.Eligible, a)
		}
	}
	acts, err := s.store.Activations(ctx, store.ActivationFilter{Principal: c.Principal})
	if err != nil {
		return MyRoles{}, storeErr(err)
	}
	for _, a := range acts {
		if a.Status == store.Pending || a.Status == store.Scheduled {
			out.Pending = append(out.Pending, a)
		}
	}
	return out, nil
}
