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

// Effect is what a change of an activation does to its elevation.
type Effect int

const (
	NoEffect Effect = iota
	Start           // the elevation begins: the role must not be live at the scope
	End             // the live elevation ends now
	Extend          // the live elevation's end moves
	Expire          // the elevation ran out: it must not be live any more
)

// EffectOf is the effect of changing old (nil when new) into a. It also
// checks a is storable at now.
func EffectOf(old *Activation, a Activation, now time.Time) (Effect, error) {
	if a.ID == "" || a.Principal == "" || a.Role == "" || a.Scope == "" || a.AssignmentID == "" {
		return NoEffect, fmt.Errorf("activation needs an id, principal, role, scope and assignment: %w", ErrInvalid)
	}
	if old != nil && (old.ID != a.ID || old.Principal != a.Principal || old.Role != a.Role || old.Scope != a.Scope) {
		return NoEffect, fmt.Errorf("activation %s: id, principal, role and scope cannot change: %w", a.ID, ErrInvalid)
	}
	wasLive := old != nil && old.Status == Live
	if a.Status == Live {
		if a.ActivatedAt == nil || a.ExpiresAt == nil || !a.ExpiresAt.After(*a.ActivatedAt) || !a.ExpiresAt.After(now) {
			return NoEffect, fmt.Errorf("activation %s is live without a future end: %w", a.ID, ErrInvalid)
		}
		switch {
		case !wasLive:
			return Start, nil
		case !a.ExpiresAt.Equal(*old.ExpiresAt):
			return Extend, endedCheck(old, now)
		}
		return NoEffect, nil
	}
	switch {
	case wasLive && a.Status == Expired:
		if old.LiveAt(now) {
			return NoEffect, fmt.Errorf("activation %s has not run out: %w", a.ID, ErrConflict)
		}
		return Expire, nil
	case wasLive:
		return End, endedCheck(old, now)
	}
	return NoEffect, nil
}

// endedCheck refuses to change the end of an elevation whose time has run
// out, whatever any store has recorded yet.
func endedCheck(old *Activation, now time.Time) error {
	if !old.LiveAt(now) {
		return fmt.Errorf("activation %s already ended: %w", old.ID, ErrConflict)
	}
	return nil
}

// Revoke is a live activation ended because its eligibility was removed.
func Revoke(a Activation, by string, now time.Time) Activation {
	a.Status = Revoked
	a.EndedAt = &now
	a.EndedBy = by
	a.EndReason = "the eligible assignment was removed"
	return a
}
