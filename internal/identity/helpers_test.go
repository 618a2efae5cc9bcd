package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// memSecrets is the test double of Secrets: a map behind a mutex.
type memSecrets struct {
	mu       sync.Mutex
	secrets  map[string]string
	used     map[string]time.Time // principal/counter → expiry
	failures map[string]failures
	wrong    map[string]failures
	invites  map[string]invite
	now      func() time.Time
}

type invite struct {
	sum   string
	until time.Time
}

type failures struct {
	n     int
	until time.Time
}

func newMemSecrets() *memSecrets {
	return &memSecrets{secrets: map[string]string{}, used: map[string]time.Time{}, failures: map[string]failures{},
		wrong: map[string]failures{}, invites: map[string]invite{}, now: time.Now}
}

func (m *memSecrets) PutTOTPSecret(_ context.Context, principal, secret string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[principal] = secret
	return nil
}

func (m *memSecrets) TOTPSecret(_ context.Context, principal string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.secrets[principal]
	if !ok {
		return "", ErrNotEnrolled
	}
	return s, nil
}

func (m *memSecrets) MarkTOTPUsed(_ context.Context, principal string, counter uint64, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := fmt.Sprintf("%s/%d", principal, counter)
	if exp, ok := m.used[k]; ok && m.now().Before(exp) {
		return false, nil
	}
	m.used[k] = m.now().Add(ttl)
	return true, nil
}

func (m *memSecrets) TOTPAttempt(_ context.Context, principal string, window time.Duration) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.failures[principal]
	if !m.now().Before(f.until) {
		f = failures{until: m.now().Add(window)}
	}
	f.n++
	m.failures[principal] = f
	return f.n, nil
}

func (m *memSecrets) TOTPAttemptOK(_ context.Context, principal string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.failures[principal]; m.now().Before(f.until) && f.n > 0 {
		f.n--
		m.failures[principal] = f
	}
	return nil
}

func (m *memSecrets) DeleteTOTPSecret(_ context.Context, principal string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.secrets[principal]
	delete(m.secrets, principal)
	return ok, nil
}

func (m *memSecrets) PutTOTPInvite(_ context.Context, principal, sum string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invites[principal] = invite{sum: sum, until: m.now().Add(ttl)}
	return nil
}

func (m *memSecrets) ConsumeTOTPInvite(_ context.Context, principal, sum string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.invites[principal]
	if !ok || inv.sum != sum || !m.now().Before(inv.until) {
		return false, nil
	}
	delete(m.invites, principal)
	return true, nil
}

func (m *memSecrets) TOTPFailure(_ context.Context, principal string, window time.Duration) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.wrong[principal]
	if !m.now().Before(f.until) {
		f = failures{until: m.now().Add(window)}
	}
	f.n++
	m.wrong[principal] = f
	return f.n, f.until, nil
}

func (m *memSecrets) TOTPFailures(_ context.Context, principal string) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.wrong[principal]
	if !m.now().Before(f.until) {
		return 0, time.Time{}, nil
	}
	return f.n, f.until, nil
}

var _ Secrets = (*memSecrets)(nil)

// testKeys are the signing keys of the tests, generated once per run: RSA
// generation is what would otherwise dominate the test time.
type testKeys struct {
	rsa, rsaOther, ec, ed jwk.Key // private, with kid and alg
}

var keysOnce = sync.OnceValues(func() (*testKeys, error) {
	rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	rsa2, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	k := &testKeys{}
	for _, x := range []struct {
		dst *jwk.Key
		raw any
		kid string
		alg jwa.SignatureAlgorithm
	}{
		{&k.rsa, rsa1, "rsa-1", jwa.RS256()},
		{&k.rsaOther, rsa2, "rsa-2", jwa.RS256()},
		{&k.ec, ec, "ec-1", jwa.ES256()},
		{&k.ed, ed, "ed-1", jwa.EdDSA()},
	} {
		key, err := jwk.Import(x.raw)
		if err != nil {
			return nil, err
		}
		if err := key.Set(jwk.KeyIDKey, x.kid); err != nil {
			return nil, err
		}
		*x.dst = key
	}
	return k, nil
})

func keys(t testing.TB) *testKeys {
	t.Helper()
	k, err := keysOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwksJSON is the public JWK Set of the given private keys.
func jwksJSON(t testing.TB, keys ...jwk.Key) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(pub); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeJWKS(t testing.TB, keys ...jwk.Key) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	testIssuer   = "https://idp.perparims.example"
	testAudience = "elevate"
)

// claims are the claims of a valid token, to be changed by each case.
func claims(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"aud":       []string{"other", testAudience},
		"sub":       "00u1abcd",
		"email":     "Sophia.Davis@PerParims.example",
		"exp":       now.Add(10 * time.Minute).Unix(),
		"iat":       now.Add(-time.Minute).Unix(),
		"nbf":       now.Add(-time.Minute).Unix(),
		"amr":       []string{"pwd", "mfa"},
		"auth_time": now.Add(-2 * time.Minute).Unix(),
	}
}

// sign returns a compact JWT of claims signed by key with alg.
func sign(t testing.TB, key jwk.Key, alg jwa.SignatureAlgorithm, c map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range c {
		if err := tok.Set(k, v); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func jwtConfig(path string) *JWTConfig {
	return &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSFile: path}
}

// withHTTPClient fetches the JWKS URL with c, to trust an httptest TLS
// server.
func withHTTPClient(c *http.Client) Option {
	return func(o *options) { o.httpClient = c }
}

// withJWKSInterval refreshes the JWKS URL every d in the background.
func withJWKSInterval(d time.Duration) Option {
	return func(o *options) { o.jwksMinInterval, o.jwksMaxInterval = d, d }
}

func newAuth(t testing.TB, cfg Config) *Authenticator {
	t.Helper()
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}
