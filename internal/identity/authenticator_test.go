package identity

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"sigs.k8s.io/yaml"
)

const (
	gatewayToken = "elv_gateway-token-for-tests"
	sophiaToken  = "elv_sophia-token-for-tests"
)

func staticConfig() Config {
	return Config{StaticTokens: []StaticToken{
		{Name: "edge-gateway", Kind: Client, SHA256: HashToken(gatewayToken)},
		{Name: "Sophia.Davis@perparims.example", Kind: User, SHA256: strings.ToUpper(HashToken(sophiaToken))},
		{Name: "edge-gateway", Kind: Client, SHA256: HashToken("elv_rotated-gateway-token")},
	}}
}

func TestAuthenticateHeader(t *testing.T) {
	a := newAuth(t, staticConfig())
	tests := map[string]struct {
		header  string
		want    Identity
		wantErr string
	}{
		"static client token": {
			header: "Bearer " + gatewayToken,
			want:   Identity{Principal: "edge-gateway", Kind: Client, Method: MethodStatic},
		},
		"static user token, principal lowercased": {
			header: "Bearer " + sophiaToken,
			want:   Identity{Principal: "sophia.davis@perparims.example", Kind: User, Method: MethodStatic},
		},
		"second token of a rotated client": {
			header: "Bearer elv_rotated-gateway-token",
			want:   Identity{Principal: "edge-gateway", Kind: Client, Method: MethodStatic},
		},
		"scheme is case-insensitive, spaces tolerated": {
			header: "  bearer   " + gatewayToken + " ",
			want:   Identity{Principal: "edge-gateway", Kind: Client, Method: MethodStatic},
		},

		"missing header":         {header: "", wantErr: "missing Authorization header"},
		"only spaces":            {header: "   ", wantErr: "missing Authorization header"},
		"basic auth":             {header: "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p")), wantErr: "not Bearer"},
		"token without a scheme": {header: gatewayToken, wantErr: "not Bearer"},
		"Bearer alone":           {header: "Bearer", wantErr: "empty bearer token"},
		"Bearer and spaces":      {header: "Bearer    ", wantErr: "empty bearer token"},
		"wrong token":            {header: "Bearer elv_not-the-right-one", wantErr: "unknown token"},
		"token with a prefix of a right one": {
			header: "Bearer " + gatewayToken[:len(gatewayToken)-1], wantErr: "unknown token",
		},
		"two tokens":              {header: "Bearer " + gatewayToken + " " + gatewayToken, wantErr: "malformed"},
		"garbage":                 {header: "Bearer \x00\xff<script>", wantErr: "malformed"},
		"padding in the middle":   {header: "Bearer ab=cd", wantErr: "malformed"},
		"too long":                {header: "Bearer " + strings.Repeat("a", maxTokenLen+1), wantErr: "too long"},
		"JWT shape, JWT disabled": {header: "Bearer aaa.bbb.ccc", wantErr: "unknown token"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := a.Authenticate(context.Background(), tc.header)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want ErrUnauthenticated saying %q", got, err, tc.wantErr)
				}
				if token := strings.TrimSpace(strings.TrimPrefix(tc.header, "Bearer")); len(token) >= 8 && strings.Contains(err.Error(), token) {
					t.Errorf("error %q echoes the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Principal != tc.want.Principal || got.Kind != tc.want.Kind || got.Method != tc.want.Method || got.MFA.Methods != nil || !got.MFA.AuthTime.IsZero() {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStaticAndJWTTogether(t *testing.T) {
	k := keys(t)
	cfg := staticConfig()
	cfg.JWT = jwtConfig(writeJWKS(t, k.rsa))
	a := newAuth(t, cfg)

	if id, err := a.Authenticate(context.Background(), "Bearer "+gatewayToken); err != nil || id.Kind != Client {
		t.Fatalf("static token: %+v, %v", id, err)
	}
	id, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.rsa, jwa.RS256(), claims(time.Now())))
	if err != nil || id.Method != MethodJWT || id.Kind != User {
		t.Fatalf("JWT: %+v, %v", id, err)
	}
	// A static token that is not a JWT does not reach the JWT verifier.
	if _, err := a.Authenticate(context.Background(), "Bearer elv_wrong"); err == nil || !strings.Contains(err.Error(), "unknown token") {
		t.Fatalf("error %v, want unknown token", err)
	}
}

