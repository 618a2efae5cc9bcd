package identity

import (
	"errors"
	"fmt"

	"golang.org/x/text/secure/precis"
)

// MaxPrincipalLen bounds a principal, in bytes: an email address is at most
// 254 characters, and a principal ends up in store keys, audit records and
// log lines.
const MaxPrincipalLen = 256

// ErrBadPrincipal is wrapped by every refusal of ParsePrincipal.
var ErrBadPrincipal = errors.New("not a valid principal")

// ParsePrincipal checks that s is a principal identifier and returns its
// canonical form, the one principals are compared, stored and audited in.
// It is the one check of principals, used wherever one comes in: JWT claims,
// static token names, API bodies and query parameters, decision subjects,
// and the demo tenant.
//
// s must be a username in the PRECIS UsernameCasePreserved profile (RFC
// 8265) and must be left unchanged by it: what the profile refuses (spaces,
// zero-width and control characters, bidi overrides) is refused, and so is
// what it would map (the Kelvin sign U+212A to "K", full-width and other
// compatibility forms), never mapped. An identity provider holding
// "\u212Aate@..." and "kate@..." as two accounts must not see them merged
// into one principal here. The canonical form is then the
// UsernameCaseMapped one (lower case), since principals compare
// case-insensitively. The error never contains s.
func ParsePrincipal(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrBadPrincipal)
	case len(s) > MaxPrincipalLen:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadPrincipal, MaxPrincipalLen)
	}
	preserved, err := precis.UsernameCasePreserved.String(s)
	if err != nil {
		return "", fmt.Errorf("%w: holds characters a username may not (spaces, invisible or control characters, direction overrides)", ErrBadPrincipal)
	}
	if preserved != s {
		return "", fmt.Errorf("%w: holds look-alike or compatibility characters (such as the Kelvin sign or full-width letters) that stand for others", ErrBadPrincipal)
	}
	canonical, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", fmt.Errorf("%w: cannot be case-folded", ErrBadPrincipal)
	}
	return canonical, nil
}
