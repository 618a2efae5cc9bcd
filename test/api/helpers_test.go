// Package api_test checks Elevate's HTTP API from the outside: a whole
// server started through `elevate serve` on a real Redis, driven over HTTP
// with the demo tenant's tokens, and nothing else.
package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

const (
	nyOffice = "/administrativeUnits/new-york-office"
	// why is a justification every demo role accepts (10 characters or more).
	why = "Onboarding three new hires"
	// noSuchActivation has the shape of an activation id and names none.
	noSuchActivation = "act_000000000000000000000000"
)

// testRoleJSON adds test-role: no MFA, justification or approval, so tests
// may activate it as often as they like (a TOTP code is good once). It is
// loaded as its own data file and merges beside the demo roles.
const testRoleJSON = `{"pim": {"roles": {"test-role": {
  "name": "Test Role",
  "permissions": ["test.*"],
  "settings": {"min_duration": "5m", "default_duration": "1h", "max_duration": "8h",
               "require_mfa": false, "mfa_max_age": "10m",
               "require_justification": false, "justification_min_length": 0, "justification_pattern": "",
               "require_ticket": false, "ticket_pattern": "",
               "require_approval": false, "approvers": [], "approvals_required": 1,
               "allow_permanent_eligibility": true, "max_eligibility": "8760h",
               "pending_timeout": "24h"}}}}}`

// client bounds every request: a hung server fails the test instead of
// hanging it. Nothing here is expected to take more than milliseconds.
var client = &http.Client{Timeout: 30 * time.Second}

// env is one Elevate server (demo tenant, built-in policies, test-role) on a
// Redis the test owns. It records every answer, so that when the test ends
// it can check no answer and no log line gave away a token or TOTP secret.
type env struct {
	*elevatetest.Server

	mu      sync.Mutex
	answers []answer
	extra   map[string]string // more secrets to look for: value -> what it is
}

type answer struct {
	request string
	raw     string
	// secret is the TOTP secret an enrolment answer hands out: the one
	// place a secret may appear.
	secret string
}

type envOptions struct {
	// Args are more serve arguments (flags).
	Args []string
	// Users are more principals, each given a static token.
	Users []string
	// Identity is more YAML of the identity section, indented by two
	// spaces (e.g. "  jwt: {...}\n").
	Identity string
}

// startEnv empties r and starts a server on it (demo mode seeds the tenant
// and enrols fresh TOTP secrets at start). The server stops when t ends.
func startEnv(t *testing.T, r *harness.RedisServer, o envOptions) *env {
	t.Helper()
	if err := r.Client(t).FlushAll(context.Background()).Err(); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}
	root := harness.RepoRoot(t)
	roleFile := filepath.Join(t.TempDir(), "test-role.json")
	if err := os.WriteFile(roleFile, []byte(testRoleJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	// Under -race, on two cores, with 50 requests at once, evaluations can
	// queue longer than the default second, and a timed-out one is a 503.
	// No test here is about that bound.
	args := append([]string{"--watch=false", "--eval-timeout", "10s",
		filepath.Join(root, "policies"), filepath.Join(root, "bundles", "demo"), roleFile}, o.Args...)

	extra := map[string]string{}
	var config strings.Builder
	if len(o.Users) > 0 || o.Identity != "" {
		config.WriteString("identity:\n")
		config.WriteString(o.Identity)
	}
	if len(o.Users) > 0 {
		config.WriteString("  static_tokens:\n")
		for _, name := range o.Users {
			token, err := identity.NewToken()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&config, "  - {name: %q, kind: user, sha256: %q}\n", name, identity.HashToken(token))
			extra[token] = name + "'s token"
		}
	}
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: r.URL, Config: config.String(), Args: args})
	e := &env{Server: s, extra: extra}
	t.Cleanup(func() { e.checkNoSecrets(t) })
	return e
}

// userToken is the token of a principal given in envOptions.Users.
func (e *env) userToken(t testing.TB, name string) string {
	t.Helper()
	for token, what := range e.extra {
		if what == name+"'s token" {
			return token
		}
	}
	t.Fatalf("no user %q in this env", name)
	return ""
}

// secret is a demo principal's TOTP secret as enrolled at start.
func (e *env) secret(t testing.TB, who string) string {
	t.Helper()
	for _, p := range e.Creds.Principals {
		if strings.HasPrefix(p.Principal, who) {
			return p.TOTPSecret
		}
	}
	t.Fatalf("no demo principal %q", who)
	return ""
}

