package api_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// Without a valid bearer token every endpoint answers 401 with a Bearer
// challenge, and nothing changes: not even the admin's own token works
// under another scheme.
func TestUnauthenticated(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	f := newFixture(t, e)
	admin := e.Token(t, "perparim")
	alex := e.Principal(t, "alex")
	endpoints := map[string]struct {
		method, path string
		body         any
	}{
		"roles":             {"GET", "/v1/roles", nil},
		"my roles":          {"GET", "/v1/me/roles", nil},
		"create assignment": {"POST", "/v1/assignments", map[string]any{"principal": alex, "role": "privileged-role-administrator", "type": "active"}},
		"list assignments":  {"GET", "/v1/assignments", nil},
		"delete assignment": {"DELETE", "/v1/assignments/{alexAsg}", nil},
		"activate":          {"POST", "/v1/activations", map[string]any{"role": "test-role", "scope": "/unauth"}},
		"list activations":  {"GET", "/v1/activations", nil},
		"get activation":    {"GET", "/v1/activations/{pending}", nil},
		"approve":           {"POST", "/v1/activations/{pending}/approve", map[string]any{"justification": "Confirmed with her manager"}},
		"deny":              {"POST", "/v1/activations/{pending}/deny", map[string]any{"justification": "No"}},
		"cancel":            {"POST", "/v1/activations/{pending}/cancel", nil},
		"deactivate":        {"POST", "/v1/activations/{live}/deactivate", nil},
		"extend":            {"POST", "/v1/activations/{alexLive}/extend", map[string]any{"duration": "30m"}},
		"approvals":         {"GET", "/v1/approvals", nil},
		"enrol":             {"POST", "/v1/mfa/totp/enroll", nil},
		"authorize":         {"POST", "/v1/authorize", map[string]any{"subject": alex, "action": "test.run"}},
		"audit":             {"GET", "/v1/audit", nil},
	}
	auths := map[string]string{
		"no token":                   "",
		"unknown token":              "Bearer elv_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"Basic with the admin token": "Basic " + admin,
		"Basic credentials":          "Basic " + base64.StdEncoding.EncodeToString([]byte("perparim.abdullahu@perparims.example:"+admin)),
		"scheme only":                "Bearer",
		"token with a space":         "Bearer " + admin[:10] + " " + admin[10:],
		"admin token with a suffix":  "Bearer " + admin + "x",
		"admin token without scheme": admin,
	}
	for authName, auth := range auths {
		t.Run(authName, func(t *testing.T) {
			before := e.state(t)
			for name, ep := range endpoints {
				t.Run(name, func(t *testing.T) {
					r := e.callAuth(t, ep.method, f.expand(ep.path), auth, f.expandBody(ep.body))
					wantError(t, r, 401, "unauthenticated")
					if c := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Bearer") {
						t.Errorf("WWW-Authenticate %q, want a Bearer challenge", c)
					}
					if strings.Contains(r.Raw, admin) {
						t.Errorf("the answer echoes the token: %s", r.Raw)
					}
				})
			}
			e.unchanged(t, before)
		})
	}
	t.Run("the scheme is case-insensitive", func(t *testing.T) {
		e.callAuth(t, "GET", "/v1/roles", "bearer "+admin, nil).Want(t, 200)
	})
}

// Perparim holds the approver role of Privileged Role Administrator, yet may
// not approve (or deny) his own request for it.
func TestSelfApproval(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	perparim := e.Principal(t, "perparim")
	// He holds it at "/" already; he asks for it at the New York Office.
	e.assign(t, perparim, "privileged-role-administrator", nyOffice, "eligible")
	req := e.call(t, "POST", "/v1/activations", "perparim", map[string]any{
		"role": "privileged-role-administrator", "scope": nyOffice, "justification": why,
		"mfa": map[string]any{"totp": e.TOTP(t, "perparim", 0)},
	}).Want(t, 202)
	id := req["id"].(string)

	if queue := list(t, e.call(t, "GET", "/v1/approvals", "perparim", nil).Want(t, 200), "activations"); len(queue) != 0 {
		t.Fatalf("his own request is in his queue: %v", queue)
	}
	before := e.state(t)
	for _, action := range []string{"approve", "deny"} {
		r := e.call(t, "POST", "/v1/activations/"+id+"/"+action, "perparim", map[string]any{"justification": "I trust myself"})
		wantViolation(t, wantError(t, r, 403, "policy_denied"), "cannot approve or deny it")
	}
	e.unchanged(t, before)
	if got := e.call(t, "GET", "/v1/activations/"+id, "perparim", nil).Want(t, 200); got["status"] != "pending_approval" || len(got["approvals"].([]any)) != 0 {
		t.Fatalf("after self-approval: %v", got)
	}

	// Another holder of the approver role may approve it: the refusal was
	// about who asked.
	e.assign(t, e.Principal(t, "emma"), "privileged-role-administrator", "/", "active")
	e.call(t, "POST", "/v1/activations/"+id+"/approve", "emma", map[string]any{"justification": "Confirmed by phone"}).Want(t, 200)
}

