package store

import (
	"fmt"
	"time"
)

// ValidateAssignment checks what every backend needs of an assignment.
func ValidateAssignment(a Assignment) error {
	if a.ID == "" || a.Principal == "" || a.Role == "" || a.Scope == "" {
		return fmt.Errorf("assignment needs an id, principal, role and scope: %w", ErrInvalid)
	}
	if a.Type != Eligible && a.Type != Active {
		return fmt.Errorf("assignment type %q is not %q or %q: %w", a.Type, Eligible, Active, ErrInvalid)
	}
	if a.Start != nil && a.End != nil && !a.End.After(*a.Start) {
		return fmt.Errorf("assignment %s ends before it starts: %w", a.ID, ErrInvalid)
	}
	return nil
}

// ValidateElevation checks what every backend needs of an elevation stored
// at now: it must still have time to run.
func ValidateElevation(e Elevation, now time.Time) error {
	if e.ID == "" || e.Principal == "" || e.Role == "" || e.Scope == "" || e.AssignmentID == "" {
		return fmt.Errorf("elevation needs an id, principal, role, scope and assignment: %w", ErrInvalid)
	}
	if !e.ExpiresAt.After(e.ActivatedAt) || !e.ExpiresAt.After(now) {
		return fmt.Errorf("elevation %s ends at %s, before it starts or already: %w", e.ID, e.ExpiresAt.Format(time.RFC3339Nano), ErrInvalid)
	}
	return nil
}
