package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// The identity provider the bench plays: users authenticate with ES256 JWTs
// whose amr says they used a second factor, as an OIDC provider issues them.
const (
	issuer   = "https://idp.bench.example/"
	audience = "elevate"
)

type idp struct {
	key      jwk.Key
	jwksFile string
}

// newIDP makes a signing key and writes its public JWK Set to dir.
func newIDP(dir string) (*idp, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := jwk.Import(raw)
	if err != nil {
		return nil, err
	}
	if err := key.Set(jwk.KeyIDKey, "bench-1"); err != nil {
		return nil, err
	}
	pub, err := key.PublicKey()
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		return nil, err
	}
	return &idp{key: key, jwksFile: file}, nil
}

// token is a bearer JWT for principal, valid for two hours, saying the user
// signed in with a password and a second factor just now.
func (i *idp) token(principal string, now time.Time) (string, error) {
	tok, err := jwt.NewBuilder().
		Issuer(issuer).Audience([]string{audience}).Subject(principal).
		IssuedAt(now).Expiration(now.Add(2*time.Hour)).
		Claim("email", principal).Claim("email_verified", true).
		Claim("amr", []string{"pwd", "mfa"}).Claim("auth_time", now.Unix()).
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256(), i.key))
	return string(b), err
}