// Only an approver whose elevation covers the request's scope approves.
func TestApprovalByNonApprover(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	id := e.requestUserAdmin(t, "sophia", 0)
	// Emma administers the New York Office only; the request is for "/".
	e.assign(t, e.Principal(t, "emma"), "privileged-role-administrator", nyOffice, "active")
	tests := map[string]struct{ who, action string }{
		"Alex approves":           {"alex", "approve"},
		"Alex denies":             {"alex", "deny"},
		"a unit's admin approves": {"emma", "approve"},
		"a unit's admin denies":   {"emma", "deny"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.state(t)
			r := e.call(t, "POST", "/v1/activations/"+id+"/"+tc.action, tc.who, map[string]any{"justification": "Looks fine to me"})
			wantViolation(t, wantError(t, r, 403, "policy_denied"), "is not an approver")
			e.unchanged(t, before)
			if queue := list(t, e.call(t, "GET", "/v1/approvals", tc.who, nil).Want(t, 200), "activations"); len(queue) != 0 {
				t.Fatalf("%s's queue: %v", tc.who, queue)
			}
		})
	}
	if e.allowed(t, e.Principal(t, "sophia"), "users.create", "/") {
		t.Fatal("Sophia is allowed without an approval")
	}
	e.call(t, "POST", "/v1/activations/"+id+"/approve", "perparim", map[string]any{"justification": "Confirmed"}).Want(t, 200)
}

// A TOTP code is good once: used again for a second activation or an
// extension it is refused, saying so, and nothing is created. A right code
// given twice is no guess: it is not audited as mfa.failed.
func TestTOTPReplay(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)

	t.Run("two activations", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		sophia := e.Principal(t, "sophia")
		body := map[string]any{"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "sophia", 0)}}
		first := e.call(t, "POST", "/v1/activations", "sophia", body).Want(t, 202)
		before := e.state(t)
		wantViolation(t, wantError(t, e.call(t, "POST", "/v1/activations", "sophia", body), 403, "policy_denied"), "already used")
		e.unchanged(t, before)
		acts := list(t, e.call(t, "GET", "/v1/activations", "sophia", nil).Want(t, 200), "activations")
		if len(acts) != 1 || acts[0]["id"] != first["id"] {
			t.Fatalf("Sophia's activations %v", acts)
		}
		if failed := e.events(t, q("principal", sophia, "type", "mfa.failed")); len(failed) != 0 {
			t.Fatalf("mfa.failed events %v", failed)
		}
	})

	t.Run("activation then extension", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		code := e.TOTP(t, "perparim", 0)
		act := e.call(t, "POST", "/v1/activations", "perparim", map[string]any{
			"role": "application-administrator", "justification": why, "mfa": map[string]any{"totp": code},
		}).Want(t, 201)
		before := e.state(t)
		r := e.call(t, "POST", "/v1/activations/"+act["id"].(string)+"/extend", "perparim", map[string]any{
			"duration": "30m", "justification": why, "mfa": map[string]any{"totp": code},
		})
		wantViolation(t, wantError(t, r, 403, "policy_denied"), "already used")
		e.unchanged(t, before)
		if n := len(e.events(t, q("principal", e.Principal(t, "perparim"), "type", "mfa.failed"))); n != 0 {
			t.Fatalf("%d mfa.failed events", n)
		}
	})
}

