package compat

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/elevatepdp/elevate/test/elevatetest"
)

// A policy for OPA's Data API parameters: a note for explain, a built-in
// error for strict-builtin-errors, a labelled rule for rule_labels.
const paramsPolicy = `package params

# METADATA
# labels:
#   id: allow-admin
allow if {
	trace("checking the role")
	input.user.role == "admin"
}

bad := x if x := to_number("abc")

size := count(input.items)
`

// startOPAAndElevate serves one policy directory from upstream `opa run
// --server` and from Elevate (Data API open, as OPA's is), and returns
// both base URLs.
func startOPAAndElevate(t *testing.T, files map[string]string) (opaURL, elevateURL string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opaURL = serveOPA(t, "/health", dir)
	elevate := elevatetest.Start(t, elevatetest.Options{Args: []string{dir}, Config: "decisions:\n  require_token: false\n"})
	return opaURL, elevate.URL
}

// answer is one Data API answer: status, Content-Type and body.
type answer struct {
	status int
	ctype  string
	body   []byte
}

func ask(t *testing.T, method, url, body string) answer {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Content-Type"), raw}
}

// How two answers may differ, per parameter.
type compare int

const (
	// bytes: byte-equal once Elevate's decision_id (OPA has none without
	// decision logging) is taken out; pretty-printing included.
	sameBytes compare = iota
	// metricKeys: equal but for metrics, whose values are timings: the
	// same metric names in both, but timer_rego_query_compile_ns, which
	// is there only when the query was prepared for this request: each
	// server keeps its own prepared queries (OPA one per handler and
	// path, Elevate one per path, the built-in entrypoints prepared at
	// load), so which request pays for it differs. So do the compile
	// stage timers OPA adds when it prepares a query for an instrumented
	// request: to record them OPA points its shared compiler at the
	// request's metrics, which Elevate, preparing on a compiler shared by
	// concurrent evaluations, does not.
	metricKeys
	// provenanceBuild: equal but for provenance's build_* fields, which
	// name the binary that runs (Elevate's, not opa's): present in both.
	provenanceBuild
	// errorBody: status and error body equal, but errors[].location.file
	// and stack_trace's, which name the policy file as each loader does.
	errorBody
	// refusal: Elevate's own error body for a request it refuses ({code,
	// message, errors}, compact, as on its whole HTTP surface): the same
	// status, code and message as OPA's, and no errors listed.
	refusal
)

