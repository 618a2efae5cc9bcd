package workflow

import (
	"context"
	"errors"
	"fmt"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
)

// EnrollTOTP gives the caller a new TOTP secret, returned this once. A
// caller already enrolled must prove the current factor with a code first,
// so a stolen token cannot replace the second factor it is missing.
func (s *Service) EnrollTOTP(ctx context.Context, c Caller, currentCode string) (identity.Enrollment, error) {
	if err := s.user(c, "enrol in TOTP"); err != nil {
		return identity.Enrollment{}, err
	}
	now := s.now()
	event := audit.Event{Actor: c.Principal, Principal: c.Principal, RequestID: c.RequestID}
	enrolled, err := s.totp.Enrolled(ctx, c.Principal)
	if err != nil {
		return identity.Enrollment{}, fmt.Errorf("%w: read TOTP enrolment: %v", ErrUnavailable, err)
	}
	if enrolled {
		err := s.totp.Verify(ctx, c.Principal, currentCode, now)
		switch {
		case errors.Is(err, identity.ErrBadCode), errors.Is(err, identity.ErrReplay), errors.Is(err, identity.ErrLocked):
			event.Type, event.Reason = audit.MFAFailed, "re-enrolment without a valid current code"
			s.record(ctx, event)
			return identity.Enrollment{}, &DeniedError{What: "TOTP enrolment", Violations: []string{"already enrolled: give a valid current code (totp) to replace the secret"}}
		case err != nil:
			return identity.Enrollment{}, fmt.Errorf("%w: verify TOTP: %v", ErrUnavailable, err)
		}
	}
	// A replaced secret cannot be put back, so the event is kept first.
	event.Type = audit.TOTPEnrolled
	if err := s.commit(ctx, event, nil); err != nil {
		return identity.Enrollment{}, err
	}
	en, err := s.totp.Enroll(ctx, c.Principal)
	if err != nil {
		return identity.Enrollment{}, fmt.Errorf("%w: enrol TOTP: %v", ErrUnavailable, err)
	}
	return en, nil
}

// Audit reads audit events: all of them for admins, the caller's own for
// anyone else.
func (s *Service) Audit(ctx context.Context, c Caller, f audit.Filter) ([]audit.Event, error) {
	if f.Type != "" && !f.Type.Known() {
		return nil, invalid("type %q is not an audit event type", f.Type)
	}
	if f.Principal != "" {
		p, err := Principal(f.Principal)
		if err != nil {
			return nil, err
		}
		f.Principal = p
	}
	if f.Principal != c.Principal {
		ok, err := s.admin(ctx, c, "audit.read", "/", s.now())
		if err != nil {
			return nil, err
		}
		switch {
		case !ok && f.Principal != "":
			return nil, fmt.Errorf("%w: %s may only read their own audit events", ErrForbidden, c.Principal)
		case !ok:
			f.Principal = c.Principal
		}
	}
	events, err := s.audit.Events(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%w: read audit events: %v", ErrUnavailable, err)
	}
	return events, nil
}
