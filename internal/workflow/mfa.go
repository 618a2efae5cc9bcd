package workflow

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/store"
)

// EnrollRequest asks for a TOTP secret.
type EnrollRequest struct {
	// Invite is the single-use enrolment invite an administrator issued
	// to the caller (InviteTTL).
	Invite string `json:"invite"`
	// TOTP is the current code, when the caller replaces their secret.
	TOTP string `json:"totp"`
}

// EnrollTOTP gives the caller a new TOTP secret, returned this once. A
// second factor must never be creatable with the first factor alone, so the
// caller proves something a stolen token does not carry: an enrolment
// invite an administrator issued to them, the current code of the secret
// they replace, or (unless identity.totp.require_invite) a JWT saying they
// just signed in with a second factor at the identity provider.
func (s *Service) EnrollTOTP(ctx context.Context, c Caller, r EnrollRequest) (identity.Enrollment, error) {
	if err := s.user(c, "enrol in TOTP"); err != nil {
		return identity.Enrollment{}, err
	}
	now := s.now()
	event := audit.Event{Actor: c.Principal, Principal: c.Principal, RequestID: c.RequestID}
	refuse := func(reason, violation string) error {
		event.Type, event.Reason = audit.MFAFailed, reason
		s.record(ctx, event)
		return &DeniedError{What: "TOTP enrolment", Violations: []string{violation}}
	}
	switch {
	case r.Invite != "":
		ok, err := s.totp.Redeem(ctx, c.Principal, r.Invite)
		if err != nil {
			return identity.Enrollment{}, fmt.Errorf("%w: redeem TOTP invite: %w", ErrUnavailable, err)
		}
		if !ok {
			return identity.Enrollment{}, refuse("enrolment with an invite that is not valid",
				"the invite is not valid for "+c.Principal+": it was used, has expired, was replaced by a newer one or was issued to someone else; ask an administrator for a new one")
		}
		event.Reason = "invite"
	default:
		enrolled, err := s.totp.Enrolled(ctx, c.Principal)
		if err != nil {
			return identity.Enrollment{}, fmt.Errorf("%w: read TOTP enrolment: %w", ErrUnavailable, err)
		}
		switch {
		case enrolled && r.TOTP == "" && !s.totp.EnrolsWithoutInvite(c.Identity, now):
			return identity.Enrollment{}, refuse("re-enrolment without a valid current code",
				"already enrolled: give the current code (totp) of the secret to replace, or ask an administrator for an invite if the device is lost")
		case enrolled && r.TOTP != "":
			code, err := s.checkTOTP(ctx, c, r.TOTP, now, event)
			if err == nil {
				err = s.useTOTP(ctx, c, code)
			}
			var denied *DeniedError
			if errors.As(err, &denied) {
				return identity.Enrollment{}, &DeniedError{What: "TOTP enrolment", Violations: append([]string{
					"already enrolled: the current code (totp) of the secret to replace was not accepted"}, denied.Violations...)}
			}
			if err != nil {
				return identity.Enrollment{}, err
			}
			event.Reason = "current code"
		case s.totp.EnrolsWithoutInvite(c.Identity, now):
			event.Reason = "identity provider MFA"
		default:
			return identity.Enrollment{}, refuse("first enrolment without an invite",
				"a first TOTP enrolment needs an invite: ask an administrator to run `elevate totp invite "+c.Principal+"`, then enrol with `elevate totp enroll --invite CODE`")
		}
	}
	// A replaced secret cannot be put back, so the event is kept first.
	event.Type = audit.TOTPEnrolled
	if err := s.commit(ctx, event, nil); err != nil {
		return identity.Enrollment{}, err
	}
	en, err := s.totp.Enroll(ctx, c.Principal)
	if err != nil {
		return identity.Enrollment{}, fmt.Errorf("%w: enrol TOTP: %w", ErrUnavailable, err)
	}
	return en, nil
}

// manageTOTP checks that the caller may invite principal to, or reset,
// TOTP: an administrator (data.pim.admin.allow of mfa.manage at /), and not
// for themselves, so that one stolen token can never both hold the
// administrator's first factor and create its second.
func (s *Service) manageTOTP(ctx context.Context, c Caller, principal, what string) (string, error) {
	if err := s.user(c, what); err != nil {
		return "", err
	}
	p, err := Principal(principal)
	if err != nil {
		return "", err
	}
	if p == c.Principal {
		return "", fmt.Errorf("%w: nobody may %s for themselves: another administrator must", ErrForbidden, what)
	}
	ok, err := s.admin(ctx, c, "mfa.manage", "/", s.now())
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: %s may not %s (mfa.manage at /)", ErrForbidden, c.Principal, what)
	}
	return p, nil
}

