package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp/totp"

	"github.com/elevatepdp/elevate/test/harness"
)

// Every caller, decision clients too, reads the roles: sorted by id, with
// their settings.
func TestRoles(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	want := []string{"application-administrator", "helpdesk-administrator", "privileged-role-administrator", "test-role", "user-administrator"}
	for name, who := range map[string]string{"user": "sophia", "admin": "perparim", "decision client": "gateway"} {
		t.Run(name, func(t *testing.T) {
			roles := list(t, e.call(t, "GET", "/v1/roles", who, nil).Want(t, 200), "roles")
			var ids []string
			byID := map[string]map[string]any{}
			for _, r := range roles {
				ids = append(ids, r["id"].(string))
				byID[r["id"].(string)] = r
			}
			if !slices.Equal(ids, want) {
				t.Fatalf("roles %v, want %v", ids, want)
			}
			ua := byID["user-administrator"]
			settings := ua["settings"].(map[string]any)
			if ua["name"] != "User Administrator" || settings["require_mfa"] != true || settings["require_approval"] != true ||
				settings["justification_min_length"] != float64(10) || settings["approvers"].([]any)[0] != "role:privileged-role-administrator" {
				t.Errorf("user-administrator: %v", ua)
			}
			if p := byID["helpdesk-administrator"]["settings"].(map[string]any)["ticket_pattern"]; p != "^INC[0-9]+$" {
				t.Errorf("helpdesk ticket pattern %v", p)
			}
		})
	}
}

// "My roles" shows each demo principal what the tenant gives them.
func TestMyRoles(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	tests := map[string]struct {
		eligible, active []string
	}{
		"sophia":   {eligible: []string{"user-administrator@/"}, active: []string{}},
		"alex":     {eligible: []string{"user-administrator@/"}, active: []string{}},
		"emma":     {eligible: []string{"helpdesk-administrator@" + nyOffice}, active: []string{}},
		"perparim": {eligible: []string{"application-administrator@/"}, active: []string{"privileged-role-administrator@/"}},
	}
	for who, tc := range tests {
		t.Run(who, func(t *testing.T) {
			eligible, active, pending := e.myRoles(t, e.bearer(t, who))
			if !slices.Equal(eligible, tc.eligible) || !slices.Equal(active, tc.active) || len(pending) != 0 {
				t.Fatalf("eligible %v active %v pending %v, want %v %v []", eligible, active, pending, tc.eligible, tc.active)
			}
		})
	}
}

