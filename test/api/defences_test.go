package api_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// These are the second tests, from outside through the HTTP API on a real
// Redis, of defences that each had one test inside a package: distinct
// approvers (workflow TestApprovalsRequiredAreDistinct), key escaping (store
// testEscaping and TestEscapeIsInjectiveAndKeySafe, here for scopes and
// ids; TestPrincipalKeyCollision covers principals), the holdings cache's
// invalidation (store TestCacheInvalidatedByOtherReplica), the undo of a
// change whose audit event was lost (workflow TestAuditLossUndoesTheChange)
// and the Data API's replacement of input.elevations (e2e
// TestDataAPIReadsElevationsFromTheStore, here with elevations of the
// subject's own to merge with).

// twoApproversJSON adds two-approvers: approved by two of Perparim, Emma and
// Sophia.
const twoApproversJSON = `{"pim": {"roles": {"two-approvers": {
  "name": "Two Approvers",
  "permissions": ["two.*"],
  "settings": {"min_duration": "5m", "default_duration": "1h", "max_duration": "8h",
               "require_mfa": false, "require_justification": false,
               "require_approval": true, "approvals_required": 2, "pending_timeout": "24h",
               "approvers": ["user:perparim.abdullahu@perparims.example", "user:emma.smith@perparims.example",
                             "user:sophia.davis@perparims.example"],
               "allow_permanent_eligibility": true, "max_eligibility": "8760h"}}}}}`

// One approver approving twice counts once.
func TestDistinctApproversThroughTheAPI(t *testing.T) {
	t.Parallel()
	roleFile := filepath.Join(t.TempDir(), "two-approvers.json")
	if err := os.WriteFile(roleFile, []byte(twoApproversJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, harness.Redis(t), envOptions{Args: []string{roleFile}})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "two-approvers", "/", "eligible")
	act := e.call(t, "POST", "/v1/activations", "alex", map[string]any{"role": "two-approvers"}).Want(t, 202)
	id := act["id"].(string)
	if act["status"] != "pending_approval" || act["approvals_required"] != float64(2) {
		t.Fatalf("request %v", act)
	}

	first := e.call(t, "POST", "/v1/activations/"+id+"/approve", "perparim", map[string]any{"justification": "first"}).Want(t, 200)
	if first["status"] != "pending_approval" || len(list(t, first, "approvals")) != 1 {
		t.Fatalf("after the first approval %v", first)
	}
	again := e.call(t, "POST", "/v1/activations/"+id+"/approve", "perparim", map[string]any{"justification": "again"})
	wantViolation(t, wantError(t, again, 403, "policy_denied"), "has already approved this request")
	got := e.call(t, "GET", "/v1/activations/"+id, "alex", nil).Want(t, 200)
	if got["status"] != "pending_approval" || len(list(t, got, "approvals")) != 1 {
		t.Fatalf("after the same approver again %v", got)
	}
	if e.allowed(t, alex, "two.run", "/") {
		t.Fatal("allowed with one approver's two approvals")
	}

	second := e.call(t, "POST", "/v1/activations/"+id+"/approve", "emma", map[string]any{"justification": "second"}).Want(t, 200)
	approvers := []string{}
	for _, a := range list(t, second, "approvals") {
		approvers = append(approvers, a["approver"].(string))
	}
	if second["status"] != "active" || !slices.Equal(approvers, []string{e.Principal(t, "perparim"), e.Principal(t, "emma")}) {
		t.Fatalf("after a second approver %v", second)
	}
	if !e.allowed(t, alex, "two.run", "/") {
		t.Fatal("not allowed after two approvers")
	}
	if n := count(e.events(t, q("principal", alex)), "activation.approved", id); n != 2 {
		t.Fatalf("%d approved events, want 2", n)
	}
}