// send makes one request with the Authorization header auth ("" for none)
// and body (nil for none, a string as is, anything else as JSON). It does
// not touch a testing.T, so goroutines may call it.
func (e *env) send(method, path, auth string, body any) (elevatetest.Response, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return elevatetest.Response{}, err
		}
		r = strings.NewReader(string(raw))
	}
	req, err := http.NewRequest(method, e.URL+path, r)
	if err != nil {
		return elevatetest.Response{}, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return elevatetest.Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return elevatetest.Response{}, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	out := elevatetest.Response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	a := answer{request: method + " " + path, raw: out.Raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			return out, fmt.Errorf("%s %s: answer is not a JSON object: %s", method, path, raw)
		}
	}
	if path == "/v1/mfa/totp/enroll" && out.Status == http.StatusCreated {
		a.secret, _ = out.Body["secret"].(string)
	}
	e.mu.Lock()
	e.answers = append(e.answers, a)
	e.mu.Unlock()
	return out, nil
}

// callAuth is send for the test's goroutine.
func (e *env) callAuth(t testing.TB, method, path, auth string, body any) elevatetest.Response {
	t.Helper()
	r, err := e.send(method, path, auth, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// call sends as a demo principal or client ("sophia", "gateway"); "" sends
// no Authorization header.
func (e *env) call(t testing.TB, method, path, who string, body any) elevatetest.Response {
	t.Helper()
	return e.callAuth(t, method, path, e.bearer(t, who), body)
}

func (e *env) bearer(t testing.TB, who string) string {
	t.Helper()
	if who == "" {
		return ""
	}
	return "Bearer " + e.Token(t, who)
}

// checkNoSecrets fails t when an answer other than an enrolment's own, or
// the server log, holds a token or a TOTP secret.
func (e *env) checkNoSecrets(t testing.TB) {
	t.Helper()
	secrets := map[string]string{}
	for _, p := range e.Creds.Principals {
		secrets[p.Token] = p.Principal + "'s token"
		secrets[p.TOTPSecret] = p.Principal + "'s TOTP secret"
	}
	for _, c := range e.Creds.Clients {
		secrets[c.Token] = c.Name + "'s token"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.extra {
		secrets[k] = v
	}
	for _, a := range e.answers {
		if a.secret != "" {
			secrets[a.secret] = "a newly enrolled TOTP secret"
		}
	}
	for _, a := range e.answers {
		for s, what := range secrets {
			if s != a.secret && strings.Contains(a.raw, s) {
				t.Errorf("%s answered with %s: %s", a.request, what, a.raw)
			}
		}
	}
	log := e.Log()
	for s, what := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the server log holds %s", what)
		}
	}
}

// wantError checks an error answer: its status, its code, a message, and
// errors as a JSON array of strings, which it returns.
func wantError(t testing.TB, r elevatetest.Response, status int, code string) []string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.Raw), &body); err != nil {
		t.Fatalf("error answer is not JSON: %s", r.Raw)
	}
	if body.Code != code {
		t.Fatalf("code %q, want %q: %s", body.Code, code, r.Raw)
	}
	if strings.TrimSpace(body.Message) == "" {
		t.Errorf("no message: %s", r.Raw)
	}
	var errs []string
	if len(body.Errors) == 0 || body.Errors[0] != '[' || json.Unmarshal(body.Errors, &errs) != nil {
		t.Fatalf("errors is not a JSON array of strings: %s", r.Raw)
	}
	return errs
}

// wantViolation fails t unless one of errs contains want.
func wantViolation(t testing.TB, errs []string, want string) {
	t.Helper()
	for _, e := range errs {
		if strings.Contains(e, want) {
			return
		}
	}
	t.Errorf("no violation mentions %q: %q", want, errs)
}

// q builds a query string from name, value pairs.
func q(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	return "?" + v.Encode()
}

func list(t testing.TB, body map[string]any, key string) []map[string]any {
	t.Helper()
	raw, ok := body[key].([]any)
	if !ok {
		t.Fatalf("%s is not a list: %v", key, body)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i] = v.(map[string]any)
	}
	return out
}

// events reads the audit trail as the admin (Perparim), filtered by query.
func (e *env) events(t testing.TB, query string) []map[string]any {
	t.Helper()
	return list(t, e.call(t, "GET", "/v1/audit"+query, "perparim", nil).Want(t, 200), "events")
}

// count is how many events of type typ concern the activation id ("" for
// any).
func count(events []map[string]any, typ, id string) int {
	n := 0
	for _, ev := range events {
		if ev["type"] == typ && (id == "" || ev["activation_id"] == id) {
			n++
		}
	}
	return n
}