// The admin creates, lists and deletes assignments; deleting one revokes
// the elevations that came from it at once.
func TestAssignments(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex, emma := e.Principal(t, "alex"), e.Principal(t, "emma")

	var eligibleID string
	t.Run("create eligible", func(t *testing.T) {
		// Principals are canonical: lowercased (white space is refused,
		// never trimmed).
		a := e.call(t, "POST", "/v1/assignments", "perparim", map[string]any{
			"principal": "Alex.Johnson@Perparims.EXAMPLE", "role": "test-role", "scope": "/", "justification": why,
		}).Want(t, 201)
		eligibleID = a["id"].(string)
		if !strings.HasPrefix(eligibleID, "asg_") || a["principal"] != alex || a["type"] != "eligible" || a["scope"] != "/" ||
			a["created_by"] != e.Principal(t, "perparim") || a["start"] != nil || a["end"] != nil {
			t.Fatalf("assignment %v", a)
		}
		if got := e.events(t, q("type", "assignment.created", "principal", alex)); len(got) != 1 || got[0]["assignment_id"] != eligibleID {
			t.Fatalf("audit %v", got)
		}
		if eligible, _, _ := e.myRoles(t, e.bearer(t, "alex")); !slices.Contains(eligible, "test-role@/") {
			t.Fatalf("Alex's eligible roles %v", eligible)
		}
	})

	t.Run("create active with an end", func(t *testing.T) {
		end := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
		a := e.call(t, "POST", "/v1/assignments", "perparim", map[string]any{
			"principal": emma, "role": "test-role", "scope": nyOffice, "type": "active", "end": end.Format(time.RFC3339),
		}).Want(t, 201)
		if a["type"] != "active" || !parseTime(t, a["end"]).Equal(end) {
			t.Fatalf("assignment %v", a)
		}
		if _, active, _ := e.myRoles(t, e.bearer(t, "emma")); !slices.Equal(active, []string{"test-role@" + nyOffice}) {
			t.Fatalf("Emma's active roles %v", active)
		}
		if !e.allowed(t, emma, "test.run", nyOffice+"/users/alice") || e.allowed(t, emma, "test.run", "/") {
			t.Fatal("an active assignment at the New York Office grants wrongly")
		}
	})

	t.Run("list", func(t *testing.T) {
		tests := map[string]struct {
			who, query string
			want       []string // principal role type of each, sorted
		}{
			"admin, by principal": {"perparim", q("principal", alex), []string{alex + " test-role eligible", alex + " user-administrator eligible"}},
			"admin, by role":      {"perparim", q("role", "test-role"), []string{alex + " test-role eligible", emma + " test-role active"}},
			"admin, active":       {"perparim", q("role", "test-role", "state", "active"), []string{emma + " test-role active"}},
			"admin, eligible":     {"perparim", q("principal", emma, "state", "eligible"), []string{emma + " helpdesk-administrator eligible"}},
			"admin, expired":      {"perparim", q("state", "expired"), nil},
			"user sees their own": {"alex", "", []string{alex + " test-role eligible", alex + " user-administrator eligible"}},
			"user names themself": {"alex", q("principal", "ALEX.johnson@perparims.example"), []string{alex + " test-role eligible", alex + " user-administrator eligible"}},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				var got []string
				for _, a := range list(t, e.call(t, "GET", "/v1/assignments"+tc.query, tc.who, nil).Want(t, 200), "assignments") {
					got = append(got, a["principal"].(string)+" "+a["role"].(string)+" "+a["type"].(string))
				}
				slices.Sort(got)
				if !slices.Equal(got, tc.want) {
					t.Fatalf("assignments %v, want %v", got, tc.want)
				}
			})
		}
	})

	t.Run("delete revokes its live elevations", func(t *testing.T) {
		actID := e.activateTestRole(t, "alex")
		if !e.allowed(t, alex, "test.run", "/") {
			t.Fatal("the activation does not grant")
		}
		body := e.call(t, "DELETE", "/v1/assignments/"+eligibleID, "perparim", nil).Want(t, 200)
		revoked := list(t, body, "revoked")
		if body["assignment"].(map[string]any)["id"] != eligibleID || len(revoked) != 1 || revoked[0]["id"] != actID || revoked[0]["status"] != "revoked" {
			t.Fatalf("delete answered %v", body)
		}
		if e.allowed(t, alex, "test.run", "/") {
			t.Fatal("still allowed after its assignment was deleted")
		}
		if got := e.call(t, "GET", "/v1/activations/"+actID, "alex", nil).Want(t, 200); got["status"] != "revoked" {
			t.Fatalf("activation %v", got)
		}
		if eligible, active, _ := e.myRoles(t, e.bearer(t, "alex")); slices.Contains(eligible, "test-role@/") || len(active) != 0 {
			t.Fatalf("Alex still has eligible %v active %v", eligible, active)
		}
		events := e.events(t, q("principal", alex))
		if count(events, "assignment.removed", "") != 1 || count(events, "activation.revoked", actID) != 1 {
			t.Fatalf("audit %v", events)
		}
		wantError(t, e.call(t, "DELETE", "/v1/assignments/"+eligibleID, "perparim", nil), 404, "not_found")
	})

	t.Run("an admin of a unit manages that unit only", func(t *testing.T) {
		e.assign(t, emma, "privileged-role-administrator", nyOffice, "active")
		inUnit := e.call(t, "POST", "/v1/assignments", "emma", map[string]any{
			"principal": alex, "role": "helpdesk-administrator", "scope": nyOffice + "/floor-3",
		}).Want(t, 201)
		before := e.state(t)
		wantError(t, e.call(t, "POST", "/v1/assignments", "emma", map[string]any{
			"principal": alex, "role": "helpdesk-administrator", "scope": "/",
		}), 403, "forbidden")
		wantError(t, e.call(t, "DELETE", "/v1/assignments/demo-sophia.davis-user-administrator", "emma", nil), 403, "forbidden")
		e.unchanged(t, before)
		e.call(t, "DELETE", "/v1/assignments/"+inUnit["id"].(string), "emma", nil).Want(t, 200)
	})
}

