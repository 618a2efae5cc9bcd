// Package demo sets up the product brief's tenant (Perparims Cloud
// Solutions) for trying Elevate: its assignments from data.pim.demo, a
// static token and a TOTP secret for every demo principal, and a token for a
// decision client named "gateway".
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/store"
)

// Credentials are what a demo user needs: written to a file, never logged.
type Credentials struct {
	Principals []PrincipalCredentials `json:"principals"`
	Clients    []ClientCredentials    `json:"clients"`
}

// PrincipalCredentials are one demo principal's token and TOTP secret.
type PrincipalCredentials struct {
	Principal  string `json:"principal"`
	Name       string `json:"name"`
	Token      string `json:"token"`
	TOTPSecret string `json:"totp_secret"`
}

// ClientCredentials are a decision client's token.
type ClientCredentials struct {
	Name  string `json:"name"`
	Token string `json:"token"`
}

// Tenant is data.pim.demo.
type Tenant struct {
	Tenant     string `json:"tenant"`
	Principals []struct {
		Principal string `json:"principal"`
		Name      string `json:"name"`
	} `json:"principals"`
	Assignments []struct {
		Principal string               `json:"principal"`
		Role      string               `json:"role"`
		Scope     string               `json:"scope"`
		Type      store.AssignmentType `json:"type"`
	} `json:"assignments"`
}

var tenantQuery = policy.MustQuery("data.pim.demo")

// Setup loads the tenant into st (assignments already there are kept),
// enrols every demo principal in TOTP, and returns their credentials and
// the static tokens the authenticator must accept.
func Setup(ctx context.Context, engine *policy.Engine, st store.Store, totp *identity.TOTP) (Credentials, []identity.StaticToken, error) {
	v, err := engine.Eval(ctx, tenantQuery, nil)
	if err != nil {
		return Credentials{}, nil, fmt.Errorf("demo tenant (data.pim.demo): %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return Credentials{}, nil, err
	}
	var t Tenant
	if err := json.Unmarshal(b, &t); err != nil {
		return Credentials{}, nil, fmt.Errorf("demo tenant (data.pim.demo): %w", err)
	}
	now := time.Now().UTC()
	for _, a := range t.Assignments {
		principal, err := identity.ParsePrincipal(a.Principal)
		if err != nil {
			return Credentials{}, nil, fmt.Errorf("demo assignment of %q: %w", a.Principal, err)
		}
		err = st.CreateAssignment(ctx, store.Assignment{
			// Fixed ids, so a restart against the same Redis finds them.
			ID:        "demo-" + strings.SplitN(principal, "@", 2)[0] + "-" + a.Role,
			Principal: principal, Role: a.Role, Scope: a.Scope, Type: a.Type,
			CreatedBy: "demo", CreatedAt: now,
		})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return Credentials{}, nil, fmt.Errorf("demo assignment of %s: %w", principal, err)
		}
	}

	var creds Credentials
	var tokens []identity.StaticToken
	for _, p := range t.Principals {
		principal, err := identity.ParsePrincipal(p.Principal)
		if err != nil {
			return Credentials{}, nil, fmt.Errorf("demo principal %q: %w", p.Principal, err)
		}
		token, err := identity.NewToken()
		if err != nil {
			return Credentials{}, nil, err
		}
		en, err := totp.Enroll(ctx, principal)
		if err != nil {
			return Credentials{}, nil, fmt.Errorf("demo TOTP of %s: %w", principal, err)
		}
		creds.Principals = append(creds.Principals, PrincipalCredentials{Principal: principal, Name: p.Name, Token: token, TOTPSecret: en.Secret})
		tokens = append(tokens, identity.StaticToken{Name: principal, Kind: identity.User, SHA256: identity.HashToken(token)})
	}
	token, err := identity.NewToken()
	if err != nil {
		return Credentials{}, nil, err
	}
	creds.Clients = append(creds.Clients, ClientCredentials{Name: "gateway", Token: token})
	tokens = append(tokens, identity.StaticToken{Name: "gateway", Kind: identity.Client, SHA256: identity.HashToken(token)})
	return creds, tokens, nil
}

// Write stores the credentials at path, readable by the owner only.
func Write(path string, creds Credentials) error {
	b, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write demo credentials: %w", err)
	}
	return os.Rename(tmp, path)
}
