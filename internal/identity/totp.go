package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// Secrets is where TOTP secrets, enrolment invites and used codes live: the
// store backends (in-memory, Redis) implement it. Secrets must be shared by
// every replica that verifies codes, or a code could be replayed against
// another replica.
type Secrets interface {
	// PutTOTPSecret stores the base32 secret of principal, replacing any.
	PutTOTPSecret(ctx context.Context, principal string, secret string) error
	// TOTPSecret returns the secret of principal, or an error wrapping (or
	// equal to) ErrNotEnrolled when there is none.
	TOTPSecret(ctx context.Context, principal string) (string, error)
	// DeleteTOTPSecret removes the secret of principal, reporting whether
	// there was one.
	DeleteTOTPSecret(ctx context.Context, principal string) (bool, error)
	// PutTOTPInvite stores sum, the hex SHA-256 of an enrolment invite for
	// principal, replacing any earlier invite of principal, and forgets it
	// after ttl.
	PutTOTPInvite(ctx context.Context, principal, sum string, ttl time.Duration) error
	// ConsumeTOTPInvite removes principal's invite when its hash is sum,
	// reporting whether it did. It must be atomic (one Redis script), so
	// that of two concurrent uses of one invite only one succeeds.
	ConsumeTOTPInvite(ctx context.Context, principal, sum string) (bool, error)
	// MarkTOTPUsed records that principal used the code of time step
	// counter, remembering it for at least ttl. It reports first=false when
	// the counter was already recorded; it must be atomic (e.g. Redis SET
	// NX), so that of two concurrent uses only one is first.
	MarkTOTPUsed(ctx context.Context, principal string, counter uint64, ttl time.Duration) (first bool, err error)
	// TOTPAttempt counts one attempt of principal and returns how many the
	// current window holds, this one included; a window starts at its first
	// attempt and lasts window. It must be atomic (one INCR), so that of
	// many concurrent guesses only the first few are checked at all.
	TOTPAttempt(ctx context.Context, principal string, window time.Duration) (int, error)
	// TOTPAttemptOK takes back an attempt that was not a wrong guess.
	TOTPAttemptOK(ctx context.Context, principal string) error
	// TOTPFailure records one wrong code of principal and returns how many
	// wrong codes the current failure window holds and when it ends; a
	// window starts at its first wrong code and lasts window. Unlike the
	// attempts, which also count codes still being checked, these are
	// wrong codes only: what a lockout may be blamed on.
	TOTPFailure(ctx context.Context, principal string, window time.Duration) (int, time.Time, error)
	// TOTPFailures returns the wrong codes of principal's current failure
	// window and when it ends (0 and the zero time when there is none).
	TOTPFailures(ctx context.Context, principal string) (int, time.Time, error)
}

const (
	totpPeriod = 30 // seconds per time step (RFC 6238 default)
	totpDigits = otp.DigitsSix
	// totpSkew is how many steps either side of the current one are
	// accepted, for clock drift and for a code typed just as it changed.
	totpSkew = 1
	// totpUsedTTL is how long a used counter is remembered. A code of step
	// c is accepted until the end of step c+totpSkew, at most 90s after it
	// could first be used; two minutes covers that with room for clock
	// differences between replicas.
	totpUsedTTL = 2 * time.Minute
	// maxTOTPFailures wrong codes within totpLockout lock the principal's
	// TOTP for the rest of that window.
	maxTOTPFailures = 5
	totpLockout     = 5 * time.Minute
)

// TOTP enrols principals in, and verifies, RFC 6238 codes (6 digits, SHA-1,
// 30 s: what every authenticator app supports). It is safe for concurrent
// use. A 6-digit code with three accepted steps falls to about 333,000
// guesses, so after maxTOTPFailures wrong codes in totpLockout a principal's
// codes are refused (a *LockedError) until the window ends.
//
// A second factor must never be creatable with the first factor alone, so a
// first secret comes only with an enrolment invite (Invite, Redeem) that an
// administrator issues to the principal out of band.
type TOTP struct {
	secrets       Secrets
	issuer        string
	inviteTTL     time.Duration
	idpMFAMaxAge  time.Duration
	requireInvite bool
}

// Enrollment is what a user needs to set up an authenticator app. It is
// returned once, by Enroll, and not kept anywhere but in Secrets.
type Enrollment struct {
	// Secret is the base32 secret, for typing in by hand.
	Secret string `json:"secret"`
	// URL is the otpauth:// URI, usually shown as a QR code.
	URL string `json:"url"`
}

// NewTOTP returns a TOTP keeping its secrets in s.
func NewTOTP(s Secrets, cfg TOTPConfig) *TOTP {
	cfg = cfg.withDefaults()
	return &TOTP{secrets: s, issuer: cfg.Issuer, inviteTTL: time.Duration(cfg.InviteTTL),
		idpMFAMaxAge: time.Duration(cfg.IdPMFAMaxAge), requireInvite: cfg.RequireInvite}
}

