// Package store keeps Elevate's state: assignments (who is eligible for or
// permanently holds which role, where) and elevations (roles activated for a
// bounded time). Backends live in subpackages: redis (shared by every
// replica; an elevation is a Redis key that expires by itself) and memory
// (one process, for `make run`). Both pass the suite in storetest.
package store

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound: no such assignment or live elevation.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change collides with existing state, such as a second
	// elevation of a role already live at the same scope.
	ErrConflict = errors.New("conflict")
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

// Elevation is an activated role: live from ActivatedAt until ExpiresAt.
type Elevation struct {
	ID           string    `json:"id"`
	Principal    string    `json:"principal"`
	Role         string    `json:"role"`
	Scope        string    `json:"scope"`
	AssignmentID string    `json:"assignment_id"`
	RequestID    string    `json:"request_id,omitempty"`
	ActivatedAt  time.Time `json:"activated_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Live reports whether the elevation grants its role at now.
func (e Elevation) Live(now time.Time) bool {
	return !now.Before(e.ActivatedAt) && now.Before(e.ExpiresAt)
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

// Store is the state every Elevate replica shares. Each method is atomic: a
// failure leaves the state as it was.
type Store interface {
	// CreateAssignment stores a new assignment; ErrConflict if its id exists.
	CreateAssignment(ctx context.Context, a Assignment) error
	// Assignment returns one assignment, or ErrNotFound.
	Assignment(ctx context.Context, id string) (Assignment, error)
	// Assignments lists the assignments that match f, oldest first.
	Assignments(ctx context.Context, f AssignmentFilter) ([]Assignment, error)
	// DeleteAssignment removes an assignment and ends, in the same step,
	// every live elevation activated from it, which it returns.
	DeleteAssignment(ctx context.Context, id string) (Assignment, []Elevation, error)

	// Activate stores a live elevation until its ExpiresAt. It fails with
	// ErrConflict when the principal already holds the role live at the same
	// scope, and with ErrNotFound when its assignment no longer exists.
	Activate(ctx context.Context, e Elevation) error
	// Elevations returns the principal's live elevations, oldest first. An
	// elevation whose time has run out is never returned.
	Elevations(ctx context.Context, principal string, now time.Time) ([]Elevation, error)
	// Elevation returns one live elevation, or ErrNotFound once it has ended.
	Elevation(ctx context.Context, id string, now time.Time) (Elevation, error)
	// Deactivate ends a live elevation now and returns it; ErrNotFound if it
	// had already ended.
	Deactivate(ctx context.Context, id string) (Elevation, error)
	// Extend moves a live elevation's end to expiresAt.
	Extend(ctx context.Context, id string, expiresAt time.Time) (Elevation, error)
	// ClaimExpired returns up to limit (0: all) elevations that ran out by now and were
	// not deactivated. Each is returned once, to one caller, across every
	// replica sharing the store, so its expiry is reported exactly once.
	ClaimExpired(ctx context.Context, now time.Time, limit int) ([]Elevation, error)

	// Ping checks that the store can be reached.
	Ping(ctx context.Context) error
	Close() error
}
