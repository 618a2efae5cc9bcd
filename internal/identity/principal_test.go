package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
)

// Look-alike principals are refused, never mapped onto the principal they
// imitate (issue 11, item 2).
func TestParsePrincipal(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string // "" when refused
	}{
		"email":                    {"sophia.davis@perparims.example", "sophia.davis@perparims.example"},
		"upper case is folded":     {"Sophia.Davis@PerParims.example", "sophia.davis@perparims.example"},
		"plus and apostrophe":      {"o'brien+pim@perparims.example", "o'brien+pim@perparims.example"},
		"not an email":             {"gateway", "gateway"},
		"non-ASCII letters":        {"zoë.müller@perparims.example", "zoë.müller@perparims.example"},
		"Greek capital is folded":  {"ΣΟΦΙΑ@perparims.example", "σοφια@perparims.example"},
		"Kelvin sign":              {"\u212Aate@perparims.example", ""},
		"Angstrom sign":            {"\u212Bsa@perparims.example", ""},
		"full-width letters":       {"\uFF4Bate@perparims.example", ""},
		"full-width at":            {"kate\uFF20perparims.example", ""},
		"ligature":                 {"\uFB01ona@perparims.example", ""},
		"decomposed accent":        {"zoe\u0308@perparims.example", ""},
		"superscript digit":        {"kate\u00B2@perparims.example", ""},
		"zero-width space":         {"ka\u200Bte@perparims.example", ""},
		"zero-width joiner":        {"ka\u200Dte@perparims.example", ""},
		"byte order mark":          {"\uFEFFkate@perparims.example", ""},
		"right-to-left override":   {"kate\u202E@perparims.example", ""},
		"left-to-right mark":       {"kate\u200E@perparims.example", ""},
		"soft hyphen":              {"ka\u00ADte@perparims.example", ""},
		"space":                    {"kate davis@perparims.example", ""},
		"leading space":            {" kate@perparims.example", ""},
		"trailing newline":         {"kate@perparims.example\n", ""},
		"no-break space":           {"kate\u00A0@perparims.example", ""},
		"NUL":                      {"kate\x00@perparims.example", ""},
		"tab":                      {"kate\t@perparims.example", ""},
		"DEL":                      {"kate\x7F@perparims.example", ""},
		"invalid UTF-8":            {"kate\xff@perparims.example", ""},
		"empty":                    {"", ""},
		"at the length bound":      {strings.Repeat("a", MaxPrincipalLen), strings.Repeat("a", MaxPrincipalLen)},
		"over the length bound":    {strings.Repeat("a", MaxPrincipalLen+1), ""},
		"Cyrillic a is its own":    {"k\u0430te@perparims.example", "k\u0430te@perparims.example"},
		"title-case digraph":       {"\u01C5ana@perparims.example", ""},
		"mathematical bold letter": {"\U0001D42Ate@perparims.example", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParsePrincipal(tc.in)
			if tc.want == "" {
				if err == nil || !errors.Is(err, ErrBadPrincipal) {
					t.Fatalf("ParsePrincipal(%q) = %q, %v; want ErrBadPrincipal", tc.in, got, err)
				}
				if tc.in != "" && strings.Contains(err.Error(), tc.in) {
					t.Errorf("error %q echoes the input", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePrincipal(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			if again, err := ParsePrincipal(got); err != nil || again != got {
				t.Fatalf("the canonical form %q is not canonical: %q, %v", got, again, err)
			}
		})
	}
}

// A JWT whose email holds the Kelvin sign is refused: it is not Kate's,
// and it would become hers if it were mapped (issue 11, item 2).
func TestPrincipalKelvinSignRefused(t *testing.T) {
	k := keys(t)
	a := newAuth(t, Config{JWT: jwtConfig(writeJWKS(t, k.ec))})
	c := claims(time.Now())
	c["email"] = "\u212Aate@perparims.example"
	_, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.ec, jwa.ES256(), c))
	if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "not a valid principal") {
		t.Fatalf("Kelvin-sign email: %v, want unauthenticated (not a valid principal)", err)
	}
	c["email"] = "Kate@perparims.example"
	id, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.ec, jwa.ES256(), c))
	if err != nil || id.Principal != "kate@perparims.example" {
		t.Fatalf("Kate's own email: %+v, %v", id, err)
	}
	if _, err := ParsePrincipal("\u212Aate@perparims.example"); err == nil {
		t.Fatal("ParsePrincipal accepted the Kelvin sign")
	}
}