// Replacing a TOTP secret takes the current code: a stolen token alone
// cannot swap the second factor. Failed tries are audited and the old
// secret keeps working.
func TestTOTPReEnrolment(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia := e.Principal(t, "sophia")
	used := e.TOTP(t, "sophia", 0)
	e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
		"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": used},
	}).Want(t, 202)

	tests := map[string]any{
		"no body":        nil,
		"no code":        map[string]any{},
		"empty code":     map[string]any{"totp": ""},
		"wrong code":     map[string]any{"totp": "abcdef"},
		"used code":      map[string]any{"totp": used},
		"another's code": map[string]any{"totp": e.TOTP(t, "alex", 0)},
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			before := e.state(t)
			r := e.call(t, "POST", "/v1/mfa/totp/enroll", "sophia", body)
			wantViolation(t, wantError(t, r, 403, "policy_denied"), "already enrolled")
			if _, ok := r.Body["secret"]; ok {
				t.Fatalf("a refusal hands out a secret: %s", r.Raw)
			}
			e.unchanged(t, before)
		})
	}
	// All but the used code, which is no guess.
	failed := e.events(t, q("principal", sophia, "type", "mfa.failed"))
	if len(failed) != len(tests)-1 {
		t.Fatalf("%d mfa.failed events, want %d: %v", len(failed), len(tests)-1, failed)
	}
	// The enrolled secret still works.
	e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
		"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "sophia", 1)},
	}).Want(t, 202)
}

// Principal names that would collide with Sophia's Redis keys if they were
// not escaped give the real Sophia nothing and show her nothing of theirs.
func TestPrincipalKeyCollision(t *testing.T) {
	t.Parallel()
	const impostor = "{sophia.davis@perparims.example}"
	e := startEnv(t, harness.Redis(t), envOptions{Users: []string{impostor}})
	sophia := e.Principal(t, "sophia")
	crafted := []string{
		impostor,
		"sophia.davis@perparims.example}",
		"{sophia.davis@perparims.example",
		"sophia.davis%40perparims.example",
		"sophia.davis%2540perparims.example",
		"sophia.davis@perparims.example}:asg",
		"sophia.davis@perparims.example:live",
		"}:{sophia.davis@perparims.example",
		"elevate:{sophia.davis@perparims.example}",
		"sophia.davis@perparims.example*",
		"*",
		// Invisible characters are refused at the edge: see
		// TestPrincipalKelvinSignRefused.
	}
	// Each gets User Administrator outright, and test-role to activate.
	for _, p := range crafted {
		a := e.call(t, "POST", "/v1/assignments", "perparim", map[string]any{"principal": p, "role": "user-administrator", "type": "active"}).Want(t, 201)
		if a["principal"] != p {
			t.Fatalf("stored as %v, want %q", a["principal"], p)
		}
		e.assign(t, p, "test-role", "/", "eligible")
	}
	impostorAuth := "Bearer " + e.userToken(t, impostor)
	impostorAct := e.callAuth(t, "POST", "/v1/activations", impostorAuth, map[string]any{"role": "test-role"}).Want(t, 201)["id"].(string)
	sophiaReq := e.requestUserAdmin(t, "sophia", 0)

	t.Run("Sophia gets nothing of theirs", func(t *testing.T) {
		eligible, active, pending := e.myRoles(t, e.bearer(t, "sophia"))
		if !slices.Equal(eligible, []string{"user-administrator@/"}) || len(active) != 0 || !slices.Equal(pending, []string{"user-administrator@/"}) {
			t.Fatalf("Sophia's roles: eligible %v active %v pending %v", eligible, active, pending)
		}
		for _, action := range []string{"users.create", "test.run"} {
			if e.allowed(t, sophia, action, "/") {
				t.Fatalf("Sophia is allowed %s", action)
			}
		}
		asgs := list(t, e.call(t, "GET", "/v1/assignments"+q("principal", sophia), "perparim", nil).Want(t, 200), "assignments")
		if len(asgs) != 1 || asgs[0]["id"] != "demo-sophia.davis-user-administrator" {
			t.Fatalf("Sophia's assignments %v", asgs)
		}
		acts := list(t, e.call(t, "GET", "/v1/activations", "sophia", nil).Want(t, 200), "activations")
		if len(acts) != 1 || acts[0]["id"] != sophiaReq {
			t.Fatalf("Sophia's activations %v", acts)
		}
		if got := e.events(t, q("principal", sophia)); count(got, "activation.activated", "") != 0 || count(got, "assignment.created", "") != 0 {
			t.Fatalf("Sophia's audit %v", got)
		}
	})

	t.Run("each crafted principal holds its own", func(t *testing.T) {
		for _, p := range crafted {
			asgs := list(t, e.call(t, "GET", "/v1/assignments"+q("principal", p), "perparim", nil).Want(t, 200), "assignments")
			if len(asgs) != 2 || asgs[0]["principal"] != p || asgs[1]["principal"] != p {
				t.Fatalf("assignments of %q: %v", p, asgs)
			}
			if !e.allowed(t, p, "users.create", "/") {
				t.Fatalf("%q is not granted its own active assignment", p)
			}
		}
	})

	t.Run("the impostor sees nothing of Sophia's", func(t *testing.T) {
		eligible, active, pending := e.myRoles(t, impostorAuth)
		if !slices.Equal(eligible, []string{"test-role@/"}) || !slices.Equal(active, []string{"test-role@/", "user-administrator@/"}) || len(pending) != 0 {
			t.Fatalf("impostor's roles: eligible %v active %v pending %v", eligible, active, pending)
		}
		acts := list(t, e.callAuth(t, "GET", "/v1/activations", impostorAuth, nil).Want(t, 200), "activations")
		if len(acts) != 1 || acts[0]["id"] != impostorAct {
			t.Fatalf("impostor's activations %v", acts)
		}
		wantError(t, e.callAuth(t, "GET", "/v1/activations/"+sophiaReq, impostorAuth, nil), 404, "not_found")
		wantError(t, e.callAuth(t, "GET", "/v1/assignments"+q("principal", sophia), impostorAuth, nil), 403, "forbidden")
		for _, ev := range list(t, e.callAuth(t, "GET", "/v1/audit", impostorAuth, nil).Want(t, 200), "events") {
			if ev["principal"] != impostor {
				t.Fatalf("impostor reads another's event: %v", ev)
			}
		}
		// Holding User Administrator is no approver role.
		r := e.callAuth(t, "POST", "/v1/activations/"+sophiaReq+"/approve", impostorAuth, map[string]any{"justification": "I am Sophia"})
		wantError(t, r, 403, "policy_denied")
	})
}

