package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/httprc/v3"
	"github.com/lestrrat-go/httprc/v3/errsink"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/sirupsen/logrus"
)

const (
	// jwksFetchTimeout bounds one fetch of the JWKS URL.
	jwksFetchTimeout = 10 * time.Second
	// jwksMinInterval and jwksMaxInterval bound the background refresh,
	// which otherwise follows the response's Cache-Control. The maximum
	// bounds how long a key the IdP has withdrawn is still trusted.
	jwksMinInterval = 5 * time.Minute
	jwksMaxInterval = time.Hour
	// jwksMissRefreshGap rate-limits the early refresh triggered by a token
	// naming an unknown key: it makes key rotation at the IdP seamless, but
	// must not let anyone make us hammer the IdP with made-up kids.
	jwksMissRefreshGap = time.Minute
)

var (
	errMalformedJWT    = unauthenticated("malformed JWT")
	errNoAlg           = unauthenticated(`JWT header has no "alg"`)
	errAlgNotAllowed   = unauthenticated("JWT signing algorithm not allowed")
	errUnknownKey      = unauthenticated("JWT signed by an unknown key")
	errKeysDown        = unauthenticated("signing keys unavailable")
	errBadSignature    = unauthenticated("bad JWT signature")
	errBadClaims       = unauthenticated("malformed JWT claims")
	errExpired         = unauthenticated("JWT expired")
	errNoExp           = unauthenticated(`JWT has no "exp"`)
	errNotYetValid     = unauthenticated("JWT not yet valid (nbf)")
	errIssuedInFuture  = unauthenticated("JWT issued in the future (iat)")
	errWrongIssuer     = unauthenticated("JWT has the wrong issuer")
	errWrongAudience   = unauthenticated("JWT has the wrong audience")
	errInvalidClaims   = unauthenticated("JWT claims are invalid")
	errBadAMR          = unauthenticated(`JWT "amr" is not an array of strings`)
	errBadAuthTime     = unauthenticated(`JWT "auth_time" is not a valid NumericDate`)
	errFutureAuthTime  = unauthenticated(`JWT "auth_time" is in the future`)
	errEmailUnverified = unauthenticated(`JWT "email_verified" is false`)

	// errAudience is returned by the audience validator so that it can be
	// told apart from jwx's own validation errors.
	errAudience = errors.New("no accepted audience")
)

// jwtVerifier verifies bearer JWTs strictly against one issuer's keys.
type jwtVerifier struct {
	issuer    string
	audiences []string
	// algs is the allow-list, by name; it never holds HMAC or "none".
	algs   map[string]jwa.SignatureAlgorithm
	claim  string
	leeway time.Duration
	keys   keySource
	now    func() time.Time
}

// keySource holds the verification keys.
type keySource interface {
	keySet(ctx context.Context) (jwk.Set, error)
	// refresh fetches the keys anew if that is allowed now, reporting
	// whether it did.
	refresh(ctx context.Context) bool
	close(ctx context.Context) error
}

func newJWTVerifier(ctx context.Context, cfg JWTConfig, o options, now func() time.Time) (*jwtVerifier, error) {
	v := &jwtVerifier{
		issuer:    cfg.Issuer,
		audiences: cfg.Audiences,
		algs:      map[string]jwa.SignatureAlgorithm{},
		claim:     cfg.PrincipalClaim,
		leeway:    time.Duration(cfg.Leeway),
		now:       now,
	}
	for i, name := range cfg.Algorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(name)
		if !ok || alg.IsSymmetric() { // Validate refuses these; belt and braces.
			return nil, fieldErr(fmt.Sprintf("identity.jwt.algorithms[%d]", i), "%q is not supported", name)
		}
		v.algs[name] = alg
	}

	var field string
	var err error
	if cfg.JWKSFile != "" {
		field = "identity.jwt.jwks_file"
		v.keys, err = loadJWKSFile(cfg.JWKSFile)
	} else {
		field = "identity.jwt.jwks_url"
		v.keys, err = startJWKSURL(ctx, cfg.JWKSURL, o)
	}
	if err != nil {
		return nil, &FieldError{Field: field, Err: err}
	}
	set, err := v.keys.keySet(ctx)
	if err == nil && !v.anyUsableKey(set) {
		err = fmt.Errorf("no key usable with algorithms %s", strings.Join(cfg.Algorithms, ", "))
	}
	if err != nil {
		_ = v.keys.close(context.WithoutCancel(ctx))
		return nil, &FieldError{Field: field, Err: err}
	}
	return v, nil
}