func TestHashToken(t *testing.T) {
	tests := map[string]struct{ token, want string }{
		"empty": {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		"abc":   {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := HashToken(tc.token); got != tc.want {
				t.Errorf("HashToken(%q) = %s, want %s", tc.token, got, tc.want)
			}
		})
	}
}

func TestNewToken(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two tokens are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(a, "elv_"))
	if !strings.HasPrefix(a, "elv_") || err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not elv_ and 32 bytes of base64url (%v)", a, err)
	}
	// A minted token is accepted by the header parser and authenticates.
	auth := newAuth(t, Config{StaticTokens: []StaticToken{{Name: "demo", Kind: Client, SHA256: HashToken(a)}}})
	if id, err := auth.Authenticate(context.Background(), "Bearer "+a); err != nil || id.Principal != "demo" {
		t.Fatalf("%+v, %v", id, err)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{
			JWT: &JWTConfig{Issuer: testIssuer, Audiences: []string{testAudience}, JWKSFile: "/etc/elevate/jwks.json"},
			StaticTokens: []StaticToken{
				{Name: "edge-gateway", Kind: Client, SHA256: HashToken("a")},
			},
		}
	}
	tests := map[string]struct {
		change    func(c *Config)
		wantField string // "" when valid
		wantMsg   string
	}{
		"valid":                            {change: func(*Config) {}},
		"static tokens only":               {change: func(c *Config) { c.JWT = nil }},
		"jwt only":                         {change: func(c *Config) { c.StaticTokens = nil }},
		"https jwks_url":                   {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "https://idp.example/keys" }},
		"loopback http jwks_url":           {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "http://127.0.0.1:8080/keys" }},
		"localhost http jwks_url":          {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "http://localhost/keys" }},
		"ipv6 loopback http jwks_url":      {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "http://[::1]:9000/keys" }},
		"explicit algorithms":              {change: func(c *Config) { c.JWT.Algorithms = []string{"ES384", "Ed25519", "PS512"} }},
		"nothing configured":               {change: func(c *Config) { c.JWT = nil; c.StaticTokens = nil }, wantField: "identity"},
		"missing issuer":                   {change: func(c *Config) { c.JWT.Issuer = "" }, wantField: "identity.jwt.issuer", wantMsg: "required"},
		"blank issuer":                     {change: func(c *Config) { c.JWT.Issuer = "  " }, wantField: "identity.jwt.issuer"},
		"missing audiences":                {change: func(c *Config) { c.JWT.Audiences = nil }, wantField: "identity.jwt.audiences"},
		"empty audience":                   {change: func(c *Config) { c.JWT.Audiences = []string{"a", ""} }, wantField: "identity.jwt.audiences[1]"},
		"neither jwks_file nor jwks_url":   {change: func(c *Config) { c.JWT.JWKSFile = "" }, wantField: "identity.jwt.jwks_file"},
		"both jwks_file and jwks_url":      {change: func(c *Config) { c.JWT.JWKSURL = "https://idp.example/keys" }, wantField: "identity.jwt.jwks_url"},
		"plain http jwks_url":              {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "http://idp.example/keys" }, wantField: "identity.jwt.jwks_url", wantMsg: "https"},
		"jwks_url on loopback-looking DNS": {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "http://127.0.0.1.evil.example/keys" }, wantField: "identity.jwt.jwks_url"},
		"relative jwks_url":                {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "/keys" }, wantField: "identity.jwt.jwks_url"},
		"ftp jwks_url":                     {change: func(c *Config) { c.JWT.JWKSFile = ""; c.JWT.JWKSURL = "ftp://idp.example/keys" }, wantField: "identity.jwt.jwks_url"},
		"HS256 refused":                    {change: func(c *Config) { c.JWT.Algorithms = []string{"RS256", "HS256"} }, wantField: "identity.jwt.algorithms[1]", wantMsg: "refused"},
		"hs512 refused":                    {change: func(c *Config) { c.JWT.Algorithms = []string{"hs512"} }, wantField: "identity.jwt.algorithms[0]", wantMsg: "refused"},
		"none refused":                     {change: func(c *Config) { c.JWT.Algorithms = []string{"none"} }, wantField: "identity.jwt.algorithms[0]", wantMsg: "refused"},
		"unknown algorithm":                {change: func(c *Config) { c.JWT.Algorithms = []string{"RS257"} }, wantField: "identity.jwt.algorithms[0]", wantMsg: "not supported"},
		"negative leeway":                  {change: func(c *Config) { c.JWT.Leeway = Duration(-time.Second) }, wantField: "identity.jwt.leeway"},
		"huge leeway":                      {change: func(c *Config) { c.JWT.Leeway = Duration(time.Hour) }, wantField: "identity.jwt.leeway"},
		"principal claim with spaces":      {change: func(c *Config) { c.JWT.PrincipalClaim = " email" }, wantField: "identity.jwt.principal_claim"},
		"static token without name":        {change: func(c *Config) { c.StaticTokens[0].Name = "" }, wantField: "identity.static_tokens[0].name"},
		"static token without kind":        {change: func(c *Config) { c.StaticTokens[0].Kind = "" }, wantField: "identity.static_tokens[0].kind"},
		"static token of kind admin":       {change: func(c *Config) { c.StaticTokens[0].Kind = "admin" }, wantField: "identity.static_tokens[0].kind"},
		"static token without hash":        {change: func(c *Config) { c.StaticTokens[0].SHA256 = "" }, wantField: "identity.static_tokens[0].sha256"},
		"static token with the token itself": {
			change:    func(c *Config) { c.StaticTokens[0].SHA256 = "elv_secret-token-pasted-by-mistake" },
			wantField: "identity.static_tokens[0].sha256",
		},
		"static token with a short hash": {change: func(c *Config) { c.StaticTokens[0].SHA256 = "abcd" }, wantField: "identity.static_tokens[0].sha256"},
		"two static tokens with one hash": {
			change: func(c *Config) {
				c.StaticTokens = append(c.StaticTokens, StaticToken{Name: "other", Kind: User, SHA256: strings.ToUpper(HashToken("a"))})
			},
			wantField: "identity.static_tokens[1].sha256",
		},
		"totp issuer with a colon": {change: func(c *Config) { c.TOTP.Issuer = "Perparims: Elevate" }, wantField: "identity.totp.issuer"},
		"invite ttl":               {change: func(c *Config) { c.TOTP.InviteTTL = Duration(time.Hour) }},
		"invite ttl at the bound":  {change: func(c *Config) { c.TOTP.InviteTTL = Duration(24 * time.Hour) }},
		"invite ttl too long":      {change: func(c *Config) { c.TOTP.InviteTTL = Duration(25 * time.Hour) }, wantField: "identity.totp.invite_ttl"},
		"negative invite ttl":      {change: func(c *Config) { c.TOTP.InviteTTL = Duration(-time.Second) }, wantField: "identity.totp.invite_ttl"},
		"idp mfa max age too long": {change: func(c *Config) { c.TOTP.IdPMFAMaxAge = Duration(2 * time.Hour) }, wantField: "identity.totp.idp_mfa_max_age"},
		"negative idp mfa max age": {change: func(c *Config) { c.TOTP.IdPMFAMaxAge = Duration(-time.Second) }, wantField: "identity.totp.idp_mfa_max_age"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FieldError", err)
			}
			if fe.Field != tc.wantField || !strings.HasPrefix(err.Error(), tc.wantField+": ") || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want field %s saying %q", err, tc.wantField, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "elv_secret") {
				t.Errorf("error %q echoes a token", err)
			}
			if _, nerr := New(context.Background(), c); nerr == nil {
				t.Error("New accepted a config Validate refused")
			}
		})
	}
}

func TestConfigFromYAML(t *testing.T) {
	doc := `
jwt:
  issuer: https://idp.perparims.example
  audiences: [elevate]
  jwks_url: https://idp.perparims.example/keys
  leeway: 45s
static_tokens:
  - name: edge-gateway
    kind: client
    sha256: ` + HashToken("x") + `
totp:
  issuer: Perparims
`
	var c Config
	if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.JWT.Leeway != Duration(45*time.Second) || c.StaticTokens[0].Kind != Client || c.TOTP.Issuer != "Perparims" {
		t.Errorf("decoded %+v", c)
	}
	if err := yaml.Unmarshal([]byte("jwt: {leeway: soon}"), &c); err == nil {
		t.Error(`leeway "soon" accepted`)
	}
	out, err := yaml.Marshal(c)
	if err != nil || !strings.Contains(string(out), "leeway: 45s") {
		t.Errorf("marshalled %s, %v", out, err)
	}
}
