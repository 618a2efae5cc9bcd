package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// FuzzAuthenticate feeds arbitrary Authorization headers to an Authenticator
// with static tokens and JWT configured. None may panic, and none may
// authenticate: the static tokens are random and never seeded, and every
// seeded JWT is signed by a key outside the JWKS, so no mutation of a seed
// is a credential.
func FuzzAuthenticate(f *testing.F) {
	k := keys(f)
	now := time.Now()
	cfg := Config{JWT: jwtConfig(writeJWKS(f, k.rsa, k.ec))}
	for _, kind := range []Kind{User, Client} {
		token, err := NewToken()
		if err != nil {
			f.Fatal(err)
		}
		cfg.StaticTokens = append(cfg.StaticTokens, StaticToken{Name: "fuzz-" + string(kind), Kind: kind, SHA256: HashToken(token)})
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	// forged is signed by a key outside the JWKS under the kid of one in it.
	forger, err := k.rsaOther.Clone()
	if err != nil {
		f.Fatal(err)
	}
	if err := forger.Set("kid", "rsa-1"); err != nil {
		f.Fatal(err)
	}

	expired := claims(now)
	expired["exp"] = now.Add(-time.Hour).Unix()
	wrongAud := claims(now)
	wrongAud["aud"] = "other"
	forged := sign(f, forger, jwa.RS256(), claims(now))
	parts := strings.Split(forged, ".")
	for _, seed := range []string{
		"",
		"Bearer",
		"Bearer ",
		"Basic dTpw",
		"Bearer elv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"Bearer a.b.c",
		"Bearer ..",
		"Bearer " + sign(f, forger, jwa.RS256(), expired),
		"Bearer " + sign(f, forger, jwa.RS256(), wrongAud),
		"Bearer " + forged,
		"Bearer " + b64(map[string]any{"alg": "none"}) + "." + parts[1] + ".",
		"Bearer " + b64(map[string]any{"alg": "HS256", "kid": "rsa-1"}) + "." + parts[1] + "." + parts[2],
		"Bearer " + parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4] + "AAAA",
		"Bearer " + parts[0] + "." + b64(map[string]any{"email": "x"}) + "." + parts[2],
		"bearer\t" + parts[0],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, err := a.Authenticate(context.Background(), header)
		if err == nil {
			t.Fatalf("header %q authenticated as %+v", header, id)
		}
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
		}
		token := strings.TrimSpace(header)
		if _, rest, ok := strings.Cut(token, " "); ok {
			token = strings.TrimSpace(rest)
		}
		if len(token) >= 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q echoes the token", err)
		}
	})
}
