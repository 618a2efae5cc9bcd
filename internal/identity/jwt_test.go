package identity

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

func b64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestAuthenticateJWT(t *testing.T) {
	k := keys(t)
	now := time.Now()
	path := writeJWKS(t, k.rsa, k.ec, k.ed)
	a := newAuth(t, Config{JWT: jwtConfig(path)})

	with := func(change func(c map[string]any)) map[string]any {
		c := claims(now)
		change(c)
		return c
	}
	rsaPub, err := k.rsa.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	var rawPub any
	if err := jwk.Export(rsaPub, &rawPub); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(rawPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	// hmacWith signs an HS256 token with secret and the RSA key's kid: the
	// key confusion attack, where a verifier that picks the algorithm from
	// the header uses the public key as an HMAC secret.
	hmacWith := func(secret []byte) string {
		hk, err := jwk.Import(secret)
		if err != nil {
			t.Fatal(err)
		}
		_ = hk.Set(jwk.KeyIDKey, "rsa-1")
		return sign(t, hk, jwa.HS256(), claims(now))
	}
	valid := sign(t, k.rsa, jwa.RS256(), claims(now))
	parts := strings.Split(valid, ".")

	tests := map[string]struct {
		token   string
		want    Identity // zero when an error is wanted
		wantErr string   // part of the error's message
	}{
		"valid RS256": {
			token: valid,
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{Methods: []string{"pwd", "mfa"}, AuthTime: time.Unix(now.Add(-2*time.Minute).Unix(), 0).UTC()},
			},
		},
		"valid ES256 without amr and auth_time": {
			token: sign(t, k.ec, jwa.ES256(), with(func(c map[string]any) { delete(c, "amr"); delete(c, "auth_time") })),
			want:  Identity{Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT},
		},
		"valid EdDSA": {
			token: sign(t, k.ed, jwa.EdDSA(), with(func(c map[string]any) { c["amr"] = []string{"hwk"} })),
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{Methods: []string{"hwk"}, AuthTime: time.Unix(now.Add(-2*time.Minute).Unix(), 0).UTC()},
			},
		},
		"valid PS256 with the RSA key": {
			token: sign(t, k.rsa, jwa.PS256(), with(func(c map[string]any) { delete(c, "amr") })),
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{AuthTime: time.Unix(now.Add(-2*time.Minute).Unix(), 0).UTC()},
			},
		},
		"valid with a single string aud": {
			token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["aud"] = testAudience; delete(c, "amr") })),
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{AuthTime: time.Unix(now.Add(-2*time.Minute).Unix(), 0).UTC()},
			},
		},
		"expired within leeway is accepted": {
			token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix(); delete(c, "auth_time") })),
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{Methods: []string{"pwd", "mfa"}},
			},
		},
		"without kid, the fitting key is found": {
			token: func() string {
				key, _ := k.rsa.Clone()
				_ = key.Remove(jwk.KeyIDKey)
				return sign(t, key, jwa.RS256(), claims(now))
			}(),
			want: Identity{
				Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodJWT,
				MFA: MFA{Methods: []string{"pwd", "mfa"}, AuthTime: time.Unix(now.Add(-2*time.Minute).Unix(), 0).UTC()},
			},
		},

		"expired":                 {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() })), wantErr: "expired"},
		"no exp":                  {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { delete(c, "exp") })), wantErr: `no "exp"`},
		"nbf in the future":       {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })), wantErr: "nbf"},
		"iat in the future":       {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })), wantErr: "iat"},
		"wrong issuer":            {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["iss"] = "https://evil.example" })), wantErr: "issuer"},
		"issuer differs by slash": {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["iss"] = testIssuer + "/" })), wantErr: "issuer"},
		"no issuer":               {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { delete(c, "iss") })), wantErr: "issuer"},
		"wrong audience":          {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["aud"] = []string{"someone-else"} })), wantErr: "audience"},
		"no audience":             {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { delete(c, "aud") })), wantErr: "audience"},
		"no principal claim":      {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { delete(c, "email") })), wantErr: `no "email" claim`},
		"empty principal claim":   {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["email"] = "  " })), wantErr: "empty"},
		"principal not a string":  {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["email"] = []string{"a@b"} })), wantErr: "not a string"},
		"principal with newline":  {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["email"] = "a@b\nadmin" })), wantErr: "not a valid principal"},
		"email not verified":      {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["email_verified"] = false })), wantErr: "email_verified"},
		"amr not an array":        {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["amr"] = "mfa" })), wantErr: "amr"},
		"amr with a number":       {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["amr"] = []any{"pwd", 1} })), wantErr: "amr"},
		"auth_time a string":      {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["auth_time"] = "yesterday" })), wantErr: "auth_time"},
		"auth_time in the future": {token: sign(t, k.rsa, jwa.RS256(), with(func(c map[string]any) { c["auth_time"] = now.Add(time.Hour).Unix() })), wantErr: "auth_time"},

		"alg none": {
			token:   b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(claims(now)) + ".",
			wantErr: "algorithm not allowed",
		},
		"alg none with the RSA kid and a signature copied from a valid token": {
			token:   b64(map[string]any{"alg": "none", "kid": "rsa-1"}) + "." + parts[1] + "." + parts[2],
			wantErr: "algorithm not allowed",
		},
		"HS256 keyed with the RSA public key PEM (key confusion)": {token: hmacWith(pubPEM), wantErr: "algorithm not allowed"},
		"HS256 keyed with the RSA public key DER (key confusion)": {token: hmacWith(der), wantErr: "algorithm not allowed"},
		"HS256 keyed with the RSA public JWK (key confusion)":     {token: hmacWith(jwksJSON(t, k.rsa)), wantErr: "algorithm not allowed"},
		"signed by a key not in the JWKS": {
			token:   sign(t, k.rsaOther, jwa.RS256(), claims(now)),
			wantErr: "unknown key",
		},
		"signed by another key under a known kid": {
			token: func() string {
				key, _ := k.rsaOther.Clone()
				_ = key.Set(jwk.KeyIDKey, "rsa-1")
				return sign(t, key, jwa.RS256(), claims(now))
			}(),
			wantErr: "bad JWT signature",
		},
		"ES256 header naming the RSA key": {
			token: func() string {
				key, _ := k.ec.Clone()
				_ = key.Set(jwk.KeyIDKey, "rsa-1")
				return sign(t, key, jwa.ES256(), claims(now))
			}(),
			wantErr: "unknown key",
		},
		"RS512 not in the default allow-list": {token: sign(t, k.rsa, jwa.RS512(), claims(now)), wantErr: "algorithm not allowed"},
		"payload tampered": {
			token:   parts[0] + "." + b64(with(func(c map[string]any) { c["email"] = "admin@perparims.example" })) + "." + parts[2],
			wantErr: "bad JWT signature",
		},
		"signature stripped":   {token: parts[0] + "." + parts[1] + ".", wantErr: "malformed"},
		"no alg in the header": {token: b64(map[string]any{"kid": "rsa-1"}) + "." + parts[1] + "." + parts[2], wantErr: `no "alg"`},
		"unknown critical header": {
			token: func() string {
				hdr := jws.NewHeaders()
				_ = hdr.Set("exp-policy", "strict")
				_ = hdr.Set(jws.CriticalKey, []string{"exp-policy"})
				tok := jwt.New()
				for k, v := range claims(now) {
					_ = tok.Set(k, v)
				}
				b, err := jwt.Sign(tok, jwt.WithKey(jwa.RS256(), k.rsa, jws.WithProtectedHeaders(hdr)))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}(),
			wantErr: "malformed",
		},
		"header not JSON": {token: "bm90IGpzb24." + parts[1] + "." + parts[2], wantErr: "malformed"},
		"claims not an object": {
			token:   signRaw(t, k.rsa, []byte(`["not","claims"]`)),
			wantErr: "malformed JWT claims",
		},
		"two dots and nothing else": {token: "..", wantErr: "malformed"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := a.Authenticate(context.Background(), "Bearer "+tc.token)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("authenticated as %+v, want an error", got)
				}
				if !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("error %v does not wrap ErrUnauthenticated", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not say %q", err, tc.wantErr)
				}
				if echoes(err, tc.token) {
					t.Errorf("error %q echoes the token", err)
				}
				if !reflect.DeepEqual(got, Identity{}) {
					t.Errorf("identity %+v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// signRaw signs an arbitrary payload with RS256, for payloads jwt.Sign would
// not produce.
func signRaw(t *testing.T, key jwk.Key, payload []byte) string {
	t.Helper()
	b, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAuthenticateJWTOptions(t *testing.T) {
	k := keys(t)
	now := time.Now()
	path := writeJWKS(t, k.rsa, k.ec)

	tests := map[string]struct {
		cfg     func(c *JWTConfig)
		token   string
		want    string // principal, or "" for an error
		wantErr string
	}{
		"allow-list ES256 refuses RS256": {
			cfg:     func(c *JWTConfig) { c.Algorithms = []string{"ES256"} },
			token:   sign(t, k.rsa, jwa.RS256(), claims(now)),
			wantErr: "algorithm not allowed",
		},
		"allow-list ES256 accepts ES256": {
			cfg:   func(c *JWTConfig) { c.Algorithms = []string{"ES256"} },
			token: sign(t, k.ec, jwa.ES256(), claims(now)),
			want:  "sophia.davis@perparims.example",
		},
		"second configured audience": {
			cfg:   func(c *JWTConfig) { c.Audiences = []string{"api://x", "other"} },
			token: sign(t, k.rsa, jwa.RS256(), claims(now)),
			want:  "sophia.davis@perparims.example",
		},
		"principal from sub": {
			cfg:   func(c *JWTConfig) { c.PrincipalClaim = "sub" },
			token: sign(t, k.rsa, jwa.RS256(), claims(now)),
			want:  "00u1abcd",
		},
		"principal from upn, absent": {
			cfg:     func(c *JWTConfig) { c.PrincipalClaim = "upn" },
			token:   sign(t, k.rsa, jwa.RS256(), claims(now)),
			wantErr: `no "upn" claim`,
		},
		"small leeway rejects what the default accepts": {
			cfg: func(c *JWTConfig) { c.Leeway = Duration(time.Second) },
			token: sign(t, k.rsa, jwa.RS256(), func() map[string]any {
				c := claims(now)
				c["exp"] = now.Add(-10 * time.Second).Unix()
				return c
			}()),
			wantErr: "expired",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := jwtConfig(path)
			tc.cfg(cfg)
			a := newAuth(t, Config{JWT: cfg})
			got, err := a.Authenticate(context.Background(), "Bearer "+tc.token)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Principal != tc.want {
				t.Errorf("principal %q, want %q", got.Principal, tc.want)
			}
		})
	}
}

func TestNewJWKSFile(t *testing.T) {
	k := keys(t)
	dir := t.TempDir()
	tests := map[string]struct {
		path    func() string
		algs    []string
		wantErr string
	}{
		"missing file":     {path: func() string { return dir + "/nope.json" }, wantErr: "identity.jwt.jwks_file"},
		"not a JWKS":       {path: func() string { return writeFile(t, "jwks.json", "{") }, wantErr: "identity.jwt.jwks_file"},
		"no key fits algs": {path: func() string { return writeJWKS(t, k.rsa) }, algs: []string{"ES256"}, wantErr: "no key usable"},
		"private keys are accepted as their public half": {path: func() string {
			set := jwk.NewSet()
			_ = set.AddKey(k.rsa)
			b, _ := json.Marshal(set)
			return writeFile(t, "jwks.json", string(b))
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := jwtConfig(tc.path())
			cfg.Algorithms = tc.algs
			a, err := New(context.Background(), Config{JWT: cfg})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsa, jwa.RS256(), claims(time.Now()))); err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if err == nil || !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want a *FieldError saying %q", err, tc.wantErr)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := t.TempDir() + "/" + name
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// jwksServer serves a JWK Set that the test can change, counting requests.
type jwksServer struct {
	body atomic.Value // []byte
	hits atomic.Int64
	fail atomic.Bool
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.hits.Add(1)
	if s.fail.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.body.Load().([]byte))
}

func TestJWKSURL(t *testing.T) {
	k := keys(t)
	now := time.Now()

	t.Run("loopback http, rotation picked up on an unknown kid", func(t *testing.T) {
		srv := &jwksServer{}
		srv.body.Store(jwksJSON(t, k.rsa))
		ts := httptest.NewServer(srv)
		defer ts.Close()

		cfg := &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: ts.URL + "/jwks"}
		a := newAuth(t, Config{JWT: cfg})
		if got := srv.hits.Load(); got != 1 {
			t.Fatalf("JWKS fetched %d times at start-up, want once", got)
		}
		if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsa, jwa.RS256(), claims(now))); err != nil {
			t.Fatal(err)
		}

		// The IdP rotates to a new key; the first token signed with it
		// makes us fetch the JWKS again.
		srv.body.Store(jwksJSON(t, k.rsa, k.rsaOther))
		before := srv.hits.Load()
		id, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsaOther, jwa.RS256(), claims(now)))
		if err != nil {
			t.Fatal(err)
		}
		if id.Principal != "sophia.davis@perparims.example" {
			t.Errorf("principal %q", id.Principal)
		}
		if srv.hits.Load() <= before {
			t.Error("JWKS was not fetched again for an unknown kid")
		}

		// A second unknown kid within the minute does not reach the IdP.
		before = srv.hits.Load()
		key, _ := k.ec.Clone()
		_ = key.Set(jwk.KeyIDKey, "made-up")
		if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, key, jwa.ES256(), claims(now))); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("error %v, want ErrUnauthenticated", err)
		}
		if got := srv.hits.Load(); got != before {
			t.Errorf("JWKS fetched %d more times within the rate limit", got-before)
		}
	})

	t.Run("refresh failures are logged and the keys fetched last stay", func(t *testing.T) {
		srv := &jwksServer{}
		srv.body.Store(jwksJSON(t, k.rsa))
		ts := httptest.NewServer(srv)
		defer ts.Close()
		log, hook := logtest.NewNullLogger()
		warned := func(msg string) bool {
			for _, e := range hook.AllEntries() {
				if e.Level == logrus.WarnLevel && strings.HasPrefix(e.Message, msg) && e.Data["jwks_url"] == ts.URL {
					return true
				}
			}
			return false
		}

		cfg := &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: ts.URL}
		a, err := New(context.Background(), Config{JWT: cfg}, WithLogger(log), withJWKSInterval(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(context.Background())
		srv.fail.Store(true)
		// The background refresh comes every second.
		for deadline := time.Now().Add(10 * time.Second); !warned("JWKS refresh failed"); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no warning of the failed background refresh in 10s: %v", hook.AllEntries())
			}
		}
		if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsa, jwa.RS256(), claims(now))); err != nil {
			t.Fatalf("a token signed with a key fetched before the failure: %v", err)
		}
		if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsaOther, jwa.RS256(), claims(now))); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("a token signed with a key never fetched: %v", err)
		}
		if !warned("JWKS refresh for a token with an unknown key failed") {
			t.Fatalf("no warning of the failed refresh for an unknown key: %v", hook.AllEntries())
		}
	})

	t.Run("https via a TLS test server", func(t *testing.T) {
		srv := &jwksServer{}
		srv.body.Store(jwksJSON(t, k.ec))
		ts := httptest.NewTLSServer(srv)
		defer ts.Close()

		cfg := &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: ts.URL}
		a, err := New(context.Background(), Config{JWT: cfg}, withHTTPClient(ts.Client()))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close(context.Background())
		if _, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.ec, jwa.ES256(), claims(now))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("start-up fails when the JWKS cannot be fetched", func(t *testing.T) {
		srv := &jwksServer{}
		srv.fail.Store(true)
		ts := httptest.NewServer(srv)
		defer ts.Close()

		cfg := &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: ts.URL}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := New(ctx, Config{JWT: cfg})
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "identity.jwt.jwks_url" {
			t.Fatalf("error %v, want a *FieldError on identity.jwt.jwks_url", err)
		}
	})

	t.Run("redirect to a non-loopback http URL is not followed", func(t *testing.T) {
		ts := httptest.NewServer(http.RedirectHandler("http://jwks.example/keys", http.StatusFound))
		defer ts.Close()
		cfg := &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSURL: ts.URL}
		_, err := New(context.Background(), Config{JWT: cfg})
		if err == nil || !strings.Contains(err.Error(), "must be https") {
			t.Fatalf("error %v, want the redirect refused for not being https", err)
		}
	})
}

// echoes reports whether err's message contains token or any of its
// dot-separated parts long enough to be told from our own words.
func echoes(err error, token string) bool {
	msg := err.Error()
	if token != "" && strings.Contains(msg, token) {
		return true
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			return true
		}
	}
	return false
}
