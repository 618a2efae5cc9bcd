package identity

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the identity section of Elevate's configuration: how API callers
// authenticate. At least one of JWT and StaticTokens must be set.
type Config struct {
	// JWT accepts bearer JWTs issued by the organisation's identity
	// provider; nil disables JWT authentication.
	JWT *JWTConfig `json:"jwt,omitempty" yaml:"jwt,omitempty"`
	// StaticTokens are long-lived bearer tokens for decision clients (and,
	// without an identity provider, users), stored as SHA-256 hashes.
	StaticTokens []StaticToken `json:"static_tokens,omitempty" yaml:"static_tokens,omitempty"`
	// TOTP configures the built-in second factor.
	TOTP TOTPConfig `json:"totp" yaml:"totp"`
}

// JWTConfig is how bearer JWTs are verified.
type JWTConfig struct {
	// Issuer must equal the iss claim exactly. Required.
	Issuer string `json:"issuer" yaml:"issuer"`
	// Audiences are the accepted aud values; the token's aud must contain
	// at least one of them. Required.
	Audiences []string `json:"audiences" yaml:"audiences"`
	// JWKSFile is a local JWK Set holding the verification keys, read once
	// at start-up. Exactly one of JWKSFile and JWKSURL is required.
	JWKSFile string `json:"jwks_file,omitempty" yaml:"jwks_file,omitempty"`
	// JWKSURL is the identity provider's JWK Set, fetched at start-up and
	// refreshed in the background (and early, at most once a minute, when a
	// token names a key it does not hold). It must be https unless the host
	// is loopback.
	JWKSURL string `json:"jwks_url,omitempty" yaml:"jwks_url,omitempty"`
	// Algorithms is the allow-list of signature algorithms; empty means
	// RS256, ES256, PS256 and EdDSA. HMAC (HS*) and "none" are refused:
	// with a public JWKS they would let anyone mint tokens.
	Algorithms []string `json:"algorithms,omitempty" yaml:"algorithms,omitempty"`
	// PrincipalClaim names the claim holding the principal; empty means
	// "email". A token without it is rejected: there is no fallback.
	PrincipalClaim string `json:"principal_claim,omitempty" yaml:"principal_claim,omitempty"`
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// 30s, and at most 5m is accepted.
	Leeway Duration `json:"leeway,omitempty" yaml:"leeway,omitempty"`
}

// StaticToken is one accepted static bearer token.
type StaticToken struct {
	// Name is the principal (kind user, in its canonical lower case) or
	// the client's name (kind client) that the token authenticates as.
	// Both must pass ParsePrincipal, and no user may share a name with a
	// client.
	Name string `json:"name" yaml:"name"`
	// Kind is user or client.
	Kind Kind `json:"kind" yaml:"kind"`
	// SHA256 is the hex SHA-256 of the token (see HashToken); the token
	// itself is never stored. Several entries may share a Name, so a token
	// can be rotated without downtime.
	SHA256 string `json:"sha256" yaml:"sha256"`
}

// TOTPConfig is the built-in TOTP second factor.
type TOTPConfig struct {
	// Issuer is the name authenticator apps show next to the account;
	// empty means "Elevate".
	Issuer string `json:"issuer,omitempty" yaml:"issuer,omitempty"`
	// InviteTTL is how long an enrolment invite (POST
	// /v1/mfa/totp/invites) stays good; zero means 15m, and at most 24h
	// is accepted: an invite travels out of band and should not linger.
	InviteTTL Duration `json:"invite_ttl,omitempty" yaml:"invite_ttl,omitempty"`
	// IdPMFAMaxAge lets a user whose JWT says they signed in with a second
	// factor (amr mfa, otp, hwk, ...) at most this long ago enrol without
	// an invite; zero means 10m, and at most 1h is accepted.
	IdPMFAMaxAge Duration `json:"idp_mfa_max_age,omitempty" yaml:"idp_mfa_max_age,omitempty"`
	// RequireInvite makes an invite the only way to a first enrolment,
	// even for a JWT carrying MFA evidence.
	RequireInvite bool `json:"require_invite,omitempty" yaml:"require_invite,omitempty"`
}

