package workflow

import (
	"context"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
)

// Facts are what the policies decide on about one principal: the shapes of
// policies/README.md, times in Unix nanoseconds.
type Facts struct {
	Assignments []store.Assignment
	// Elevations are the live activations and the active assignments whose
	// window holds now: everything that grants a role right now.
	Elevations []Elevation
}

// Elevation is a role held now, from an activation or an active assignment.
type Elevation struct {
	ID          string     `json:"id"`
	Role        string     `json:"role"`
	Scope       string     `json:"scope"`
	ActivatedAt *time.Time `json:"activated_at"`
	// ExpiresAt is nil for a permanent active assignment.
	ExpiresAt *time.Time `json:"expires_at"`
}

// facts reads principal's assignments and elevations in one step, so that
// a policy never sees one from before a change and the other from after.
func (s *Service) facts(ctx context.Context, principal string, now time.Time) (Facts, error) {
	h, err := s.store.Holdings(ctx, principal, now)
	if err != nil {
		return Facts{}, storeErr(err)
	}
	return Facts{Assignments: h.Assignments, Elevations: elevations(h, now)}, nil
}

// Elevations returns what grants principal a role at now: its live
// activations and its active assignments. Decision endpoints read it for
// every request.
func (s *Service) Elevations(ctx context.Context, principal string, now time.Time) ([]Elevation, error) {
	f, err := s.facts(ctx, principal, now)
	return f.Elevations, err
}

// elevations is what grants a role at now: live activations, then active
// assignments whose window holds now.
func elevations(h store.Holdings, now time.Time) []Elevation {
	out := make([]Elevation, 0, len(h.Elevations)+len(h.Assignments))
	for _, a := range h.Elevations {
		out = append(out, Elevation{ID: a.ID, Role: a.Role, Scope: a.Scope, ActivatedAt: a.ActivatedAt, ExpiresAt: a.ExpiresAt})
	}
	for _, a := range h.Assignments {
		if a.Holds(now) {
			out = append(out, Elevation{ID: a.ID, Role: a.Role, Scope: a.Scope, ActivatedAt: a.Start, ExpiresAt: a.End})
		}
	}
	return out
}

// ElevationsInput is elevations as policies see them (input.elevations).
func ElevationsInput(es []Elevation) []any {
	return Facts{Elevations: es}.elevationsInput()
}

func windowHolds(a store.Assignment, t time.Time) bool {
	return (a.Start == nil || !t.Before(*a.Start)) && (a.End == nil || t.Before(*a.End))
}

// ns is a time as policies see it: Unix nanoseconds, or null.
func ns(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func (f Facts) elevationsInput() []any {
	out := make([]any, len(f.Elevations))
	for i, e := range f.Elevations {
		activated := any(int64(0))
		if e.ActivatedAt != nil {
			activated = e.ActivatedAt.UnixNano()
		}
		out[i] = map[string]any{"id": e.ID, "role": e.Role, "scope": e.Scope, "activated_at": activated, "expires_at": ns(e.ExpiresAt)}
	}
	return out
}

func (f Facts) assignmentsInput() []any {
	out := make([]any, len(f.Assignments))
	for i, a := range f.Assignments {
		out[i] = map[string]any{
			"id": a.ID, "principal": a.Principal, "role": a.Role, "scope": a.Scope,
			"type": string(a.Type), "start": ns(a.Start), "end": ns(a.End),
		}
	}
	return out
}

// admin asks data.pim.admin.allow whether the caller may do action at scope.
// Decision clients are never admins.
func (s *Service) admin(ctx context.Context, c Caller, action, scope string, now time.Time) (bool, error) {
	if c.Kind != identity.User {
		return false, nil
	}
	f, err := s.facts(ctx, c.Principal, now)
	if err != nil {
		return false, err
	}
	return s.allowed(ctx, policy.AdminAllow, map[string]any{
		"principal": c.Principal, "action": action, "scope": scope,
		"now": now.UnixNano(), "elevations": f.elevationsInput(),
	})
}