// verify checks token's signature and claims and returns the identity of its
// subject.
func (v *jwtVerifier) verify(ctx context.Context, token string) (Identity, error) {
	picker := &keyPicker{v: v}
	// Verify with jws rather than jwt.Parse so that "crit" validation and
	// the header/key algorithm match can be switched on, and so that the
	// payload is only ever decoded as claims, never guessed to be a nested
	// JWS or JWE.
	payload, err := jws.Verify([]byte(token),
		jws.WithCompact(),
		jws.WithKeyProvider(picker),
		jws.WithAlgorithmMatch(true),
		jws.WithCritValidation(true),
		jws.WithContext(ctx),
	)
	if err != nil {
		switch {
		case picker.reason != nil:
			return Identity{}, picker.reason
		case ctx.Err() != nil:
			return Identity{}, fmt.Errorf("%w: verification interrupted: %w", ErrUnauthenticated, ctx.Err())
		case !picker.offered:
			return Identity{}, errMalformedJWT
		default:
			return Identity{}, errBadSignature
		}
	}

	tok := jwt.New()
	if err := json.Unmarshal(payload, tok); err != nil {
		return Identity{}, errBadClaims
	}
	now := v.now()
	err = jwt.Validate(tok,
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(v.leeway),
		jwt.WithIssuer(v.issuer),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithValidator(jwt.ValidatorFunc(v.checkAudience)),
	)
	if err != nil {
		return Identity{}, validationError(err)
	}

	principal, err := v.principal(tok)
	if err != nil {
		return Identity{}, err
	}
	mfa, err := v.mfa(tok, now)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Principal: principal, Kind: User, MFA: mfa, Method: MethodJWT}, nil
}

// validationError maps jwx's validation errors to our fixed reasons.
func validationError(err error) error {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return errExpired
	case errors.Is(err, jwt.TokenNotYetValidError()):
		return errNotYetValid
	case errors.Is(err, jwt.InvalidIssuedAtError()):
		return errIssuedInFuture
	case errors.Is(err, jwt.InvalidIssuerError()):
		return errWrongIssuer
	case errors.Is(err, errAudience):
		return errWrongAudience
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return errNoExp
	default:
		return errInvalidClaims
	}
}

// checkAudience accepts a token whose aud contains any configured audience
// (jwt.WithAudience takes only one).
func (v *jwtVerifier) checkAudience(_ context.Context, t jwt.Token) error {
	auds, _ := t.Audience()
	for _, want := range v.audiences {
		for _, got := range auds {
			if got == want {
				return nil
			}
		}
	}
	return errAudience
}

func (v *jwtVerifier) principal(tok jwt.Token) (string, error) {
	var raw any
	if err := tok.Get(v.claim, &raw); err != nil {
		return "", unauthenticated(fmt.Sprintf("JWT has no %q claim", v.claim))
	}
	s, ok := raw.(string)
	switch {
	case !ok:
		return "", unauthenticated(fmt.Sprintf("JWT %q claim is not a string", v.claim))
	case strings.TrimSpace(s) == "":
		return "", unauthenticated(fmt.Sprintf("JWT %q claim is empty", v.claim))
	}
	// The principal ends up in audit records, log lines and store keys,
	// and is compared with assignments: refuse what could forge or break
	// them, and look-alikes that would be merged with another principal.
	principal, err := ParsePrincipal(s)
	if err != nil {
		return "", unauthenticated(fmt.Sprintf("JWT %q claim is not a valid principal", v.claim))
	}
	if v.claim == "email" {
		// Some IdPs let users set an address they do not own and say so
		// in email_verified; such an address proves nothing.
		var ev any
		if tok.Get("email_verified", &ev) == nil && (ev == false || ev == "false") {
			return "", errEmailUnverified
		}
	}
	return principal, nil
}

// mfa reads amr (RFC 8176) and auth_time (OIDC Core). Both are optional, but
// a malformed one rejects the token: policies decide on them, so a value we
// cannot read must not silently become "no MFA" or "authenticated now".
func (v *jwtVerifier) mfa(tok jwt.Token, now time.Time) (MFA, error) {
	var m MFA
	var raw any
	if tok.Get("amr", &raw) == nil {
		list, ok := raw.([]any)
		if !ok {
			return MFA{}, errBadAMR
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok || s == "" {
				return MFA{}, errBadAMR
			}
			m.Methods = append(m.Methods, s)
		}
	}
	raw = nil
	if tok.Get("auth_time", &raw) == nil {
		t, ok := numericDate(raw)
		if !ok {
			return MFA{}, errBadAuthTime
		}
		if t.After(now.Add(v.leeway)) {
			return MFA{}, errFutureAuthTime
		}
		m.AuthTime = t
	}
	return m, nil
}

