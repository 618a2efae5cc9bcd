package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// maxTokenLen bounds the bearer token we are willing to hash or parse. IdP
// access tokens are a few KiB at most; anything larger is junk or an attempt
// to make us spend CPU.
const maxTokenLen = 16 << 10

// Fixed failure reasons; see unauthenticated.
var (
	errMissingHeader = unauthenticated("missing Authorization header")
	errNotBearer     = unauthenticated("Authorization scheme is not Bearer")
	errEmptyToken    = unauthenticated("empty bearer token")
	errMalformed     = unauthenticated("malformed bearer token")
	errTooLong       = unauthenticated("bearer token too long")
	errUnknownToken  = unauthenticated("unknown token")
	errClientName    = unauthenticated("JWT principal is the name of a decision client")
)

// Authenticator turns Authorization headers into identities. It is safe for
// concurrent use.
type Authenticator struct {
	static []staticEntry
	jwt    *jwtVerifier // nil when JWT is not configured
	// clients are the canonical names of the decision clients: no user
	// may be one of them.
	clients map[string]bool
}

type staticEntry struct {
	sum [sha256.Size]byte
	id  Identity
}

// Option configures New.
type Option func(*options)

type options struct {
	log logrus.FieldLogger
	// httpClient fetches the JWKS URL; nil means a default client. Tests
	// set it to trust an httptest TLS server.
	httpClient *http.Client
	// jwksMinInterval and jwksMaxInterval bound the JWKS URL's background
	// refresh.
	jwksMinInterval, jwksMaxInterval time.Duration
}

// WithLogger receives what fails in the background: a JWKS URL that
// cannot be refreshed, whose keys fetched last stay in use. The default is
// logrus's standard logger.
func WithLogger(l logrus.FieldLogger) Option {
	return func(o *options) { o.log = l }
}

// New validates cfg and builds an Authenticator: it reads the JWKS file, or
// fetches the JWKS URL once (failing if that fails, bounded by ctx) and keeps
// it fresh in the background until Close.
func New(ctx context.Context, cfg Config, opts ...Option) (*Authenticator, error) {
	o := options{log: logrus.StandardLogger(), jwksMinInterval: jwksMinInterval, jwksMaxInterval: jwksMaxInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{clients: map[string]bool{}}
	for _, st := range cfg.StaticTokens {
		sum, _ := decodeSHA256(st.SHA256) // checked by Validate
		e := staticEntry{id: Identity{Principal: st.Name, Kind: st.Kind, Method: MethodStatic}}
		copy(e.sum[:], sum)
		if st.Kind == User {
			e.id.Principal, _ = ParsePrincipal(st.Name) // checked by Validate
		} else {
			name, _ := ParsePrincipal(st.Name)
			a.clients[name] = true
		}
		a.static = append(a.static, e)
	}
	if cfg.JWT != nil {
		v, err := newJWTVerifier(ctx, cfg.JWT.withDefaults(), o, time.Now)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Close stops the background refresh of a JWKS URL. The Authenticator still
// verifies tokens afterwards, with the keys it last fetched.
func (a *Authenticator) Close(ctx context.Context) error {
	if a.jwt == nil {
		return nil
	}
	return a.jwt.keys.close(ctx)
}

// Authenticate returns the identity proven by authorization, the raw value of
// an Authorization header ("Bearer <token>"). Every failure wraps
// ErrUnauthenticated.
//
// Static tokens are tried first, then, if the token has the shape of a JWT
// and JWT is configured, JWT verification.
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Identity, error) {
	token, err := bearerToken(authorization)
	if err != nil {
		return Identity{}, err
	}
	if id, ok := a.matchStatic(token); ok {
		return id, nil
	}
	if a.jwt != nil && strings.Count(token, ".") == 2 {
		id, err := a.jwt.verify(ctx, token)
		if err == nil && a.clients[id.Principal] {
			// Users and decision clients never share a name, or one
			// could act on the other's requests and audit trail.
			return Identity{}, errClientName
		}
		return id, err
	}
	return Identity{}, errUnknownToken
}

// matchStatic compares the token's hash with every configured hash, in
// constant time and without stopping at a match, so that timing reveals
// neither which entry matched nor how much of a hash did.
func (a *Authenticator) matchStatic(token string) (Identity, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range a.static {
		if subtle.ConstantTimeCompare(sum[:], a.static[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, false
	}
	return a.static[found].id, true
}

// bearerToken extracts the token of a "Bearer <token>" header value (RFC
// 6750 section 2.1; the scheme is case-insensitive).
func bearerToken(h string) (string, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return "", errMissingHeader
	}
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNotBearer
	}
	token := strings.TrimSpace(rest)
	switch {
	case token == "":
		return "", errEmptyToken
	case len(token) > maxTokenLen:
		return "", errTooLong
	case !isB64Token(token):
		return "", errMalformed
	}
	return token, nil
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
// Both JWTs and NewToken tokens are; rejecting anything else early keeps
// spaces, control characters and non-ASCII out of everything downstream.
func isB64Token(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' {
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