// An activation is shown to its requester, to admins and to those who may
// approve it; to anyone else it does not exist.
func TestActivationHiddenFromStrangers(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	pending := e.requestUserAdmin(t, "sophia", 0)
	e.assign(t, e.Principal(t, "alex"), "test-role", "/", "eligible")
	live := e.activateTestRole(t, "alex")
	unknown := e.call(t, "GET", "/v1/activations/"+noSuchActivation, "alex", nil)
	wantError(t, unknown, 404, "not_found")

	tests := map[string]struct {
		who, id string
		visible bool
	}{
		"requester":                 {"sophia", pending, true},
		"admin and approver":        {"perparim", pending, true},
		"stranger, pending":         {"alex", pending, false},
		"another stranger, pending": {"emma", pending, false},
		// A decision client reads no activation at all (403, whether the
		// id exists or not): see TestClientCannotActAsSameNamedUser.
		"stranger, live": {"sophia", live, false},
		"owner, live":    {"alex", live, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := e.call(t, "GET", "/v1/activations/"+tc.id, tc.who, nil)
			if tc.visible {
				if got := r.Want(t, 200); got["id"] != tc.id {
					t.Fatalf("got %v", got)
				}
				return
			}
			wantError(t, r, 404, "not_found")
			// Word for word what an unknown id gets, but for the id.
			if strings.ReplaceAll(r.Body["message"].(string), tc.id, noSuchActivation) != unknown.Body["message"] {
				t.Fatalf("%q differs from the unknown id's %q", r.Body["message"], unknown.Body["message"])
			}
			for _, a := range list(t, e.call(t, "GET", "/v1/activations", tc.who, nil).Want(t, 200), "activations") {
				if a["id"] == tc.id {
					t.Fatalf("%s lists it", tc.who)
				}
			}
		})
	}
}