// Scopes and ids that spell key syntax (":" is a scope character) are
// names: each scope's elevation is its own, and a crafted id finds nothing.
func TestKeyEscapingThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	scopes := []string{"/a:b", "/ab", "/a.b", "/a-b", "/a@b", "/a:on:test-role:", "/a:el:x", "/a:b:c"}
	ids := map[string]string{}
	for _, sc := range scopes {
		e.assign(t, alex, "test-role", sc, "eligible")
		// A store that confused two of these scopes' locks would answer
		// 409 here: the role would look live already.
		act := e.call(t, "POST", "/v1/activations", "alex", map[string]any{"role": "test-role", "scope": sc}).Want(t, 201)
		if act["scope"] != sc {
			t.Fatalf("activated at %v, want %q", act["scope"], sc)
		}
		ids[sc] = act["id"].(string)
	}
	e.call(t, "POST", "/v1/activations/"+ids["/a:b"]+"/deactivate", "alex", map[string]any{"justification": "done"}).Want(t, 200)
	_, active, _ := e.myRoles(t, e.bearer(t, "alex"))
	want := []string{}
	for _, sc := range scopes {
		if sc != "/a:b" {
			want = append(want, "test-role@"+sc)
		}
	}
	slices.Sort(want)
	if !slices.Equal(active, want) {
		t.Fatalf("active after deactivating /a:b: %v, want %v", active, want)
	}
	if e.allowed(t, alex, "test.run", "/a:b") || !e.allowed(t, alex, "test.run", "/ab") || !e.allowed(t, alex, "test.run", "/a:b:c") {
		t.Fatal("the deactivation of one scope's elevation reached another's")
	}
	for _, id := range []string{"act_*", "act_}:act", "{" + ids["/ab"] + "}", ids["/ab"] + ":live", "*", ids["/ab"] + "%00"} {
		wantError(t, e.call(t, "GET", "/v1/activations/"+url.PathEscape(id), "alex", nil), 404, "not_found")
	}
}

// replicaOf starts a second replica on e's Redis, accepting e's demo tokens,
// with the same policies.
func replicaOf(t *testing.T, e *env, r *harness.RedisServer, args ...string) *elevatetest.Server {
	t.Helper()
	var config strings.Builder
	config.WriteString("identity:\n  static_tokens:\n")
	for _, p := range e.Creds.Principals {
		fmt.Fprintf(&config, "  - {name: %q, kind: user, sha256: %q}\n", p.Principal, identity.HashToken(p.Token))
	}
	for _, c := range e.Creds.Clients {
		fmt.Fprintf(&config, "  - {name: %q, kind: client, sha256: %q}\n", c.Name, identity.HashToken(c.Token))
	}
	root := harness.RepoRoot(t)
	all := append([]string{"--watch=false", "--eval-timeout", "10s", filepath.Join(root, "policies"), filepath.Join(root, "bundles", "demo")}, args...)
	return elevatetest.Start(t, elevatetest.Options{RedisURL: r.URL, Config: config.String(), Args: all})
}

// A replica that has cached a principal's holdings stops granting an
// elevation deactivated through another replica, within the bound the
// README gives, and does not grant it again.
func TestCacheInvalidationAcrossReplicas(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)
	a := startEnv(t, r, envOptions{})
	b := replicaOf(t, a, r, "--cache-size", "100")
	gateway := a.Token(t, "gateway")
	perparim := a.Principal(t, "perparim")
	grantedByB := func() bool {
		t.Helper()
		d := b.Do(t, "POST", "/v1/authorize", gateway, map[string]any{"subject": perparim, "action": "applications.create"}).Want(t, 200)
		return d["allow"] == true
	}
	act := a.activateApp(t, 0, "1h")
	waitUntil(t, 5*time.Second, "b grants the elevation", grantedByB)
	// Served from b's cache from now on (the metrics count the hits).
	for range 5 {
		if !grantedByB() {
			t.Fatal("b stopped granting a live elevation")
		}
	}
	a.call(t, "POST", "/v1/activations/"+act["id"].(string)+"/deactivate", "perparim", map[string]any{"justification": "done"}).Want(t, 200)
	deactivated := time.Now()
	waitUntil(t, 2*time.Second, "b stops granting the deactivated elevation", func() bool { return !grantedByB() })
	t.Logf("b denied %s after the deactivation", time.Since(deactivated))
	for range 20 {
		if grantedByB() {
			t.Fatal("b granted the deactivated elevation again")
		}
	}
}