// strongMFAMethods are the amr values that say a second factor was used:
// pim.lib.strong_mfa_methods, which the activation policy accepts.
var strongMFAMethods = []string{"mfa", "otp", "hwk", "swk", "sc", "fido", "totp"}

// EnrolsWithoutInvite reports whether id may enrol without an invite: its
// JWT says it signed in with a second factor at the identity provider at
// most the configured age before now, which is already as strong as the
// factor it asks for.
func (t *TOTP) EnrolsWithoutInvite(id Identity, now time.Time) bool {
	if t.requireInvite || id.Kind != User || id.Method != MethodJWT || id.MFA.AuthTime.IsZero() {
		return false
	}
	if age := now.Sub(id.MFA.AuthTime); age > t.idpMFAMaxAge {
		return false
	}
	for _, m := range id.MFA.Methods {
		if slices.Contains(strongMFAMethods, strings.ToLower(m)) {
			return true
		}
	}
	return false
}

// Enroll generates a new secret for principal, stores it (replacing any
// previous one, which stops working at once) and returns it. It checks
// nothing: callers decide whether principal may enrol.
func (t *TOTP) Enroll(ctx context.Context, principal string) (Enrollment, error) {
	if principal == "" {
		return Enrollment{}, errors.New("totp enroll: empty principal")
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer:      t.issuer,
		AccountName: principal,
		Period:      totpPeriod,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, fmt.Errorf("totp enroll %q: %w", principal, err)
	}
	if err := t.secrets.PutTOTPSecret(ctx, principal, key.Secret()); err != nil {
		return Enrollment{}, fmt.Errorf("totp enroll %q: store secret: %w", principal, err)
	}
	return Enrollment{Secret: key.Secret(), URL: key.URL()}, nil
}

// Enrolled reports whether principal has a TOTP secret. An error means the
// store could not say, never "not enrolled".
func (t *TOTP) Enrolled(ctx context.Context, principal string) (bool, error) {
	_, err := t.secrets.TOTPSecret(ctx, principal)
	switch {
	case errors.Is(err, ErrNotEnrolled):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("totp enrolled %q: read secret: %w", principal, err)
	}
	return true, nil
}

// Reset removes principal's secret, reporting whether there was one; the
// principal needs a new invite to enrol again.
func (t *TOTP) Reset(ctx context.Context, principal string) (bool, error) {
	removed, err := t.secrets.DeleteTOTPSecret(ctx, principal)
	if err != nil {
		return false, fmt.Errorf("totp reset %q: %w", principal, err)
	}
	return removed, nil
}

// invitePrefix marks enrolment invites, so that one pasted in the wrong
// place is recognisable.
const invitePrefix = "elvinv_"