// No answer but an enrolment's own carries a TOTP secret, none carries a
// token, and neither does the server log, at debug level, after every
// endpoint has been called (the env checks every answer when the test
// ends; this test makes sure there is much to check, and that the log is
// being written).
func TestNoSecretsLeak(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{Args: []string{"--log-level", "debug"}})
	f := newFixture(t, e)
	sophiaToken := e.Token(t, "sophia")
	for _, who := range []string{"perparim", "sophia", "alex", "emma", "gateway"} {
		for _, path := range []string{"/v1/roles", "/v1/me/roles", "/v1/assignments", "/v1/activations", "/v1/approvals", "/v1/audit", "/v1/activations/" + f.pending} {
			e.call(t, "GET", path, who, nil)
		}
		e.call(t, "POST", "/v1/authorize", who, map[string]any{"action": "users.create"})
	}
	// Refusals, with the secrets where a careless handler might echo them.
	e.callAuth(t, "GET", "/v1/roles", "Basic "+sophiaToken, nil)
	e.callAuth(t, "GET", "/v1/roles", "Bearer "+sophiaToken+"x", nil)
	e.call(t, "POST", "/v1/activations", "sophia", map[string]any{"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": f.usedCode}})
	e.call(t, "POST", "/v1/mfa/totp/enroll", "sophia", map[string]any{"totp": f.usedCode})
	e.call(t, "POST", "/v1/activations", "sophia", `{"role": "`+sophiaToken)
	// An enrolment, whose answer is the one place a secret may be.
	enrolled := e.call(t, "POST", "/v1/mfa/totp/enroll", "emma", map[string]any{"totp": e.TOTP(t, "emma", 0)}).Want(t, 201)
	if enrolled["secret"] == "" || enrolled["secret"] == e.secret(t, "emma") {
		t.Fatalf("enrolment %v", enrolled)
	}
	e.call(t, "GET", "/v1/audit", "perparim", nil).Want(t, 200)
	e.call(t, "GET", "/v1/me/roles", "emma", nil).Want(t, 200)

	if log := e.Log(); !strings.Contains(log, `"msg":"request"`) || !strings.Contains(log, `"msg":"audit"`) {
		t.Fatalf("the debug log lacks request and audit lines, so checking it proves little:\n%s", log)
	}
	e.checkNoSecrets(t)
}

// wrongCodes are n six-digit codes none of which secret accepts for the next
// minute and a half (every step within three of now is excluded).
func wrongCodes(t testing.TB, secret string, n int) []string {
	t.Helper()
	valid := map[string]bool{}
	now := time.Now()
	for step := -3; step <= 3; step++ {
		valid[codeAt(t, secret, now.Add(time.Duration(step)*30*time.Second))] = true
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		if c := fmt.Sprintf("%06d", i); !valid[c] {
			out = append(out, c)
		}
	}
	return out
}

// maxTOTPFailures is how many wrong codes lock a principal's TOTP.
const maxTOTPFailures = 5

// Guessing codes locks the principal's TOTP: after five wrong codes even
// the right one is refused, for activations and re-enrolment alike, while
// other principals are not affected.
func TestTOTPLockout(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia := e.Principal(t, "sophia")
	activate := func(code string) elevatetest.Response {
		return e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
			"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": code},
		})
	}
	before := e.state(t)
	for i, code := range wrongCodes(t, e.secret(t, "sophia"), maxTOTPFailures) {
		if errs := wantError(t, activate(code), 403, "policy_denied"); !slices.ContainsFunc(errs, func(s string) bool { return strings.Contains(s, "TOTP code is wrong") }) {
			t.Fatalf("wrong code %d: %v", i, errs)
		}
	}
	wantViolation(t, wantError(t, activate(e.TOTP(t, "sophia", 0)), 403, "policy_denied"), "5 wrong TOTP codes: TOTP is locked until")
	r := e.call(t, "POST", "/v1/mfa/totp/enroll", "sophia", map[string]any{"totp": e.TOTP(t, "sophia", 1)})
	wantViolation(t, wantError(t, r, 403, "policy_denied"), "already enrolled")
	e.unchanged(t, before)
	if n := len(e.events(t, q("principal", sophia, "type", "mfa.failed"))); n != maxTOTPFailures+2 {
		t.Fatalf("%d mfa.failed events, want %d", n, maxTOTPFailures+2)
	}
	// Alex's TOTP is his own.
	e.requestUserAdmin(t, "alex", 0)
}