// withDefaults returns a copy with empty fields set to their defaults.
func (t TOTPConfig) withDefaults() TOTPConfig {
	if t.Issuer == "" {
		t.Issuer = DefaultTOTPIssuer
	}
	if t.InviteTTL == 0 {
		t.InviteTTL = Duration(DefaultInviteTTL)
	}
	if t.IdPMFAMaxAge == 0 {
		t.IdPMFAMaxAge = Duration(DefaultIdPMFAMaxAge)
	}
	return t
}

// Defaults applied by New and NewTOTP to fields left empty.
const (
	DefaultPrincipalClaim = "email"
	DefaultLeeway         = 30 * time.Second
	DefaultTOTPIssuer     = "Elevate"
	DefaultInviteTTL      = 15 * time.Minute
	DefaultIdPMFAMaxAge   = 10 * time.Minute

	maxInviteTTL    = 24 * time.Hour
	maxIdPMFAMaxAge = time.Hour

	// maxLeeway bounds Leeway: a larger skew would quietly extend the life
	// of every token.
	maxLeeway = 5 * time.Minute
)

// DefaultAlgorithms is the allow-list used when JWTConfig.Algorithms is empty.
var DefaultAlgorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}

// supportedAlgorithms are the asymmetric JWS algorithms a JWTConfig may allow.
var supportedAlgorithms = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA", "Ed25519",
}

// FieldError is a configuration error: the dotted path of the field it
// concerns (e.g. "identity.jwt.issuer") and why.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks every field, returning a *FieldError naming the first bad
// one. It does not touch the network or the file system.
func (c Config) Validate() error {
	if c.JWT == nil && len(c.StaticTokens) == 0 {
		// Nobody could ever authenticate: every call would be a 401.
		return fieldErr("identity", "configure identity.jwt or identity.static_tokens")
	}
	if c.JWT != nil {
		if err := c.JWT.validate("identity.jwt"); err != nil {
			return err
		}
	}
	seen := map[string]int{}
	kinds := map[string]int{} // canonical name -> first entry
	for i, st := range c.StaticTokens {
		field := fmt.Sprintf("identity.static_tokens[%d]", i)
		if strings.TrimSpace(st.Name) == "" {
			return fieldErr(field+".name", "required")
		}
		if st.Name != strings.TrimSpace(st.Name) {
			return fieldErr(field+".name", "must not begin or end with white space")
		}
		if st.Kind != User && st.Kind != Client {
			return fieldErr(field+".kind", "%q is not user or client", st.Kind)
		}
		canonical, err := ParsePrincipal(st.Name)
		if err != nil {
			return &FieldError{Field: field + ".name", Err: err}
		}
		// Users and decision clients are different kinds of caller: one
		// name for both would let either be taken for the other.
		if j, clash := kinds[canonical]; clash && c.StaticTokens[j].Kind != st.Kind {
			return fieldErr(field+".name", "%q is the name of a %s (identity.static_tokens[%d]): a user and a client may not share a name", st.Name, c.StaticTokens[j].Kind, j)
		}
		if _, ok := kinds[canonical]; !ok {
			kinds[canonical] = i
		}
		sum, err := decodeSHA256(st.SHA256)
		if err != nil {
			return &FieldError{Field: field + ".sha256", Err: err}
		}
		// One hash for two entries would make the identity depend on
		// their order.
		if j, dup := seen[string(sum)]; dup {
			return fieldErr(field+".sha256", "same hash as identity.static_tokens[%d]", j)
		}
		seen[string(sum)] = i
	}
	if strings.Contains(c.TOTP.Issuer, ":") {
		// The otpauth:// label is "issuer:account"; a colon in the issuer
		// makes authenticator apps split it in the wrong place.
		return fieldErr("identity.totp.issuer", "must not contain ':'")
	}
	for _, d := range []struct {
		field string
		v     Duration
		max   time.Duration
	}{
		{"identity.totp.invite_ttl", c.TOTP.InviteTTL, maxInviteTTL},
		{"identity.totp.idp_mfa_max_age", c.TOTP.IdPMFAMaxAge, maxIdPMFAMaxAge},
	} {
		if d.v < 0 || time.Duration(d.v) > d.max {
			return fieldErr(d.field, "must be between 0 (the default) and %s", d.max)
		}
	}
	return nil
}