// successes are the audit events of a change that happened.
var successes = []string{
	"assignment.created", "assignment.removed", "activation.approved", "activation.denied",
	"activation.cancelled", "activation.activated", "activation.deactivated", "activation.extended",
	"activation.revoked", "mfa.totp_enrolled", "mfa.totp_invited", "mfa.totp_reset",
}

// state is everything a refused request must leave as it was: every
// assignment, every activation (with its status and version), and how many
// events of each success type the audit trail holds.
type state struct {
	Assignments []string
	Activations []string
	Successes   map[string]int
}

func (e *env) state(t testing.TB) state {
	t.Helper()
	var s state
	for _, a := range list(t, e.call(t, "GET", "/v1/assignments", "perparim", nil).Want(t, 200), "assignments") {
		s.Assignments = append(s.Assignments, fmt.Sprintf("%v %v %v %v %v %v", a["id"], a["principal"], a["role"], a["scope"], a["type"], a["end"]))
	}
	for _, a := range list(t, e.call(t, "GET", "/v1/activations", "perparim", nil).Want(t, 200), "activations") {
		s.Activations = append(s.Activations, fmt.Sprintf("%v %v %v %v v%v approvals=%d expires=%v",
			a["id"], a["principal"], a["role"], a["status"], a["version"], len(a["approvals"].([]any)), a["expires_at"]))
	}
	sort.Strings(s.Assignments)
	sort.Strings(s.Activations)
	events := e.events(t, "")
	s.Successes = map[string]int{}
	for _, typ := range successes {
		s.Successes[typ] = count(events, typ, "")
	}
	return s
}

// unchanged fails t when the state is not before.
func (e *env) unchanged(t testing.TB, before state) {
	t.Helper()
	if after := e.state(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a refused request changed the state:\nbefore %+v\nafter  %+v", before, after)
	}
}

// requestUserAdmin has who (Sophia or Alex) ask for User Administrator with
// the TOTP code of offset; it waits for approval.
func (e *env) requestUserAdmin(t testing.TB, who string, offset int) string {
	t.Helper()
	act := e.call(t, "POST", "/v1/activations", who, map[string]any{
		"role": "user-administrator", "justification": why,
		"mfa": map[string]any{"totp": e.TOTP(t, who, offset)},
	}).Want(t, 202)
	if act["status"] != "pending_approval" {
		t.Fatalf("request %v", act)
	}
	return act["id"].(string)
}

// activateApp has Perparim activate Application Administrator (MFA and a
// justification, no approval) with the TOTP code of offset.
func (e *env) activateApp(t testing.TB, offset int, duration string) map[string]any {
	t.Helper()
	act := e.call(t, "POST", "/v1/activations", "perparim", map[string]any{
		"role": "application-administrator", "justification": why, "duration": duration,
		"mfa": map[string]any{"totp": e.TOTP(t, "perparim", offset)},
	}).Want(t, 201)
	if act["status"] != "active" {
		t.Fatalf("activation %v", act)
	}
	return act
}

// assign has Perparim (the admin) create an assignment for principal.
func (e *env) assign(t testing.TB, principal, role, scope, typ string) string {
	t.Helper()
	a := e.call(t, "POST", "/v1/assignments", "perparim", map[string]any{
		"principal": principal, "role": role, "scope": scope, "type": typ, "justification": why,
	}).Want(t, 201)
	return a["id"].(string)
}

// activateTestRole has who activate test-role at "/".
func (e *env) activateTestRole(t testing.TB, who string) string {
	t.Helper()
	act := e.call(t, "POST", "/v1/activations", who, map[string]any{"role": "test-role"}).Want(t, 201)
	return act["id"].(string)
}

// allowed asks, as the gateway, whether subject may take action at scope.
func (e *env) allowed(t testing.TB, subject, action, scope string) bool {
	t.Helper()
	d := e.call(t, "POST", "/v1/authorize", "gateway", map[string]any{"subject": subject, "action": action, "scope": scope}).Want(t, 200)
	return d["allow"] == true
}

// myRoles lists "role@scope" of the caller's eligible, active and pending
// roles.
func (e *env) myRoles(t testing.TB, auth string) (eligible, active, pending []string) {
	t.Helper()
	mine := e.callAuth(t, "GET", "/v1/me/roles", auth, nil).Want(t, 200)
	names := func(key string) []string {
		out := []string{}
		for _, r := range list(t, mine, key) {
			out = append(out, fmt.Sprintf("%v@%v", r["role"], r["scope"]))
		}
		sort.Strings(out)
		return out
	}
	return names("eligible"), names("active"), names("pending")
}

func parseTime(t testing.TB, v any) time.Time {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v is not a time", v)
	}
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}
