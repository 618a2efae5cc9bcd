package workflow

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/sirupsen/logrus"
	"golang.org/x/text/unicode/norm"

	"github.com/elevatepdp/elevate/internal/policy"
)

// principalSeeds are valid principals, then near-misses of them: case,
// space, controls and length bounds.
var principalSeeds = []string{
	"sophia.davis@perparims.example",
	"Sophia.Davis@PerParims.example",
	"  kate@perparims.example\t",
	"kate",
	"user:kate@x",
	"",
	" ",
	"ka te@x",
	"kate@x\n",
	"kate\x00@x",
	"kate@x\x7f",
	"kate\u2028@x",
	strings.Repeat("a", 256),
	strings.Repeat("a", 257),
	// Look-alikes and invisible characters, accepted (or merged) until
	// issue 11 item 2 is resolved.
	"\xffkate@x",
	"\u212Aate@perparims.example",
	"\u0130nes@x",
	"ｋａｔｅ@perparims.example",
	"ka\u200bte@perparims.example",
	"\u202ekate@perparims.example",
	"kate\u2066@x",
	"kate\ufeff@x",
	"k\u0301ate@x",
}

// FuzzPrincipal checks what the principal parser accepts. An accepted name
// is a fixed point of the parser, bounded, valid UTF-8 with no control,
// format (zero-width, bidi), private-use or space characters, and no
// compatibility character (which the PRECIS profile would map); a name
// that comes out ASCII went in ASCII, lowercased, so no look-alike is
// merged into an existing principal. The body stays small: parse is the
// one line to re-point when principal validation moves.
func FuzzPrincipal(f *testing.F) {
	parse := Principal
	for _, s := range principalSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := parse(in)
		if err != nil {
			var bad *InvalidError
			if !errors.As(err, &bad) {
				t.Fatalf("%q refused with %v, not an InvalidError (a 422)", in, err)
			}
			return
		}
		checkPrincipal(t, parse, in, p)
	})
}

func checkPrincipal(t *testing.T, parse func(string) (string, error), in, p string) {
	t.Helper()
	if again, err := parse(p); err != nil || again != p {
		t.Fatalf("%+q gave %+q, which parses as %+q, %v: not a fixed point", in, p, again, err)
	}
	if p == "" || len(p) > 320 {
		t.Fatalf("%+q gave %+q: empty or longer than 320 bytes", in, p)
	}
	if !utf8.ValidString(in) {
		t.Fatalf("invalid UTF-8 %+q accepted as %+q", in, p)
	}
	for _, r := range p {
		if r == utf8.RuneError || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Z) {
			t.Fatalf("%+q gave %+q, which holds %U", in, p, r)
		}
	}
	trimmed := strings.TrimSpace(in)
	if !norm.NFKC.IsNormalString(trimmed) {
		t.Fatalf("%+q accepted as %+q: the PRECIS profile would change it (NFKC %+q)", in, p, norm.NFKC.String(trimmed))
	}
	if isASCII(p) && (!isASCII(trimmed) || p != strings.ToLower(trimmed)) {
		t.Fatalf("%+q merged into the ASCII principal %+q", in, p)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// scopeSeeds are valid scopes, then near-misses: empty, dot and dot-dot
// segments, trailing and doubled slashes, encoded separators, spaces and
// controls, non-ASCII.
var scopeSeeds = []string{
	"/",
	"",
	"/administrativeUnits/new-york-office",
	"/a/b.c/d@e:f-g_h",
	"/a/",
	"//a",
	"/a//b",
	"/.",
	"/a/..",
	"/a/.b",
	"a/b",
	"/a%2Fb",
	"/a b",
	"/a\n",
	"/a\x00",
	"/ä",
	"/\u212A",
	"/a\\b",
}

// FuzzScope checks the scope parser against the policy's own definition,
// data.pim.lib.scope_valid: what Go accepts the policy accepts, and the
// other way round, so an assignment is never stored at a scope the
// policies read as invalid (or refused at one they would grant). An
// accepted scope matches the documented pattern and is a fixed point; ""
// is "/".
func FuzzScope(f *testing.F) {
	engine := scopeEngine(f)
	valid := policy.MustQuery("data.fuzz.scope_valid")
	documented := regexp.MustCompile(`^(/|(/[A-Za-z0-9][A-Za-z0-9._@:-]*)+)$`)
	for _, s := range scopeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := scope(in)
		if in == "" {
			if err != nil || got != "/" {
				t.Fatalf(`"" gave %+q, %v; want "/"`, got, err)
			}
			return
		}
		v, eerr := engine.Eval(ctx, valid, ast.NewObject(ast.Item(ast.StringTerm("scope"), ast.StringTerm(in))))
		if eerr != nil {
			t.Fatalf("policy on %+q: %v", in, eerr)
		}
		if policyOK := v == true; policyOK != (err == nil) {
			t.Fatalf("scope %+q: Go accepts %v (%v), data.pim.lib.scope_valid says %v", in, err == nil, err, policyOK)
		}
		if err != nil {
			var bad *InvalidError
			if !errors.As(err, &bad) {
				t.Fatalf("%+q refused with %v, not an InvalidError (a 422)", in, err)
			}
			return
		}
		if got != in || !documented.MatchString(got) {
			t.Fatalf("%+q accepted as %+q", in, got)
		}
		if again, err := scope(got); err != nil || again != got {
			t.Fatalf("%+q gave %+q, which parses as %+q, %v", in, got, again, err)
		}
	})
}

// scopeEngine is the shipped policies with one rule exposing
// pim.lib.scope_valid to a query.
func scopeEngine(t testing.TB) *policy.Engine {
	t.Helper()
	dir := t.TempDir()
	mod := "package fuzz\n\nscope_valid := data.pim.lib.scope_valid(input.scope)\n"
	if err := os.WriteFile(filepath.Join(dir, "fuzz.rego"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	engine, err := policy.New(ctx, policy.Options{Source: policy.Source{Paths: []string{"../../policies", dir}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return engine
}