// An activation without approval is live at once (201), can be read,
// listed, used, extended and deactivated.
func TestActivationLive(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	perparim := e.Principal(t, "perparim")

	act := e.activateApp(t, 0, "1h")
	id := act["id"].(string)
	activated, expires := parseTime(t, act["activated_at"]), parseTime(t, act["expires_at"])
	if act["role"] != "application-administrator" || act["scope"] != "/" || act["duration"] != "1h" ||
		act["assignment_id"] != "demo-perparim.abdullahu-application-administrator" || expires.Sub(activated) != time.Hour {
		t.Fatalf("activation %v", act)
	}
	if got := e.call(t, "GET", "/v1/activations/"+id, "perparim", nil).Want(t, 200); got["id"] != id || got["status"] != "active" {
		t.Fatalf("GET %v", got)
	}
	var live []string
	for _, a := range list(t, e.call(t, "GET", "/v1/activations"+q("status", "active"), "perparim", nil).Want(t, 200), "activations") {
		live = append(live, a["id"].(string))
	}
	if !slices.Equal(live, []string{id}) {
		t.Fatalf("active activations %v, want [%s]", live, id)
	}
	d := e.call(t, "POST", "/v1/authorize", "perparim", map[string]any{"action": "applications.create"}).Want(t, 200)
	if d["allow"] != true || d["elevation"].(map[string]any)["id"] != id {
		t.Fatalf("decision %v", d)
	}
	if _, active, _ := e.myRoles(t, e.bearer(t, "perparim")); !slices.Contains(active, "application-administrator@/") {
		t.Fatalf("active roles %v", active)
	}

	t.Run("extend", func(t *testing.T) {
		got := e.call(t, "POST", "/v1/activations/"+id+"/extend", "perparim", map[string]any{
			"duration": "30m", "justification": "the migration runs longer", "mfa": map[string]any{"totp": e.TOTP(t, "perparim", 1)},
		}).Want(t, 200)
		if moved := parseTime(t, got["expires_at"]).Sub(expires); moved != 30*time.Minute {
			t.Fatalf("the end moved by %s, want 30m: %v", moved, got)
		}
		if n := count(e.events(t, q("principal", perparim)), "activation.extended", id); n != 1 {
			t.Fatalf("%d extended events", n)
		}
	})

	t.Run("deactivate", func(t *testing.T) {
		got := e.call(t, "POST", "/v1/activations/"+id+"/deactivate", "perparim", map[string]any{"justification": "done"}).Want(t, 200)
		if got["status"] != "deactivated" || got["ended_by"] != perparim {
			t.Fatalf("deactivated %v", got)
		}
		if e.allowed(t, perparim, "applications.create", "/") {
			t.Fatal("allowed after deactivation")
		}
		events := e.events(t, q("principal", perparim))
		if count(events, "activation.activated", id) != 1 || count(events, "activation.deactivated", id) != 1 {
			t.Fatalf("audit %v", events)
		}
	})

	t.Run("an admin deactivates someone else's", func(t *testing.T) {
		alex := e.Principal(t, "alex")
		e.assign(t, alex, "test-role", "/", "eligible")
		other := e.activateTestRole(t, "alex")
		got := e.call(t, "POST", "/v1/activations/"+other+"/deactivate", "perparim", map[string]any{"justification": "incident response"}).Want(t, 200)
		if got["status"] != "deactivated" || got["ended_by"] != perparim || e.allowed(t, alex, "test.run", "/") {
			t.Fatalf("deactivated %v", got)
		}
	})
}