// Invite is an enrolment invite: shown once, to be handed to the principal.
type Invite struct {
	Principal string    `json:"principal"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// InviteTTL is how long an invite issued now stays good.
func (t *TOTP) InviteTTL() time.Duration { return t.inviteTTL }

// Invite issues a single-use enrolment invite for principal, replacing any
// earlier one, good until now plus the configured invite TTL. Only its hash
// is stored: the code is returned this once.
func (t *TOTP) Invite(ctx context.Context, principal string, now time.Time) (Invite, error) {
	if principal == "" {
		return Invite{}, errors.New("totp invite: empty principal")
	}
	// 128 random bits: an invite cannot be guessed within its lifetime,
	// so wrong ones need no rate limit.
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return Invite{}, fmt.Errorf("totp invite %q: %w", principal, err)
	}
	code := invitePrefix + base64.RawURLEncoding.EncodeToString(b)
	if err := t.secrets.PutTOTPInvite(ctx, principal, HashToken(code), t.inviteTTL); err != nil {
		return Invite{}, fmt.Errorf("totp invite %q: store invite: %w", principal, err)
	}
	return Invite{Principal: principal, Code: code, ExpiresAt: now.Add(t.inviteTTL).UTC()}, nil
}

// Redeem uses up principal's invite if code is it, reporting whether it was:
// an invite is good once, for the principal it was issued to, until it
// expires.
func (t *TOTP) Redeem(ctx context.Context, principal, code string) (bool, error) {
	if !strings.HasPrefix(code, invitePrefix) || len(code) > 64 {
		return false, nil
	}
	ok, err := t.secrets.ConsumeTOTPInvite(ctx, principal, HashToken(code))
	if err != nil {
		return false, fmt.Errorf("totp redeem invite %q: %w", principal, err)
	}
	return ok, nil
}

// LockedError is ErrLocked with what the caller needs to know: how many
// wrong codes locked TOTP and until when.
type LockedError struct {
	Failures int
	Until    time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s (%d wrong codes, locked until %s)", ErrLocked, e.Failures, e.Until.UTC().Format(time.RFC3339))
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Accepted is a right TOTP code that has not been used up yet (see Check and
// Use).
type Accepted struct {
	principal string
	counter   uint64
}

// Verify checks code for principal at time now and uses it up at once (Check
// then Use). It returns nil at most once per code.
func (t *TOTP) Verify(ctx context.Context, principal, code string, now time.Time) error {
	a, err := t.Check(ctx, principal, code, now)
	if err != nil {
		return err
	}
	return t.Use(ctx, a)
}

// Check checks code for principal at time now without using it up: the
// caller uses it (Use) only once the request it came with is allowed, just
// before the change is made, so a request refused for another reason does
// not cost the user the code. Errors: ErrBadCode for a wrong or malformed
// code, which counts toward the lockout; a *LockedError (ErrLocked) after
// maxTOTPFailures wrong codes; ErrBusy when too many codes are being checked
// at once to look at this one; ErrNotEnrolled when principal has no secret.
func (t *TOTP) Check(ctx context.Context, principal, code string, now time.Time) (Accepted, error) {
	if !isDigits(code, totpDigits.Length()) {
		return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, ErrBadCode)
	}
	secret, err := t.secrets.TOTPSecret(ctx, principal)
	if errors.Is(err, ErrNotEnrolled) {
		return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, ErrNotEnrolled)
	}
	if err != nil {
		return Accepted{}, fmt.Errorf("totp verify %q: read secret: %w", principal, err)
	}
	failures, until, err := t.secrets.TOTPFailures(ctx, principal)
	if err != nil {
		return Accepted{}, fmt.Errorf("totp verify %q: count failures: %w", principal, err)
	}
	if failures >= maxTOTPFailures {
		return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, &LockedError{Failures: failures, Until: until})
	}
	// The attempt is counted before the code is looked at: checking the
	// count and adding to it later would let concurrent guesses all pass
	// the check. The count holds the wrong codes and the codes being
	// checked right now.
	attempts, err := t.secrets.TOTPAttempt(ctx, principal, totpLockout)
	if err != nil {
		return Accepted{}, fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
	}
	if attempts > maxTOTPFailures {
		// The code is not looked at, so this was no guess: the attempt is
		// taken back. Whether that is a lockout depends on the wrong
		// codes alone: a burst of right codes is only busy.
		if err := t.secrets.TOTPAttemptOK(ctx, principal); err != nil {
			return Accepted{}, fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
		}
		failures, until, err := t.secrets.TOTPFailures(ctx, principal)
		if err != nil {
			return Accepted{}, fmt.Errorf("totp verify %q: count failures: %w", principal, err)
		}
		if failures >= maxTOTPFailures {
			return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, &LockedError{Failures: failures, Until: until})
		}
		return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, ErrBusy)
	}

	unix := now.Unix()
	if unix < 0 {
		return Accepted{}, fmt.Errorf("totp verify %q: time %s is before 1970", principal, now)
	}
	current := uint64(unix) / totpPeriod
	// Compute every accepted step and compare each in constant time,
	// without stopping at a match, so that timing does not tell which step
	// (if any) matched.
	var matched uint64
	found := 0
	for c := current - min(current, totpSkew); c <= current+totpSkew; c++ {
		want, err := hotp.GenerateCodeCustom(secret, c, hotp.ValidateOpts{Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			// Only a corrupt stored secret gets here; pquerna's error
			// does not contain it.
			return Accepted{}, fmt.Errorf("totp verify %q: stored secret unusable: %w", principal, err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched, found = c, 1
		}
	}
	if found == 0 {
		// The attempt stays counted: it was a wrong guess.
		if _, _, err := t.secrets.TOTPFailure(ctx, principal, totpLockout); err != nil {
			return Accepted{}, fmt.Errorf("totp verify %q: count failure: %w", principal, err)
		}
		return Accepted{}, fmt.Errorf("totp verify %q: %w", principal, ErrBadCode)
	}
	if err := t.secrets.TOTPAttemptOK(ctx, principal); err != nil {
		return Accepted{}, fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
	}
	return Accepted{principal: principal, counter: matched}, nil
}

// Use uses up a code Check accepted: ErrReplay when it was already used
// (by another request, or another replica, first).
func (t *TOTP) Use(ctx context.Context, a Accepted) error {
	if a.principal == "" {
		return errors.New("totp use: no accepted code")
	}
	first, err := t.secrets.MarkTOTPUsed(ctx, a.principal, a.counter, totpUsedTTL)
	if err != nil {
		return fmt.Errorf("totp verify %q: record use: %w", a.principal, err)
	}
	if !first {
		return fmt.Errorf("totp verify %q: %w", a.principal, ErrReplay)
	}
	return nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