// waitUntil polls ok until it holds, failing t after d.
func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// With Redis refusing writes to the audit stream (an ACL that takes XADD
// away, as a full or read-only audit store would), a deactivation and an
// approval are made and then undone: the API answers 503 and the elevation,
// or the request, is as it was.
func TestAuditLossUndoThroughTheAPI(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)
	e := startEnv(t, r, envOptions{})
	rc := r.Client(t)
	trail := func(ok bool) {
		t.Helper()
		rule := "-xadd"
		if ok {
			rule = "+xadd"
		}
		if err := rc.Do(context.Background(), "ACL", "SETUSER", "default", rule).Err(); err != nil {
			t.Fatalf("ACL SETUSER default %s: %v", rule, err)
		}
	}
	t.Cleanup(func() { trail(true) })
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "test-role", "/", "eligible")
	live := e.activateTestRole(t, "alex")
	pending := e.requestUserAdmin(t, "sophia", 0)

	trail(false)
	wantError(t, e.call(t, "POST", "/v1/activations/"+live+"/deactivate", "alex", map[string]any{"justification": "done"}), 503, "unavailable")
	wantError(t, e.call(t, "POST", "/v1/activations/"+pending+"/approve", "perparim", map[string]any{"justification": "ok"}), 503, "unavailable")
	if got := e.call(t, "GET", "/v1/activations/"+live, "alex", nil).Want(t, 200); got["status"] != "active" {
		t.Fatalf("deactivated without its audit event: %v", got)
	}
	if !e.allowed(t, alex, "test.run", "/") {
		t.Fatal("the elevation whose deactivation was undone does not grant")
	}
	if got := e.call(t, "GET", "/v1/activations/"+pending, "sophia", nil).Want(t, 200); got["status"] != "pending_approval" || len(list(t, got, "approvals")) != 0 {
		t.Fatalf("approved without its audit event: %v", got)
	}
	if e.allowed(t, e.Principal(t, "sophia"), "users.create", "/") {
		t.Fatal("an approval whose audit event was lost grants")
	}

	trail(true)
	e.call(t, "POST", "/v1/activations/"+live+"/deactivate", "alex", map[string]any{"justification": "done"}).Want(t, 200)
	if e.allowed(t, alex, "test.run", "/") {
		t.Fatal("still granted after the deactivation went through")
	}
	if n := count(e.events(t, q("principal", alex)), "activation.deactivated", live); n != 1 {
		t.Fatalf("%d deactivated events, want 1", n)
	}
}

// The Data API decides on the subject's elevations from the store and only
// those: forged ones are replaced, not merged with the subject's own.
func TestElevationReplacementThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "test-role", "/", "eligible")
	e.activateTestRole(t, "alex")
	ask := func(action string, extra map[string]any) any {
		t.Helper()
		input := map[string]any{"subject": alex, "action": action, "scope": "/"}
		for k, v := range extra {
			input[k] = v
		}
		return e.call(t, "POST", "/v1/data/pim/authz/allow", "gateway", map[string]any{"input": input}).Want(t, 200)["result"]
	}
	forgedUA := map[string]any{"id": "forged", "role": "user-administrator", "scope": "/", "activated_at": 0, "expires_at": nil}
	tests := map[string]struct {
		extra  map[string]any
		action string
		want   any
	}{
		"forged beside the subject's own":  {map[string]any{"elevations": []any{forgedUA}}, "users.create", false},
		"the subject's own still count":    {map[string]any{"elevations": []any{forgedUA}}, "test.run", true},
		"none forged":                      {nil, "test.run", true},
		"an empty list does not hide them": {map[string]any{"elevations": []any{}}, "test.run", true},
		"forged as an object":              {map[string]any{"elevations": map[string]any{"x": forgedUA}}, "users.create", false},
		"forged as a set-like list of ids": {map[string]any{"elevations": []any{"forged"}}, "test.run", true},
		"forged for a subject with none":   {map[string]any{"elevations": []any{forgedUA}, "subject": e.Principal(t, "emma")}, "users.create", false},
	}
	for name, tc := range tests {
		if got := ask(tc.action, tc.extra); got != tc.want {
			t.Errorf("%s: %s is %v, want %v", name, tc.action, got, tc.want)
		}
	}
}
