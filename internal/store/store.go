// Package store keeps Elevate's state: assignments (who is eligible for or
// permanently holds which role, where) and activations (a request to use a
// role, through approval, to a bounded elevation and its end). Backends live
// in subpackages: redis (shared by every replica; a live elevation is a Redis
// key that expires by itself) and memory (one process, for `make run`). Both
// pass the suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no such assignment or activation.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change collides with existing state, such as a second
	// elevation of a role already live at the same scope.
	ErrConflict = errors.New("conflict")
	// ErrStale: the activation changed since it was read; read it again and
	// decide again.
	ErrStale = errors.New("changed since read")
	// ErrInvalid: the value cannot be stored as given.
	ErrInvalid = errors.New("invalid")
)

// AssignmentType says what an assignment grants.
type AssignmentType string

const (
	// Eligible: the principal may activate the role.
	Eligible AssignmentType = "eligible"
	// Active: the principal holds the role for the assignment's whole window.
	Active AssignmentType = "active"
)

// Assignment makes a principal eligible for a role at a scope, or gives it
// the role, permanently (nil Start and End) or for a window.
type Assignment struct {
	ID        string         `json:"id"`
	Principal string         `json:"principal"`
	Role      string         `json:"role"`
	Scope     string         `json:"scope"`
	Type      AssignmentType `json:"type"`
	Start     *time.Time     `json:"start"`
	End       *time.Time     `json:"end"`
	CreatedBy string         `json:"created_by"`
	CreatedAt time.Time      `json:"created_at"`
}

// AssignmentFilter selects assignments; empty fields match everything.
type AssignmentFilter struct {
	Principal string
	Role      string
	Type      AssignmentType
}

// Match reports whether a passes the filter.
func (f AssignmentFilter) Match(a Assignment) bool {
	return (f.Principal == "" || f.Principal == a.Principal) &&
		(f.Role == "" || f.Role == a.Role) &&
		(f.Type == "" || f.Type == a.Type)
}

// Status is where an activation is in its life.
type Status string

const (
	Pending     Status = "pending_approval" // waiting for approvers
	Scheduled   Status = "scheduled"        // approved or allowed, starts later
	Live        Status = "active"           // the elevation is live
	Denied      Status = "denied"           // an approver said no
	Cancelled   Status = "cancelled"        // the requester withdrew it
	TimedOut    Status = "timed_out"        // nobody decided in time
	Deactivated Status = "deactivated"      // ended early by its holder or an admin
	Revoked     Status = "revoked"          // ended because its eligibility was removed, or refused at its scheduled start
	Expired     Status = "expired"          // its time ran out
)

// Ticket is the change or incident a role's use is tied to.
type Ticket struct {
	System string `json:"system"`
	Number string `json:"number"`
}

// MFA is the second factor a request was decided with.
type MFA struct {
	Methods  []string   `json:"methods"`
	AuthTime *time.Time `json:"auth_time,omitempty"`
}

// Approval is one approver's yes.
type Approval struct {
	Approver      string    `json:"approver"`
	At            time.Time `json:"at"`
	Justification string    `json:"justification"`
}