// numericDate reads an RFC 7519 NumericDate: seconds since the epoch, possibly
// fractional.
func numericDate(raw any) (time.Time, bool) {
	var f float64
	switch n := raw.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}, false
		}
	case int64:
		f = float64(n)
	default:
		return time.Time{}, false
	}
	// 1<<40 seconds is some 35,000 years: beyond it, the value is junk.
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}

// keyPicker is the jws.KeyProvider of one verification. It offers only keys
// of the JWKS that fit the header's algorithm, after checking that algorithm
// against the allow-list, and records why it offered none.
type keyPicker struct {
	v       *jwtVerifier
	reason  error
	offered bool
}

func (p *keyPicker) FetchKeys(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	hdr := sig.ProtectedHeaders()
	alg, ok := hdr.Algorithm()
	if !ok {
		p.reason = errNoAlg
		return p.reason
	}
	// The allow-list holds asymmetric algorithms only, so this refuses
	// "none" and HS256 signed with a public key (key confusion) before any
	// key is looked at.
	allowed, ok := p.v.algs[alg.String()]
	if !ok {
		p.reason = errAlgNotAllowed
		return p.reason
	}
	kid, _ := hdr.KeyID()

	set, err := p.v.keys.keySet(ctx)
	if err != nil {
		p.reason = errKeysDown
		return p.reason
	}
	keys := candidates(set, allowed, kid)
	if len(keys) == 0 && p.v.keys.refresh(ctx) {
		// The IdP may have rotated its keys since we last fetched them.
		if set, err = p.v.keys.keySet(ctx); err == nil {
			keys = candidates(set, allowed, kid)
		}
	}
	if len(keys) == 0 {
		p.reason = errUnknownKey
		return p.reason
	}
	for _, k := range keys {
		sink.Key(allowed, k)
	}
	p.offered = true
	return nil
}

// candidates returns the keys of set that may verify a signature made with
// alg: those with the given kid (all of them when kid is empty) whose type,
// curve, "use" and "alg" fit alg.
func candidates(set jwk.Set, alg jwa.SignatureAlgorithm, kid string) []jwk.Key {
	var out []jwk.Key
	for i := range set.Len() {
		k, ok := set.Key(i)
		if !ok {
			continue
		}
		if kid != "" {
			if got, _ := k.KeyID(); got != kid {
				continue
			}
		}
		if keyFits(k, alg) {
			out = append(out, k)
		}
	}
	return out
}

// keyFits reports whether k may verify signatures made with alg. Binding the
// algorithm to the key type here, not only trusting the header, is what stops
// an RS256 key from being offered to any other algorithm.
func keyFits(k jwk.Key, alg jwa.SignatureAlgorithm) bool {
	if jwk.IsUnsupportedKey(k) {
		return false
	}
	if use, ok := k.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
		return false
	}
	if ka, ok := k.Algorithm(); ok && ka.String() != "" && ka.String() != alg.String() {
		return false
	}
	switch name := alg.String(); name {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return k.KeyType() == jwa.RSA()
	case "ES256", "ES384", "ES512":
		want := map[string]jwa.EllipticCurveAlgorithm{"ES256": jwa.P256(), "ES384": jwa.P384(), "ES512": jwa.P521()}[name]
		return k.KeyType() == jwa.EC() && curveOf(k) == want.String()
	case "EdDSA", "Ed25519":
		return k.KeyType() == jwa.OKP() && curveOf(k) == jwa.Ed25519().String()
	default:
		return false
	}
}

func curveOf(k jwk.Key) string {
	c, ok := k.(interface {
		Crv() (jwa.EllipticCurveAlgorithm, bool)
	})
	if !ok {
		return ""
	}
	crv, ok := c.Crv()
	if !ok {
		return ""
	}
	return crv.String()
}

func (v *jwtVerifier) anyUsableKey(set jwk.Set) bool {
	for _, alg := range v.algs {
		if len(candidates(set, alg, "")) > 0 {
			return true
		}
	}
	return false
}

// fileKeys is a JWKS read once from a file.
type fileKeys struct{ set jwk.Set }