// A role that needs approval waits (202) until an approver approves or
// denies it, or its requester cancels it.
func TestActivationPending(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)

	t.Run("approve", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		sophia := e.Principal(t, "sophia")
		req := e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
			"role": "user-administrator", "justification": why, "duration": "2h",
			"mfa": map[string]any{"totp": e.TOTP(t, "sophia", 0)},
		}).Want(t, 202)
		id := req["id"].(string)
		requested, deadline := parseTime(t, req["requested_at"]), parseTime(t, req["deadline"])
		if req["status"] != "pending_approval" || req["approvals_required"] != float64(1) || req["activated_at"] != nil ||
			deadline.Sub(requested) != 24*time.Hour {
			t.Fatalf("request %v", req)
		}
		if _, _, pending := e.myRoles(t, e.bearer(t, "sophia")); !slices.Equal(pending, []string{"user-administrator@/"}) {
			t.Fatalf("Sophia's pending %v", pending)
		}
		if e.allowed(t, sophia, "users.create", "/") {
			t.Fatal("allowed while pending")
		}
		queue := list(t, e.call(t, "GET", "/v1/approvals", "perparim", nil).Want(t, 200), "activations")
		if len(queue) != 1 || queue[0]["id"] != id {
			t.Fatalf("Perparim's queue %v", queue)
		}
		if queue := list(t, e.call(t, "GET", "/v1/approvals", "alex", nil).Want(t, 200), "activations"); len(queue) != 0 {
			t.Fatalf("Alex, no approver, has a queue: %v", queue)
		}
		e.call(t, "GET", "/v1/activations/"+id, "perparim", nil).Want(t, 200)

		got := e.call(t, "POST", "/v1/activations/"+id+"/approve", "perparim", map[string]any{"justification": "Confirmed with her manager"}).Want(t, 200)
		approvals := list(t, got, "approvals")
		if got["status"] != "active" || len(approvals) != 1 || approvals[0]["approver"] != e.Principal(t, "perparim") ||
			parseTime(t, got["expires_at"]).Sub(parseTime(t, got["activated_at"])) != 2*time.Hour {
			t.Fatalf("approved %v", got)
		}
		if _, active, pending := e.myRoles(t, e.bearer(t, "sophia")); !slices.Equal(active, []string{"user-administrator@/"}) || len(pending) != 0 {
			t.Fatalf("Sophia's active %v pending %v", active, pending)
		}
		if !e.allowed(t, sophia, "users.create", "/") {
			t.Fatal("not allowed after approval")
		}
		// A role that needs approval is not extended: it takes a new request.
		before := e.state(t)
		r := e.call(t, "POST", "/v1/activations/"+id+"/extend", "sophia", map[string]any{
			"duration": "30m", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "sophia", 1)},
		})
		wantViolation(t, wantError(t, r, 403, "policy_denied"), "needs approval")
		e.unchanged(t, before)
		events := e.events(t, q("principal", sophia))
		if count(events, "activation.approved", id) != 1 || count(events, "activation.activated", id) != 1 {
			t.Fatalf("audit %v", events)
		}
	})

	t.Run("deny", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		id := e.requestUserAdmin(t, "alex", 0)
		got := e.call(t, "POST", "/v1/activations/"+id+"/deny", "perparim", map[string]any{"justification": "No ticket for this"}).Want(t, 200)
		if got["status"] != "denied" || got["ended_by"] != e.Principal(t, "perparim") || got["end_reason"] != "No ticket for this" {
			t.Fatalf("denied %v", got)
		}
		if _, active, pending := e.myRoles(t, e.bearer(t, "alex")); len(active)+len(pending) != 0 {
			t.Fatalf("Alex's active %v pending %v", active, pending)
		}
		if queue := list(t, e.call(t, "GET", "/v1/approvals", "perparim", nil).Want(t, 200), "activations"); len(queue) != 0 {
			t.Fatalf("a denied request is still queued: %v", queue)
		}
		events := e.events(t, q("principal", e.Principal(t, "alex")))
		if count(events, "activation.denied", id) != 1 || count(events, "activation.activated", id) != 0 {
			t.Fatalf("audit %v", events)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		id := e.requestUserAdmin(t, "sophia", 0)
		got := e.call(t, "POST", "/v1/activations/"+id+"/cancel", "sophia", nil).Want(t, 200)
		if got["status"] != "cancelled" || got["ended_by"] != e.Principal(t, "sophia") {
			t.Fatalf("cancelled %v", got)
		}
		if queue := list(t, e.call(t, "GET", "/v1/approvals", "perparim", nil).Want(t, 200), "activations"); len(queue) != 0 {
			t.Fatalf("a cancelled request is still queued: %v", queue)
		}
		if n := count(e.events(t, ""), "activation.cancelled", id); n != 1 {
			t.Fatalf("%d cancelled events", n)
		}
	})

	t.Run("scheduled, then cancelled", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		e.assign(t, e.Principal(t, "alex"), "test-role", "/", "eligible")
		at := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		got := e.call(t, "POST", "/v1/activations", "alex", map[string]any{"role": "test-role", "start": at.Format(time.RFC3339)}).Want(t, 202)
		id := got["id"].(string)
		if got["status"] != "scheduled" || !parseTime(t, got["start_at"]).Equal(at) || got["activated_at"] != nil {
			t.Fatalf("scheduled %v", got)
		}
		if e.allowed(t, e.Principal(t, "alex"), "test.run", "/") {
			t.Fatal("allowed before the scheduled start")
		}
		if _, _, pending := e.myRoles(t, e.bearer(t, "alex")); !slices.Equal(pending, []string{"test-role@/"}) {
			t.Fatalf("Alex's pending %v", pending)
		}
		if got := e.call(t, "POST", "/v1/activations/"+id+"/cancel", "alex", map[string]any{"justification": "not needed"}).Want(t, 200); got["status"] != "cancelled" {
			t.Fatalf("cancelled %v", got)
		}
	})

	t.Run("list by status", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		pending := e.requestUserAdmin(t, "sophia", 0)
		denied := e.requestUserAdmin(t, "alex", 0)
		e.call(t, "POST", "/v1/activations/"+denied+"/deny", "perparim", map[string]any{"justification": "not now"}).Want(t, 200)
		tests := map[string]struct {
			who, query string
			want       []string
		}{
			"admin, pending":      {"perparim", q("status", "pending_approval"), []string{pending}},
			"admin, denied":       {"perparim", q("status", "denied"), []string{denied}},
			"admin, by principal": {"perparim", q("principal", e.Principal(t, "alex")), []string{denied}},
			"user, their own":     {"sophia", "", []string{pending}},
			"user, status":        {"alex", q("status", "pending_approval"), nil},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				var got []string
				for _, a := range list(t, e.call(t, "GET", "/v1/activations"+tc.query, tc.who, nil).Want(t, 200), "activations") {
					got = append(got, a["id"].(string))
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("activations %v, want %v", got, tc.want)
				}
			})
		}
	})
}