// Static token names are principals too: checked the same way, and never
// one name for a user and a client (issue 11, items 2 and 3).
func TestStaticTokenNames(t *testing.T) {
	tests := map[string]struct {
		tokens    []StaticToken
		wantField string
	}{
		"user and client apart":  {tokens: []StaticToken{{Name: "Sophia@X", Kind: User}, {Name: "gateway", Kind: Client}}},
		"two tokens of one user": {tokens: []StaticToken{{Name: "sophia@x", Kind: User}, {Name: "Sophia@x", Kind: User}}},
		"Kelvin sign":            {tokens: []StaticToken{{Name: "\u212Aate@x", Kind: User}}, wantField: "identity.static_tokens[0].name"},
		"zero-width space":       {tokens: []StaticToken{{Name: "gate\u200Bway", Kind: Client}}, wantField: "identity.static_tokens[0].name"},
		"user named as a client": {tokens: []StaticToken{{Name: "gateway", Kind: Client}, {Name: "gateway", Kind: User}}, wantField: "identity.static_tokens[1].name"},
		"client named as a user, in another case": {
			tokens:    []StaticToken{{Name: "sophia@x", Kind: User}, {Name: "SOPHIA@X", Kind: Client}},
			wantField: "identity.static_tokens[1].name",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Config{}
			for i, st := range tc.tokens {
				st.SHA256 = HashToken(strings.Repeat("t", i+1))
				c.StaticTokens = append(c.StaticTokens, st)
			}
			err := c.Validate()
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.wantField {
				t.Fatalf("error %v, want one of field %s", err, tc.wantField)
			}
		})
	}
	a := newAuth(t, Config{StaticTokens: []StaticToken{{Name: "Sophia@X", Kind: User, SHA256: HashToken("s")}}})
	if id, err := a.Authenticate(context.Background(), "Bearer s"); err != nil || id.Principal != "sophia@x" {
		t.Fatalf("static user: %+v, %v", id, err)
	}
}

// A JWT user cannot be a decision client by name: the IdP's "gateway" is
// refused where a client named gateway is configured (issue 11, item 3).
func TestJWTUserNamedAsClientRefused(t *testing.T) {
	k := keys(t)
	cfg := jwtConfig(writeJWKS(t, k.ec))
	cfg.PrincipalClaim = "sub"
	a := newAuth(t, Config{JWT: cfg, StaticTokens: []StaticToken{{Name: "Gateway", Kind: Client, SHA256: HashToken("g")}}})
	c := claims(time.Now())
	for sub, ok := range map[string]bool{"gateway": false, "GATEWAY": false, "gateway2": true} {
		c["sub"] = sub
		_, err := a.Authenticate(context.Background(), "Bearer "+sign(t, k.ec, jwa.ES256(), c))
		if ok != (err == nil) {
			t.Errorf("sub %q: %v", sub, err)
		}
		if !ok && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("sub %q: %v, want ErrUnauthenticated", sub, err)
		}
	}
}

// FuzzParsePrincipal: no input panics; what is accepted is canonical (a
// second parse gives it back), within the bound, free of white space and
// control characters, and stable under PRECIS (nothing accepted would be
// mapped onto something else).
func FuzzParsePrincipal(f *testing.F) {
	for _, s := range []string{
		"sophia.davis@perparims.example", "Sophia.Davis@PerParims.example", "gateway", "\u212Aate@x",
		"\uFF4Bate@x", "ka\u200Bte@x", "kate\u202E@x", "zoe\u0308@x", "zoë@x", "ΣΟΦΙΑ@x", "a b", " a", "a\n",
		"{sophia@x}", "sophia%40x", strings.Repeat("a", MaxPrincipalLen+1), "\xff", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePrincipal(s)
		if err != nil {
			if !errors.Is(err, ErrBadPrincipal) {
				t.Fatalf("error %v does not wrap ErrBadPrincipal", err)
			}
			return
		}
		if got == "" || len(s) > MaxPrincipalLen {
			t.Fatalf("accepted %q as %q", s, got)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return r <= ' ' || r == 0x7f || r == 0xfffd }) {
			t.Fatalf("accepted %q holds a space or control character", got)
		}
		if again, err := ParsePrincipal(got); err != nil || again != got {
			t.Fatalf("%q gave %q, which parses as %q, %v", s, got, again, err)
		}
	})
}