// InviteTOTP issues a single-use enrolment invite for principal, returned
// this once, and replacing any earlier invite of principal. Being invited
// also lets an enrolled principal replace a secret whose device is lost.
func (s *Service) InviteTOTP(ctx context.Context, c Caller, principal string) (identity.Invite, error) {
	p, err := s.manageTOTP(ctx, c, principal, "issue TOTP invites")
	if err != nil {
		return identity.Invite{}, err
	}
	now := s.now()
	// The invite is what lets someone create a second factor: it is
	// audited before it exists.
	if err := s.commit(ctx, audit.Event{Type: audit.TOTPInvited, Actor: c.Principal, Principal: p, RequestID: c.RequestID,
		ExpiresAt: ptr(now.Add(s.totp.InviteTTL()).UTC())}, nil); err != nil {
		return identity.Invite{}, err
	}
	inv, err := s.totp.Invite(ctx, p, now)
	if err != nil {
		return identity.Invite{}, fmt.Errorf("%w: issue TOTP invite: %w", ErrUnavailable, err)
	}
	return inv, nil
}

// ResetTOTP removes principal's TOTP secret and returns the principal;
// ErrNotFound when there is none. The principal enrols again with an invite.
func (s *Service) ResetTOTP(ctx context.Context, c Caller, principal string) (string, error) {
	p, err := s.manageTOTP(ctx, c, principal, "reset TOTP")
	if err != nil {
		return "", err
	}
	enrolled, err := s.totp.Enrolled(ctx, p)
	if err != nil {
		return "", fmt.Errorf("%w: read TOTP enrolment: %w", ErrUnavailable, err)
	}
	if !enrolled {
		return "", fmt.Errorf("no TOTP is enrolled for %s: %w", p, store.ErrNotFound)
	}
	if err := s.commit(ctx, audit.Event{Type: audit.TOTPReset, Actor: c.Principal, Principal: p, RequestID: c.RequestID}, nil); err != nil {
		return "", err
	}
	if _, err := s.totp.Reset(ctx, p); err != nil {
		return "", fmt.Errorf("%w: reset TOTP: %w", ErrUnavailable, err)
	}
	return p, nil
}

// checkTOTP checks a TOTP code given with a request without using it up
// (see useTOTP). Wrong codes and lockouts are audited as mfa.failed; a
// refusal says what happened and what to do.
func (s *Service) checkTOTP(ctx context.Context, c Caller, code string, now time.Time, a audit.Event) (identity.Accepted, error) {
	accepted, err := s.totp.Check(ctx, c.Principal, code, now)
	if err == nil {
		return accepted, nil
	}
	var locked *identity.LockedError
	var reason string
	audited := true
	switch {
	case errors.As(err, &locked):
		reason = fmt.Sprintf("%d wrong TOTP codes: TOTP is locked until %s", locked.Failures, locked.Until.UTC().Format("15:04:05 UTC"))
	case errors.Is(err, identity.ErrBadCode):
		reason = "the TOTP code is wrong: give the current code of your authenticator app (5 wrong codes lock TOTP for 5 minutes)"
	case errors.Is(err, identity.ErrBusy):
		// Right or wrong, the code was not looked at: no guess to audit.
		reason, audited = "too many TOTP codes are being checked at once: send one request, with the current code, in a moment", false
	case errors.Is(err, identity.ErrNotEnrolled):
		reason = "no TOTP is enrolled for " + c.Principal + ": ask an administrator for an invite (`elevate totp invite " + c.Principal + "`), then `elevate totp enroll --invite CODE`"
	default:
		return identity.Accepted{}, fmt.Errorf("%w: verify TOTP: %w", ErrUnavailable, err)
	}
	if audited {
		a.Type, a.Reason = audit.MFAFailed, reason
		s.record(ctx, a)
	}
	return identity.Accepted{}, &DeniedError{What: "multi-factor authentication", Violations: []string{reason}}
}

// useTOTP uses up a code checkTOTP accepted, just before the change the
// request asked for is made: a code counts as used only for a request that
// succeeds. A code used by another request first was given twice by the
// user (or seen by someone else), not guessed: it is refused, not audited
// as a failed factor.
func (s *Service) useTOTP(ctx context.Context, c Caller, code identity.Accepted) error {
	err := s.totp.Use(ctx, code)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, identity.ErrReplay):
		return &DeniedError{What: "multi-factor authentication", Violations: []string{"the TOTP code was already used: wait for the next code (a new one every 30 seconds) and give that one"}}
	default:
		return fmt.Errorf("%w: record TOTP use: %w", ErrUnavailable, err)
	}
}

// Audit reads audit events: all of them for admins, the caller's own for
// other users, none for decision clients.
func (s *Service) Audit(ctx context.Context, c Caller, f audit.Filter) ([]audit.Event, error) {
	if err := s.user(c, "read the audit trail"); err != nil {
		return nil, err
	}
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
		return nil, fmt.Errorf("%w: read audit events: %w", ErrUnavailable, err)
	}
	return events, nil
}