// A first enrolment needs an admin's invite; a later one needs the current
// code, and the old secret stops working.
func TestEnrollTOTP(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)

	t.Run("first enrolment", func(t *testing.T) {
		const nina = "nina.new@perparims.example"
		e := startEnv(t, r, envOptions{Users: []string{nina}})
		auth := "Bearer " + e.userToken(t, nina)
		invite := e.call(t, "POST", "/v1/mfa/totp/invites", "perparim", map[string]any{"principal": nina}).Want(t, 201)
		resp := e.callAuth(t, "POST", "/v1/mfa/totp/enroll", auth, map[string]any{"invite": invite["code"]})
		got := resp.Want(t, 201)
		secret, _ := got["secret"].(string)
		if secret == "" || !strings.HasPrefix(got["url"].(string), "otpauth://totp/") || !strings.Contains(got["url"].(string), secret) {
			t.Fatalf("enrolment %v", got)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", cc)
		}
		if n := count(e.events(t, q("principal", nina)), "mfa.totp_enrolled", ""); n != 1 {
			t.Fatalf("%d enrolment events", n)
		}
		// The secret works: Nina activates a role that needs MFA.
		e.assign(t, nina, "user-administrator", "/", "eligible")
		e.callAuth(t, "POST", "/v1/activations", auth, map[string]any{
			"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": code(t, secret)},
		}).Want(t, 202)
	})

	t.Run("re-enrolment with the current code", func(t *testing.T) {
		e := startEnv(t, r, envOptions{})
		got := e.call(t, "POST", "/v1/mfa/totp/enroll", "sophia", map[string]any{"totp": e.TOTP(t, "sophia", 0)}).Want(t, 201)
		secret := got["secret"].(string)
		if secret == "" || secret == e.secret(t, "sophia") {
			t.Fatalf("enrolment %v", got)
		}
		request := func(code string) []string {
			r := e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
				"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": code},
			})
			if r.Status == http.StatusAccepted {
				return nil
			}
			return wantError(t, r, 403, "policy_denied")
		}
		// Codes are remembered by time step, whatever the secret: the next
		// step's code of each secret has not been used.
		wantViolation(t, request(e.TOTP(t, "sophia", 1)), "TOTP code is wrong")
		if errs := request(codeAt(t, secret, time.Now().Add(30*time.Second))); errs != nil {
			t.Fatalf("the new secret does not work: %v", errs)
		}
	})
}

// code is secret's current TOTP code.
func code(t testing.TB, secret string) string { return codeAt(t, secret, time.Now()) }

func codeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Anyone asks about themselves; decision clients and admins about anyone.
// A decision that cannot be granted is a denial, never an error.
func TestAuthorize(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	perparim, sophia := e.Principal(t, "perparim"), e.Principal(t, "sophia")
	tests := map[string]struct {
		who     string
		request map[string]any
		allow   bool
		role    string // of the granting elevation
	}{
		"user about themself":          {"sophia", map[string]any{"action": "users.create"}, false, ""},
		"admin about themself":         {"perparim", map[string]any{"action": "roleAssignments.create"}, true, "privileged-role-administrator"},
		"client about a subject":       {"gateway", map[string]any{"subject": perparim, "action": "roles.update"}, true, "privileged-role-administrator"},
		"client, scope below":          {"gateway", map[string]any{"subject": perparim, "action": "users.read", "scope": nyOffice}, true, "privileged-role-administrator"},
		"client, action not granted":   {"gateway", map[string]any{"subject": perparim, "action": "applications.create"}, false, ""},
		"client, subject not elevated": {"gateway", map[string]any{"subject": sophia, "action": "users.create"}, false, ""},
		"admin about someone":          {"perparim", map[string]any{"subject": sophia, "action": "users.create"}, false, ""},
		"invalid scope fails closed":   {"gateway", map[string]any{"subject": perparim, "action": "users.read", "scope": "/a/../b"}, false, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d := e.call(t, "POST", "/v1/authorize", tc.who, tc.request).Want(t, 200)
			if d["allow"] != tc.allow || !isUUID(d["decision_id"]) || d["reason"] == "" {
				t.Fatalf("decision %v, want allow %v", d, tc.allow)
			}
			if tc.role != "" && d["elevation"].(map[string]any)["role"] != tc.role {
				t.Fatalf("granted by %v, want %s", d["elevation"], tc.role)
			}
			if !tc.allow && d["elevation"] != nil {
				t.Fatalf("a denial names an elevation: %v", d)
			}
		})
	}
}

// The audit trail: everything for admins, filtered as asked; a user's own
// events for anyone else.
func TestAudit(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia, alex := e.Principal(t, "sophia"), e.Principal(t, "alex")
	before := time.Now().UTC()
	pending := e.requestUserAdmin(t, "sophia", 0)
	e.assign(t, alex, "test-role", "/", "eligible")
	e.activateTestRole(t, "alex")
	after := time.Now().UTC().Add(time.Second)

	all := e.events(t, "")
	for _, ev := range all {
		// Absent keys must fail too: nil is not "".
		for _, k := range []string{"id", "actor", "type"} {
			if v, ok := ev[k].(string); !ok || v == "" {
				t.Fatalf("event without %s: %v", k, ev)
			}
		}
		parseTime(t, ev["time"])
	}
	tests := map[string]struct {
		who, query string
		want       []string // "type principal" of each, in order
	}{
		"admin, everything": {"perparim", "", []string{
			"activation.requested " + sophia, "assignment.created " + alex, "activation.requested " + alex, "activation.activated " + alex}},
		"admin, by principal": {"perparim", q("principal", alex), []string{
			"assignment.created " + alex, "activation.requested " + alex, "activation.activated " + alex}},
		"admin, by type":   {"perparim", q("type", "activation.requested"), []string{"activation.requested " + sophia, "activation.requested " + alex}},
		"admin, by role":   {"perparim", q("role", "user-administrator"), []string{"activation.requested " + sophia}},
		"admin, limit":     {"perparim", q("limit", "1"), []string{"activation.requested " + sophia}},
		"admin, window":    {"perparim", q("since", before.Add(-time.Second).Format(time.RFC3339), "until", after.Format(time.RFC3339), "type", "activation.activated"), []string{"activation.activated " + alex}},
		"admin, since":     {"perparim", q("since", after.Format(time.RFC3339)), nil},
		"admin, until":     {"perparim", q("until", before.Add(-time.Minute).Format(time.RFC3339)), nil},
		"user, their own":  {"sophia", "", []string{"activation.requested " + sophia}},
		"user, names self": {"sophia", q("principal", strings.ToUpper(sophia)), []string{"activation.requested " + sophia}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, ev := range list(t, e.call(t, "GET", "/v1/audit"+tc.query, tc.who, nil).Want(t, 200), "events") {
				got = append(got, ev["type"].(string)+" "+ev["principal"].(string))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("events %v, want %v", got, tc.want)
			}
		})
	}
	if ev := e.events(t, q("principal", sophia))[0]; ev["justification"] != why || ev["role"] != "user-administrator" {
		t.Fatalf("requested event %v (pending %s)", ev, pending)
	}
}

// isUUID: v is a decision ID in OPA's form, a version 4 UUID.
func isUUID(v any) bool {
	s, _ := v.(string)
	u, err := uuid.Parse(s)
	return err == nil && len(s) == 36 && u.Version() == 4
}