// TestDataAPIParametersMatchOPA asks Elevate and upstream OPA the same
// Data API requests with OPA's query parameters (pretty, metrics,
// instrument, provenance, explain, strict-builtin-errors, rule_labels,
// input on GET, and parameters OPA does not know) and compares the answers.
func TestDataAPIParametersMatchOPA(t *testing.T) {
	opaURL, elevateURL := startOPAAndElevate(t, map[string]string{"params.rego": paramsPolicy})
	admin := `{"input": {"user": {"role": "admin"}, "items": [1, 2]}}`
	guest := `{"input": {"user": {"role": "guest"}}}`
	cases := map[string]struct {
		method, path, body string
		how                compare
	}{
		"pretty":                       {"POST", "params/allow?pretty", admin, sameBytes},
		"pretty=true":                  {"POST", "params/allow?pretty=TRUE", admin, sameBytes},
		"pretty=false":                 {"POST", "params/allow?pretty=false", admin, sameBytes},
		"pretty=1 is not true":         {"POST", "params/allow?pretty=1", admin, sameBytes},
		"pretty undefined":             {"POST", "params/nothing?pretty", admin, sameBytes},
		"pretty missing input":         {"POST", "params/size?pretty", `{}`, sameBytes},
		"metrics":                      {"POST", "params/allow?metrics", admin, metricKeys},
		"metrics get":                  {"GET", "params/bad?metrics", "", metricKeys},
		"metrics undefined":            {"POST", "params/nothing?metrics", admin, metricKeys},
		"instrument":                   {"POST", "params/allow?instrument", admin, metricKeys},
		"instrument and metrics":       {"POST", "params/size?instrument&metrics&pretty", admin, metricKeys},
		"provenance":                   {"POST", "params/allow?provenance", admin, provenanceBuild},
		"provenance get":               {"GET", "params/allow?provenance", "", provenanceBuild},
		"explain notes":                {"POST", "params/allow?explain=notes", admin, sameBytes},
		"explain notes pretty":         {"POST", "params/allow?explain=notes&pretty", admin, sameBytes},
		"explain fails":                {"POST", "params/size?explain=fails", admin, sameBytes},
		"explain full":                 {"POST", "params/allow?explain=full", admin, sameBytes},
		"explain full undefined":       {"POST", "params/allow?explain=full", guest, sameBytes},
		"explain notes undefined":      {"POST", "params/allow?explain=notes", guest, sameBytes},
		"explain debug":                {"POST", "params/allow?explain=debug&pretty", admin, sameBytes},
		"explain unknown mode":         {"POST", "params/allow?explain=everything", admin, sameBytes},
		"explain first known mode":     {"POST", "params/allow?explain=x&explain=notes&explain=full", admin, sameBytes},
		"strict builtin error":         {"POST", "params/bad?strict-builtin-errors", admin, errorBody},
		"strict builtin error get":     {"GET", "params/bad?strict-builtin-errors=true", "", errorBody},
		"builtin error not strict":     {"POST", "params/bad", admin, sameBytes},
		"strict without error":         {"POST", "params/allow?strict-builtin-errors", admin, sameBytes},
		"rule labels":                  {"POST", "params/allow?rule_labels", admin, sameBytes},
		"rule labels false":            {"POST", "params/allow?rule_labels=false", admin, sameBytes},
		"get input":                    {"GET", `params/size?input={"items":[1,2,3]}`, "", sameBytes},
		"get last input":               {"GET", `params/size?input={"items":[1]}&input={"items":[1,2]}`, "", sameBytes},
		"get malformed input":          {"GET", `params/size?input={`, "", refusal},
		"unknown parameter is ignored": {"POST", "params/allow?verbose=1&foo", admin, sameBytes},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := strings.ReplaceAll(strings.ReplaceAll(c.path, "{", "%7B"), "}", "%7D")
			path = strings.ReplaceAll(path, `"`, "%22")
			want := ask(t, c.method, opaURL+"/v1/data/"+path, c.body)
			got := ask(t, c.method, elevateURL+"/v1/data/"+path, c.body)
			if got.status != want.status || (c.how != refusal && got.ctype != want.ctype) {
				t.Fatalf("elevate %d %s %s\n   opa %d %s %s", got.status, got.ctype, got.body, want.status, want.ctype, want.body)
			}
			if !sameAnswer(t, c.how, got.body, want.body) {
				t.Fatalf("elevate %s\n   opa %s", got.body, want.body)
			}
		})
	}
}

