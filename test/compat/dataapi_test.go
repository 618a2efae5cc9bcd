package compat

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elevatepdp/elevate/test/elevatetest"
)

// A policy written for plain OPA, exercising the kinds of values the Data
// API returns.
const plainPolicy = `package shop

import rego.v1

default allow := false

allow if {
	input.user.role == "admin"
}

allow if {
	input.method == "GET"
	input.user.role == "viewer"
}

reasons contains "not an admin" if input.user.role != "admin"

reasons contains "writes need an admin" if {
	input.method != "GET"
	input.user.role != "admin"
}

summary := {"allow": allow, "reasons": reasons, "count": count(reasons)}

discount := 0.15 if input.user.tier == "gold"

big := 12345678901234567890

ratio := 1.5e3

html := "<b>&amp; é ✓</b>"

items[name] := price if some name, price in data.shop.catalog

cheap contains name if {
	some name, price in data.shop.catalog
	price < 10
}

# Fields of the input the policy reads: what Elevate adds (elevations,
# now) is ignored by a policy written for plain OPA.
echo := {"n": input.n, "m": input.m, "s": input.s}

first := input[0]

nothing if false

nested.deep.value := [1, "two", {"three": 3.0}, null, true]
`

const plainData = `{"catalog": {"pen": 2, "book": 12.5, "mug": 8}}`

type dataCase struct {
	method, path, body string
}

func dataCases() map[string]dataCase {
	admin := `{"input": {"user": {"role": "admin"}, "method": "POST"}}`
	viewer := `{"input": {"user": {"role": "viewer", "tier": "gold"}, "method": "GET"}}`
	return map[string]dataCase{
		"default false":           {"POST", "shop/allow", `{"input": {"user": {"role": "guest"}}}`},
		"allow admin":             {"POST", "shop/allow", admin},
		"allow viewer get":        {"POST", "shop/allow", viewer},
		"set":                     {"POST", "shop/reasons", `{"input": {"user": {"role": "guest"}, "method": "PUT"}}`},
		"empty set":               {"POST", "shop/reasons", admin},
		"object":                  {"POST", "shop/summary", viewer},
		"float":                   {"POST", "shop/discount", viewer},
		"undefined by input":      {"POST", "shop/discount", admin},
		"undefined rule":          {"POST", "shop/nothing", admin},
		"unknown document":        {"POST", "shop/no/such/thing", admin},
		"big integer":             {"GET", "shop/big", ""},
		"exponent":                {"GET", "shop/ratio", ""},
		"html and unicode":        {"GET", "shop/html", ""},
		"partial object":          {"GET", "shop/items", ""},
		"partial set from data":   {"GET", "shop/cheap", ""},
		"base document":           {"GET", "shop/catalog", ""},
		"base document leaf":      {"GET", "shop/catalog/book", ""},
		"nested rule":             {"GET", "shop/nested", ""},
		"echo keeps numbers":      {"POST", "shop/echo", `{"input": {"n": 1.10, "m": 100000000000000000000, "s": "x"}}`},
		"echo non-object input":   {"POST", "shop/echo", `{"input": [1, 2, 3]}`},
		"no input":                {"POST", "shop/echo", `{}`},
		"empty body":              {"POST", "shop/allow", ""},
		"get allow without input": {"GET", "shop/allow", ""},
		"whole package":           {"POST", "shop", viewer},
	}
}

// results fetches the raw "result" of a Data API answer ("" when absent).
func result(t *testing.T, base string, c dataCase) (int, string) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base+"/v1/data/"+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]json.RawMessage
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %s", c.method, c.path, raw)
	}
	return resp.StatusCode, string(out["result"])
}

// The same policy and input through Elevate and through upstream OPA give
// byte-equal results, undefined included.
func TestDataAPIMatchesOPA(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.rego"), []byte(plainPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	// Under shop/, the file's {"catalog": ...} is data.shop.catalog.
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop", "data.json"), []byte(plainData), 0o644); err != nil {
		t.Fatal(err)
	}

	opaURL := serveOPA(t, "/health", dir)
	// Opened explicitly: OPA's Data API takes no client token here.
	elevate := elevatetest.Start(t, elevatetest.Options{Args: []string{dir}, Config: "decisions:\n  require_token: false\n"})

	cases := dataCases()
	if len(cases) < 20 {
		t.Fatalf("only %d cases", len(cases))
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			opaStatus, want := result(t, opaURL, c)
			status, got := result(t, elevate.URL, c)
			if status != opaStatus || got != want {
				t.Fatalf("elevate %d %s\n   opa %d %s", status, got, opaStatus, want)
			}
		})
	}
}
