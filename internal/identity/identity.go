// Package identity turns the Authorization header of an API call into the
// Identity of its caller, and owns the built-in TOTP second factor.
//
// A caller is either a person (a principal, from a JWT issued by the
// organisation's identity provider, or a static token) or a decision client
// such as a gateway (a static token). Anything that is not a valid token is
// ErrUnauthenticated: the package never guesses who a caller might be.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Kind of caller.
type Kind string

const (
	// User is a person (principal), e.g. sophia.davis@perparims.example.
	User Kind = "user"
	// Client is a decision client (gateway, service) configured with a
	// static token.
	Client Kind = "client"
)

// MFA is what the identity provider says about how the user authenticated.
type MFA struct {
	// Methods are the RFC 8176 amr values of the token (e.g. "pwd", "mfa",
	// "otp", "hwk"); nil when the token has none or is not a JWT.
	Methods []string
	// AuthTime is when the user authenticated (the auth_time claim); zero
	// when unknown.
	AuthTime time.Time
}

// Identity is an authenticated caller.
type Identity struct {
	// Principal is the canonical principal of a user (see ParsePrincipal),
	// or the configured name of a client; the two never coincide.
	Principal string
	// Kind says whether the caller is a person or a decision client.
	Kind Kind
	// MFA is how a user authenticated, when the token says so.
	MFA MFA
	// Method is how the caller authenticated: MethodJWT or MethodStatic.
	Method string
}

// Values of Identity.Method.
const (
	MethodJWT    = "jwt"
	MethodStatic = "static"
)

var (
	// ErrUnauthenticated is wrapped by every authentication failure; the
	// message says why (missing header, expired, bad signature, ...) but
	// never contains the presented token. Callers answer 401.
	ErrUnauthenticated = errors.New("unauthenticated")

	// ErrNotEnrolled: the principal has no TOTP secret.
	ErrNotEnrolled = errors.New("totp: not enrolled")
	// ErrBadCode: the TOTP code is malformed or matches none of the
	// accepted time steps.
	ErrBadCode = errors.New("totp: wrong code")
	// ErrReplay: the TOTP code was right but has already been used.
	ErrReplay = errors.New("totp: code already used")
	// ErrLocked: too many wrong codes; the principal's codes are refused
	// for a while. It comes as a *LockedError saying until when.
	ErrLocked = errors.New("totp: too many wrong codes, try again later")
	// ErrBusy: too many codes of the principal are being checked at once
	// for this one to be looked at; nothing is wrong with it.
	ErrBusy = errors.New("totp: too many codes at once, try again in a moment")
)

// unauthenticated builds an ErrUnauthenticated that says why. The reason is
// always a fixed string of ours, never text taken from the request, so no
// part of a token can leak into logs through an error.
func unauthenticated(reason string) error {
	return fmt.Errorf("%w: %s", ErrUnauthenticated, reason)
}

// tokenPrefix marks tokens minted by NewToken, so that a leaked one is easy
// to recognise (secret scanners, logs) and to tell from a JWT.
const tokenPrefix = "elv_"

// HashToken returns the hex SHA-256 of token: what a StaticToken stores.
// A plain hash (no salt, no KDF) is enough because tokens from NewToken carry
// 256 random bits; it is not meant for human-chosen passwords.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewToken returns a fresh static token: "elv_" and 32 random bytes in
// unpadded base64url. Store only HashToken of it.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