// Activation is one use of a role, from request to end.
type Activation struct {
	ID            string  `json:"id"`
	Principal     string  `json:"principal"`
	Role          string  `json:"role"`
	Scope         string  `json:"scope"`
	AssignmentID  string  `json:"assignment_id"`
	Duration      string  `json:"duration"`
	Justification string  `json:"justification"`
	Ticket        *Ticket `json:"ticket,omitempty"`
	Status        Status  `json:"status"`

	ApprovalsRequired int        `json:"approvals_required"`
	Approvals         []Approval `json:"approvals"`
	RequestedAt       time.Time  `json:"requested_at"`
	// Deadline is when a pending request times out.
	Deadline *time.Time `json:"deadline,omitempty"`
	// StartAt is the requested start of a scheduled activation.
	StartAt *time.Time `json:"start_at,omitempty"`
	// MFA is the second factor a scheduled activation was requested with:
	// it is decided again at its start, when the requester is not there.
	MFA         *MFA       `json:"mfa,omitempty"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	EndedBy     string     `json:"ended_by,omitempty"`
	EndReason   string     `json:"end_reason,omitempty"`

	// Version counts the stored changes; an update must carry the version it
	// read (see Store.UpdateActivation).
	Version int `json:"version"`
}

// LiveAt reports whether the activation grants its role at now.
func (a Activation) LiveAt(now time.Time) bool {
	return a.Status == Live && a.ActivatedAt != nil && a.ExpiresAt != nil &&
		!now.Before(*a.ActivatedAt) && now.Before(*a.ExpiresAt)
}

// Due is when the activation next needs the service to act by itself: a
// pending request times out, a scheduled one starts, a live one expires.
// Nil when there is nothing left to do.
func (a Activation) Due() *time.Time {
	switch a.Status {
	case Pending:
		return a.Deadline
	case Scheduled:
		return a.StartAt
	case Live:
		return a.ExpiresAt
	}
	return nil
}

// Holdings are a principal's assignments and the roles it holds at a time.
type Holdings struct {
	// Assignments are every assignment of the principal, eligible and
	// active, in their window or not, oldest first: Holds tells which grant
	// a role at the time.
	Assignments []Assignment
	// Elevations are the activations live at the time, oldest first.
	Elevations []Activation
}

// Holds reports whether an active assignment's window contains t.
func (a Assignment) Holds(t time.Time) bool {
	return a.Type == Active && (a.Start == nil || !t.Before(*a.Start)) && (a.End == nil || t.Before(*a.End))
}

// ActivationFilter selects activations; empty fields match everything.
type ActivationFilter struct {
	Principal string
	Role      string
	Status    Status
}

// Match reports whether a passes the filter.
func (f ActivationFilter) Match(a Activation) bool {
	return (f.Principal == "" || f.Principal == a.Principal) &&
		(f.Role == "" || f.Role == a.Role) &&
		(f.Status == "" || f.Status == a.Status)
}

// Store is the state every Elevate replica shares. Each method is atomic: a
// failure leaves the state as it was.
type Store interface {
	// CreateAssignment stores a new assignment; ErrConflict if its id exists.
	CreateAssignment(ctx context.Context, a Assignment) error
	// Assignment returns one assignment, or ErrNotFound.
	Assignment(ctx context.Context, id string) (Assignment, error)
	// Assignments lists the assignments that match f, oldest first.
	Assignments(ctx context.Context, f AssignmentFilter) ([]Assignment, error)
	// DeleteAssignment removes an assignment and, in the same step, revokes
	// every live, pending or scheduled activation of it (by, at now), which
	// it returns. No activation of it can start after it returns.
	DeleteAssignment(ctx context.Context, id, by string, now time.Time) (Assignment, []Activation, error)

	// CreateActivation stores a new activation and returns it as stored, at
	// version 1. A Live one starts its elevation: ErrConflict when the
	// principal already holds the role live at the scope, ErrNotFound when
	// its assignment is gone.
	CreateActivation(ctx context.Context, a Activation) (Activation, error)
	// UpdateActivation stores a, which carries the Version it was read at,
	// as the next version; ErrStale when another change came first. Moving
	// to Live starts the elevation (errors as in CreateActivation); moving
	// from Live ends it; a new ExpiresAt of a Live one moves its end.
	UpdateActivation(ctx context.Context, a Activation) (Activation, error)
	// Activation returns one activation, or ErrNotFound.
	Activation(ctx context.Context, id string) (Activation, error)
	// Activations lists the activations that match f, oldest first.
	Activations(ctx context.Context, f ActivationFilter) ([]Activation, error)
	// Holdings is principal's assignments and its elevations live at now,
	// read in one step (one Redis round trip, or none from a cache). An
	// elevation whose time has run out is never among them, whether or not
	// anything has recorded its expiry yet. It is the read behind every
	// decision, a gateway's or the workflow's.
	Holdings(ctx context.Context, principal string, now time.Time) (Holdings, error)
	// ClaimDue returns up to limit activations whose Due time has come, and
	// leases them for lease: no other caller gets them meanwhile. The caller
	// acts by UpdateActivation; one that fails or crashes lets the lease run
	// out and another replica retries, while versions keep any change, and
	// so any event it reports, from happening twice.
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Activation, error)

	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	Close() error
}
