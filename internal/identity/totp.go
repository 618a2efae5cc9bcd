package identity

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// Secrets is where TOTP secrets and used codes live: the store backends
// (in-memory, Redis) implement it. Secrets must be shared by every replica
// that verifies codes, or a code could be replayed against another replica.
type Secrets interface {
	// PutTOTPSecret stores the base32 secret of principal, replacing any.
	PutTOTPSecret(ctx context.Context, principal string, secret string) error
	// TOTPSecret returns the secret of principal, or an error wrapping (or
	// equal to) ErrNotEnrolled when there is none.
	TOTPSecret(ctx context.Context, principal string) (string, error)
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
// codes are refused (ErrLocked) until the window ends.
type TOTP struct {
	secrets Secrets
	issuer  string
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
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = DefaultTOTPIssuer
	}
	return &TOTP{secrets: s, issuer: issuer}
}

// Enroll generates a new secret for principal, stores it (replacing any
// previous one, which stops working at once) and returns it.
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

// Verify checks code for principal at time now. It returns nil at most once
// per code: ErrBadCode for a wrong or malformed code, ErrReplay for a right
// one already used, ErrNotEnrolled when principal has no secret.
func (t *TOTP) Verify(ctx context.Context, principal, code string, now time.Time) error {
	if !isDigits(code, totpDigits.Length()) {
		return fmt.Errorf("totp verify %q: %w", principal, ErrBadCode)
	}
	secret, err := t.secrets.TOTPSecret(ctx, principal)
	if errors.Is(err, ErrNotEnrolled) {
		return fmt.Errorf("totp verify %q: %w", principal, ErrNotEnrolled)
	}
	if err != nil {
		return fmt.Errorf("totp verify %q: read secret: %w", principal, err)
	}
	// The attempt is counted before the code is looked at: checking the
	// count and adding to it later would let concurrent guesses all pass
	// the check.
	attempts, err := t.secrets.TOTPAttempt(ctx, principal, totpLockout)
	if err != nil {
		return fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
	}
	if attempts > maxTOTPFailures {
		// The code is not looked at, so this was no guess: the attempt is
		// taken back, or a burst of requests with the right code would
		// leave the principal locked out for the window.
		if err := t.secrets.TOTPAttemptOK(ctx, principal); err != nil {
			return fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
		}
		return fmt.Errorf("totp verify %q: %w", principal, ErrLocked)
	}

	unix := now.Unix()
	if unix < 0 {
		return fmt.Errorf("totp verify %q: time %s is before 1970", principal, now)
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
			return fmt.Errorf("totp verify %q: stored secret unusable: %w", principal, err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			matched, found = c, 1
		}
	}
	if found == 0 {
		return fmt.Errorf("totp verify %q: %w", principal, ErrBadCode)
	}
	if err := t.secrets.TOTPAttemptOK(ctx, principal); err != nil {
		return fmt.Errorf("totp verify %q: count attempt: %w", principal, err)
	}
	first, err := t.secrets.MarkTOTPUsed(ctx, principal, matched, totpUsedTTL)
	if err != nil {
		return fmt.Errorf("totp verify %q: record use: %w", principal, err)
	}
	if !first {
		return fmt.Errorf("totp verify %q: %w", principal, ErrReplay)
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