// sameAnswer compares Elevate's body with OPA's as how says.
func sameAnswer(t *testing.T, how compare, got, want []byte) bool {
	t.Helper()
	got = withoutDecisionID(t, got)
	if how == sameBytes {
		return bytes.Equal(got, want)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("elevate: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("opa: %v: %s", err, want)
	}
	switch how {
	case metricKeys:
		gm, _ := g["metrics"].(map[string]any)
		wm, _ := w["metrics"].(map[string]any)
		if _, compiled := gm["timer_rego_query_compile_ns"]; compiled && gm["counter_server_query_cache_hit"] != 0.0 {
			t.Errorf("elevate prepared the query and counted a cache hit: %v", gm)
		}
		for _, m := range []map[string]any{gm, wm} {
			for k := range m {
				if k == "timer_rego_query_compile_ns" || strings.HasPrefix(k, "timer_query_compile_stage_") || strings.HasPrefix(k, "timer_compile_stage_") {
					delete(m, k)
				}
			}
		}
		if gm == nil || !reflect.DeepEqual(keys(gm), keys(wm)) {
			t.Errorf("metrics %v, opa's %v", keys(gm), keys(wm))
			return false
		}
		delete(g, "metrics")
		delete(w, "metrics")
	case provenanceBuild:
		gp, _ := g["provenance"].(map[string]any)
		wp, _ := w["provenance"].(map[string]any)
		if gp == nil {
			return false
		}
		for _, k := range []string{"build_commit", "build_timestamp", "build_hostname"} {
			if _, ok := gp[k]; !ok {
				t.Errorf("provenance has no %s", k)
				return false
			}
			delete(gp, k)
			delete(wp, k)
		}
	case refusal:
		if errs, ok := g["errors"].([]any); !ok || len(errs) != 0 {
			return false
		}
		delete(g, "errors")
	case errorBody:
		for _, doc := range []map[string]any{g, w} {
			errs, _ := doc["errors"].([]any)
			for _, e := range errs {
				e := e.(map[string]any)
				dropFile(e["location"])
				frames, _ := e["stack_trace"].([]any)
				for _, f := range frames {
					dropFile(f.(map[string]any)["location"])
				}
			}
		}
	}
	return reflect.DeepEqual(g, w)
}

// withoutDecisionID takes out Elevate's decision_id, keeping the rest
// byte for byte (it is the first field, as in OPA's response type).
func withoutDecisionID(t *testing.T, body []byte) []byte {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	id, ok := doc["decision_id"]
	if !ok {
		return body
	}
	if len(doc) == 1 {
		return []byte("{}\n")
	}
	for _, form := range []string{`"decision_id":` + string(id) + `,`, `"decision_id": ` + string(id) + ",\n  "} {
		if i := bytes.Index(body, []byte(form)); i >= 0 {
			return append(append([]byte{}, body[:i]...), body[i+len(form):]...)
		}
	}
	t.Fatalf("decision_id not where OPA's response type puts it: %s", body)
	return nil
}

func dropFile(loc any) {
	if m, ok := loc.(map[string]any); ok {
		if _, has := m["file"]; !has {
			return
		}
		m["file"] = "?"
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// With bundles, provenance names each activated bundle's revision, as OPA
// does for the same bundle from the same service.
func TestDataAPIProvenanceWithBundlesMatchesOPA(t *testing.T) {
	var tarball bytes.Buffer
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: "rev-42", Roots: &[]string{"params"}},
		Modules:  []bundle.ModuleFile{{URL: "/params.rego", Path: "/params.rego", Raw: []byte(paramsPolicy)}},
		Data:     map[string]any{},
	}
	if err := bundle.Write(&tarball, b); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(tarball.Bytes())
	}))
	t.Cleanup(srv.Close)
	config := "services:\n  control: {url: " + srv.URL + "}\nbundles:\n  authz: {service: control, resource: /b.tar.gz}\n"

	cfgFile := filepath.Join(t.TempDir(), "opa.yaml")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	opaURL := serveOPA(t, "/health?bundles", "--config-file", cfgFile)
	elevate := elevatetest.Start(t, elevatetest.Options{Config: config + "decisions:\n  require_token: false\n"})

	admin := `{"input": {"user": {"role": "admin"}}}`
	for _, path := range []string{"params/allow?provenance", "params/nothing?provenance&pretty"} {
		want := ask(t, "POST", opaURL+"/v1/data/"+path, admin)
		got := ask(t, "POST", elevate.URL+"/v1/data/"+path, admin)
		if got.status != want.status || !bytes.Contains(want.body, []byte(`"rev-42"`)) || !sameAnswer(t, provenanceBuild, got.body, want.body) {
			t.Fatalf("%s: elevate %d %s\n   opa %d %s", path, got.status, got.body, want.status, want.body)
		}
	}
}