func (j *JWTConfig) validate(prefix string) error {
	if strings.TrimSpace(j.Issuer) == "" {
		return fieldErr(prefix+".issuer", "required")
	}
	if len(j.Audiences) == 0 {
		return fieldErr(prefix+".audiences", "required, at least one")
	}
	for i, a := range j.Audiences {
		if strings.TrimSpace(a) == "" {
			return fieldErr(fmt.Sprintf("%s.audiences[%d]", prefix, i), "must not be empty")
		}
	}
	switch {
	case j.JWKSFile == "" && j.JWKSURL == "":
		return fieldErr(prefix+".jwks_file", "one of jwks_file and jwks_url is required")
	case j.JWKSFile != "" && j.JWKSURL != "":
		return fieldErr(prefix+".jwks_url", "set only one of jwks_file and jwks_url")
	case j.JWKSURL != "":
		if err := checkJWKSURL(j.JWKSURL); err != nil {
			return &FieldError{Field: prefix + ".jwks_url", Err: err}
		}
	}
	for i, alg := range j.Algorithms {
		field := fmt.Sprintf("%s.algorithms[%d]", prefix, i)
		switch {
		case strings.HasPrefix(strings.ToUpper(alg), "HS"):
			return fieldErr(field, "%q is refused: an HMAC key would have to be shared with every verifier, and a public key used as one lets anyone forge tokens", alg)
		case strings.EqualFold(alg, "none"):
			return fieldErr(field, `"none" is refused: unsigned tokens prove nothing`)
		case !slices.Contains(supportedAlgorithms, alg):
			return fieldErr(field, "%q is not supported (one of %s)", alg, strings.Join(supportedAlgorithms, ", "))
		}
	}
	if j.PrincipalClaim != "" && strings.TrimSpace(j.PrincipalClaim) != j.PrincipalClaim {
		return fieldErr(prefix+".principal_claim", "must not contain white space")
	}
	if j.Leeway < 0 {
		return fieldErr(prefix+".leeway", "must not be negative")
	}
	if time.Duration(j.Leeway) > maxLeeway {
		return fieldErr(prefix+".leeway", "must be at most %s", maxLeeway)
	}
	return nil
}

// withDefaults returns a copy with empty fields set to their defaults.
func (j JWTConfig) withDefaults() JWTConfig {
	if len(j.Algorithms) == 0 {
		j.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	if j.PrincipalClaim == "" {
		j.PrincipalClaim = DefaultPrincipalClaim
	}
	if j.Leeway == 0 {
		j.Leeway = Duration(DefaultLeeway)
	}
	return j
}

// checkJWKSURL allows https anywhere and plain http only to a loopback host,
// where nobody on the network can substitute the keys.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("must be an absolute URL with a host")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New("must be https (plain http is allowed only to a loopback host)")
	default:
		return fmt.Errorf("scheme %q is not https", u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func decodeSHA256(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("required (hex SHA-256 of the token)")
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		// The value is a hash, not a secret, but it may be a token pasted
		// by mistake: do not echo it.
		return nil, errors.New("must be 64 hex digits (the SHA-256 of the token, not the token)")
	}
	return b, nil
}

// Duration is a time.Duration written as a Go duration string ("30s") in
// JSON and YAML.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" { // encoding/json's convention: null leaves it be
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		// A type error, so encoding/json adds the field's path to it.
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a string, for YAML encoders that do not
// go through JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string, for YAML decoders that do not go
// through JSON.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s", b)
	}
	*d = Duration(v)
	return nil
}