func loadJWKSFile(path string) (*fileKeys, error) {
	set, err := jwk.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	// Keep only public halves, in case the file was written with private
	// keys in it; symmetric keys pass through but never fit an allowed
	// algorithm.
	pub, err := jwk.PublicSetOf(set, jwk.WithAllowSymmetric(true), jwk.WithOmitUnsupportedKeys(true))
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	return &fileKeys{set: pub}, nil
}

func (f *fileKeys) keySet(context.Context) (jwk.Set, error) { return f.set, nil }
func (f *fileKeys) refresh(context.Context) bool            { return false }
func (f *fileKeys) close(context.Context) error             { return nil }

// urlKeys is a JWKS fetched from a URL and kept fresh by a jwk.Cache.
type urlKeys struct {
	url    string
	cache  *jwk.Cache
	cancel context.CancelFunc
	log    logrus.FieldLogger
	// lastMiss is when (UnixNano) a refresh was last forced by an unknown
	// key; zero at first, so the first miss after start may refresh.
	lastMiss atomic.Int64
}

func startJWKSURL(ctx context.Context, rawURL string, o options) (*urlKeys, error) {
	cli := &http.Client{Timeout: jwksFetchTimeout}
	if o.httpClient != nil {
		c := *o.httpClient
		cli = &c
	}
	// Redirects must obey the same rule as the configured URL; jwx's
	// defaults then add a redirect limit and forbid https→http.
	cli.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		return checkJWKSURL(req.URL.String())
	}
	cli = jwk.WrapHTTPClientDefaults(cli)

	// The refresh must outlive ctx, which may only bound start-up; Close
	// stops it.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k := &urlKeys{url: rawURL, cancel: cancel, log: o.log.WithField("jwks_url", rawURL)}
	// Registering starts the first fetch in the background; its error, if
	// any, comes through the sink. Start-up waits for that fetch rather than
	// forcing a second one, so the IdP sees one request and none arrives
	// late. Later errors are logged: the keys last fetched stay in use.
	fetchErr := make(chan error, 1)
	var started atomic.Bool
	client := httprc.NewClient(
		httprc.WithWorkers(1),
		httprc.WithWhitelist(httprc.WhitelistFunc(func(u string) bool { return u == rawURL })),
		httprc.WithErrorSink(errsink.NewFunc(func(_ context.Context, err error) {
			if started.Load() {
				k.log.WithError(err).Warn("JWKS refresh failed; the keys fetched last stay in use")
				return
			}
			select {
			case fetchErr <- err:
			default:
			}
		})),
	)
	cache, err := jwk.NewCache(bg, client)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start JWKS cache: %w", err)
	}
	k.cache = cache
	err = cache.Register(ctx, rawURL,
		jwk.WithHTTPClient(cli),
		// Waiting for readiness would block until ctx ends if the IdP is
		// down; firstFetch also ends on the fetch's error.
		jwk.WithWaitReady(false),
		jwk.WithMinInterval(o.jwksMinInterval),
		jwk.WithMaxInterval(o.jwksMaxInterval),
	)
	if err == nil {
		err = k.firstFetch(ctx, fetchErr)
	}
	if err != nil {
		_ = k.close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	started.Store(true)
	return k, nil
}

// firstFetch waits for the fetch that registration started: nil once the
// keys are in, its error if it failed, or a time-out.
func (u *urlKeys) firstFetch(ctx context.Context, fetchErr <-chan error) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	ready := make(chan struct{})
	go func() {
		if u.cache.Ready(ctx, u.url) {
			close(ready)
		}
	}()
	select {
	case <-ready:
		return nil
	case err := <-fetchErr:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *urlKeys) keySet(ctx context.Context) (jwk.Set, error) {
	return u.cache.Lookup(ctx, u.url)
}

func (u *urlKeys) refresh(ctx context.Context) bool {
	now := time.Now().UnixNano()
	last := u.lastMiss.Load()
	if last != 0 && now-last < int64(jwksMissRefreshGap) {
		return false
	}
	// Only the caller that wins the swap refreshes; the others carry on
	// with the keys they have.
	if !u.lastMiss.CompareAndSwap(last, now) {
		return false
	}
	if _, err := u.cache.Refresh(ctx, u.url); err != nil {
		u.log.WithError(err).Warn("JWKS refresh for a token with an unknown key failed; the keys fetched last stay in use")
		return false
	}
	return true
}

func (u *urlKeys) close(ctx context.Context) error {
	defer u.cancel()
	return u.cache.Shutdown(ctx)
}
