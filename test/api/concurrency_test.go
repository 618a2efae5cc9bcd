package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// request is one of the requests sent at once.
type request struct {
	method, path, auth string
	body               any
}

// race sends every request at the same moment (each from its own
// goroutine, released together) and returns the answers in order. A
// request that gets no answer fails t.
func race(t *testing.T, e *env, reqs []request) []elevatetest.Response {
	t.Helper()
	out := make([]elevatetest.Response, len(reqs))
	errs := make([]error, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = e.send(r.method, r.path, r.auth, r.body)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return out
}

// tally counts answers by "status code" ("200", "409 conflict").
func tally(rs []elevatetest.Response) map[string]int {
	n := map[string]int{}
	for _, r := range rs {
		key := fmt.Sprint(r.Status)
		if c, ok := r.Body["code"].(string); ok && r.Status >= 400 {
			key += " " + c
		}
		n[key]++
	}
	return n
}

// refusedAsDuplicate reports whether r refuses a second elevation of a role
// already live: 409 conflict, or 403 policy_denied saying so (see the
// skipped case "activate a role already active" in TestErrors).
func refusedAsDuplicate(r elevatetest.Response) bool {
	if r.Status == http.StatusConflict && r.Body["code"] == "conflict" {
		return true
	}
	if r.Status != http.StatusForbidden || r.Body["code"] != "policy_denied" {
		return false
	}
	errs, _ := r.Body["errors"].([]any)
	for _, e := range errs {
		if s, _ := e.(string); !strings.Contains(s, "is already active at") {
			return false
		}
	}
	return len(errs) > 0
}

// liveOf lists the ids of the live activations of principal and role, as the
// admin sees them.
func (e *env) liveOf(t *testing.T, principal, role string) []string {
	t.Helper()
	var ids []string
	for _, a := range list(t, e.call(t, "GET", "/v1/activations"+q("status", "active", "principal", principal), "perparim", nil).Want(t, 200), "activations") {
		if a["role"] == role {
			ids = append(ids, a["id"].(string))
		}
	}
	return ids
}

// 50 approvals of one pending request by two approvers at once: one
// approves it, the others are told it is no longer pending; it starts once.
func TestConcurrentApprovals(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia := e.Principal(t, "sophia")
	e.assign(t, e.Principal(t, "emma"), "privileged-role-administrator", "/", "active")
	id := e.requestUserAdmin(t, "sophia", 0)

	approvers := []string{e.bearer(t, "perparim"), e.bearer(t, "emma")}
	reqs := make([]request, 50)
	for i := range reqs {
		reqs[i] = request{"POST", "/v1/activations/" + id + "/approve", approvers[i%2], map[string]any{"justification": fmt.Sprintf("Approval %d", i)}}
	}
	answers := race(t, e, reqs)
	var winner map[string]any
	for i, r := range answers {
		switch {
		case r.Status == http.StatusOK:
			winner = r.Body
		case r.Status == http.StatusConflict && r.Body["code"] == "conflict",
			r.Status == http.StatusForbidden && r.Body["code"] == "policy_denied":
		default:
			t.Errorf("approval %d: %s", i, r)
		}
	}
	if n := tally(answers); n["200"] != 1 {
		t.Fatalf("answers %v, want exactly one 200", n)
	}
	if winner["status"] != "active" || len(winner["approvals"].([]any)) != 1 {
		t.Fatalf("the approval answered %v", winner)
	}

	got := e.call(t, "GET", "/v1/activations/"+id, "sophia", nil).Want(t, 200)
	if got["status"] != "active" || len(got["approvals"].([]any)) != 1 {
		t.Fatalf("activation %v", got)
	}
	if _, active, pending := e.myRoles(t, e.bearer(t, "sophia")); len(active) != 1 || active[0] != "user-administrator@/" || len(pending) != 0 {
		t.Fatalf("Sophia's active %v pending %v", active, pending)
	}
	if live := e.liveOf(t, sophia, "user-administrator"); len(live) != 1 || live[0] != id {
		t.Fatalf("live activations %v", live)
	}
	events := e.events(t, q("principal", sophia))
	if a, b := count(events, "activation.activated", id), count(events, "activation.approved", id); a != 1 || b != 1 {
		t.Fatalf("%d activated and %d approved events, want 1 and 1", a, b)
	}
	if !e.allowed(t, sophia, "users.create", "/") {
		t.Fatal("Sophia is not allowed after the approval")
	}
}

// Approvals, denials and the requester's cancellation of one request at
// once: exactly one decides it, and the outcome is the winner's.
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia := e.Principal(t, "sophia")
	e.assign(t, e.Principal(t, "emma"), "privileged-role-administrator", "/", "active")
	id := e.requestUserAdmin(t, "sophia", 0)

	var reqs []request
	for i := range 15 {
		reqs = append(reqs,
			request{"POST", "/v1/activations/" + id + "/approve", e.bearer(t, "perparim"), map[string]any{"justification": fmt.Sprintf("Yes %d", i)}},
			request{"POST", "/v1/activations/" + id + "/deny", e.bearer(t, "emma"), map[string]any{"justification": fmt.Sprintf("No %d", i)}},
			request{"POST", "/v1/activations/" + id + "/cancel", e.bearer(t, "sophia"), nil})
	}
	answers := race(t, e, reqs)
	var outcome any
	for i, r := range answers {
		switch {
		case r.Status == http.StatusOK:
			outcome = r.Body["status"]
		case r.Status == http.StatusConflict && r.Body["code"] == "conflict":
		default:
			t.Errorf("request %d (%s): %s", i, reqs[i].path, r)
		}
	}
	if n := tally(answers); n["200"] != 1 {
		t.Fatalf("answers %v, want exactly one 200", n)
	}
	got := e.call(t, "GET", "/v1/activations/"+id, "sophia", nil).Want(t, 200)
	if got["status"] != outcome {
		t.Fatalf("stored status %v, the winner answered %v", got["status"], outcome)
	}
	events := e.events(t, q("principal", sophia))
	decided := count(events, "activation.approved", id) + count(events, "activation.denied", id) + count(events, "activation.cancelled", id)
	activated := count(events, "activation.activated", id)
	if decided != 1 || activated != map[any]int{"active": 1}[outcome] {
		t.Fatalf("%d decision and %d activated events for outcome %v", decided, activated, outcome)
	}
	if e.allowed(t, sophia, "users.create", "/") != (outcome == "active") {
		t.Fatalf("access does not follow the outcome %v", outcome)
	}
}

// 20 activations of one role by one principal at once: one elevation.
func TestConcurrentActivations(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "test-role", "/", "eligible")
	reqs := make([]request, 20)
	for i := range reqs {
		reqs[i] = request{"POST", "/v1/activations", e.bearer(t, "alex"), map[string]any{"role": "test-role"}}
	}
	answers := race(t, e, reqs)
	var created string
	for i, r := range answers {
		switch {
		case r.Status == http.StatusCreated:
			created, _ = r.Body["id"].(string)
		case !refusedAsDuplicate(r):
			t.Errorf("activation %d: %s", i, r)
		}
	}
	if n := tally(answers); n["201"] != 1 {
		t.Fatalf("answers %v, want exactly one 201", n)
	}
	if live := e.liveOf(t, alex, "test-role"); len(live) != 1 || live[0] != created {
		t.Fatalf("live activations %v, want [%s]", live, created)
	}
	if all := list(t, e.call(t, "GET", "/v1/activations", "alex", nil).Want(t, 200), "activations"); len(all) != 1 {
		t.Fatalf("%d activations stored, want 1: %v", len(all), all)
	}
	if _, active, _ := e.myRoles(t, e.bearer(t, "alex")); len(active) != 1 {
		t.Fatalf("Alex's active roles %v", active)
	}
	if n := count(e.events(t, q("principal", alex)), "activation.activated", ""); n != 1 {
		t.Fatalf("%d activated events, want 1", n)
	}
}

// Two activations of a role that needs MFA, each with its own valid code,
// at once: one elevation. Repeated on fresh servers, as each principal has
// two codes to give per server.
func TestConcurrentActivationsWithMFA(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)
	for round := range 3 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			e := startEnv(t, r, envOptions{})
			perparim := e.Principal(t, "perparim")
			reqs := make([]request, 2)
			for i := range reqs {
				reqs[i] = request{"POST", "/v1/activations", e.bearer(t, "perparim"), map[string]any{
					"role": "application-administrator", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "perparim", i)},
				}}
			}
			answers := race(t, e, reqs)
			if answers[0].Status == answers[1].Status {
				t.Fatalf("answers %s and %s, want one 201", answers[0], answers[1])
			}
			for i, a := range answers {
				if a.Status != http.StatusCreated && !refusedAsDuplicate(a) {
					t.Fatalf("activation %d: %s", i, a)
				}
			}
			if live := e.liveOf(t, perparim, "application-administrator"); len(live) != 1 {
				t.Fatalf("live activations %v", live)
			}
			if n := count(e.events(t, q("principal", perparim)), "activation.activated", ""); n != 1 {
				t.Fatalf("%d activated events", n)
			}
		})
	}
}

// One TOTP code in ten activations at once is accepted once. The others are
// refused as replays, or, when more than the lockout's count of attempts are
// in flight together, as busy: attempts are counted before the code is
// looked at, so that concurrent guesses cannot all pass the count. None is
// a wrong code, so none is audited as mfa.failed or called a lockout.
func TestConcurrentTOTPReplay(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	sophia := e.Principal(t, "sophia")
	body := map[string]any{"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "sophia", 0)}}
	reqs := make([]request, 10)
	for i := range reqs {
		reqs[i] = request{"POST", "/v1/activations", e.bearer(t, "sophia"), body}
	}
	answers := race(t, e, reqs)
	for i, r := range answers {
		if r.Status == http.StatusAccepted {
			continue
		}
		if r.Status != http.StatusForbidden || r.Body["code"] != "policy_denied" ||
			!strings.Contains(r.Raw, "already used") && !strings.Contains(r.Raw, "being checked at once") {
			t.Errorf("activation %d: %s", i, r)
		}
	}
	if n := tally(answers); n["202"] != 1 || n["403 policy_denied"] != 9 {
		t.Fatalf("answers %v, want one 202 and nine 403", n)
	}
	if all := list(t, e.call(t, "GET", "/v1/activations", "sophia", nil).Want(t, 200), "activations"); len(all) != 1 {
		t.Fatalf("%d activations stored, want 1", len(all))
	}
	if n := len(e.events(t, q("principal", sophia, "type", "mfa.failed"))); n != 0 {
		t.Fatalf("%d mfa.failed events, want 0", n)
	}
}

// Removing an assignment while its principal activates it never leaves a
// live elevation behind: the activation is refused, or made and revoked.
// (Unfixed, most runs of 20 rounds hit the race.)
func TestConcurrentRevocation(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	for round := range 20 {
		asg := e.assign(t, alex, "test-role", "/", "eligible")
		reqs := []request{{"DELETE", "/v1/assignments/" + asg, e.bearer(t, "perparim"), nil}}
		for range 5 {
			reqs = append(reqs, request{"POST", "/v1/activations", e.bearer(t, "alex"), map[string]any{"role": "test-role"}})
		}
		answers := race(t, e, reqs)
		if answers[0].Status != http.StatusOK {
			t.Fatalf("round %d: delete answered %s", round, answers[0])
		}
		for i, r := range answers[1:] {
			switch {
			case r.Status == http.StatusCreated, refusedAsDuplicate(r):
			case r.Status == http.StatusForbidden && r.Body["code"] == "policy_denied" && strings.Contains(r.Raw, "no eligible assignment"):
			case r.Status == http.StatusNotFound && r.Body["code"] == "not_found":
			default:
				t.Errorf("round %d, activation %d: %s", round, i, r)
			}
		}
		if live := e.liveOf(t, alex, "test-role"); len(live) != 0 {
			t.Fatalf("round %d: live without an assignment: %v (delete answered %s)", round, live, answers[0].Raw)
		}
		if e.allowed(t, alex, "test.run", "/") {
			t.Fatalf("round %d: allowed without an assignment", round)
		}
	}
}

// Ten extensions of one elevation at once: each one answered 200 moved the
// end by its 30 minutes, none is lost, and each is audited once.
func TestConcurrentExtensions(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	alex := e.Principal(t, "alex")
	e.assign(t, alex, "test-role", "/", "eligible")
	act := e.call(t, "POST", "/v1/activations", "alex", map[string]any{"role": "test-role", "duration": "1h"}).Want(t, 201)
	id := act["id"].(string)
	end := parseTime(t, act["expires_at"])
	reqs := make([]request, 10)
	for i := range reqs {
		reqs[i] = request{"POST", "/v1/activations/" + id + "/extend", e.bearer(t, "alex"), map[string]any{"duration": "30m"}}
	}
	extended := 0
	for i, r := range race(t, e, reqs) {
		switch {
		case r.Status == http.StatusOK:
			extended++
		case r.Status == http.StatusConflict && r.Body["code"] == "conflict":
		default:
			t.Errorf("extension %d: %s", i, r)
		}
	}
	if extended == 0 {
		t.Fatal("no extension went through")
	}
	got := e.call(t, "GET", "/v1/activations/"+id, "alex", nil).Want(t, 200)
	if moved := parseTime(t, got["expires_at"]).Sub(end); moved != time.Duration(extended)*30*time.Minute {
		t.Fatalf("%d extensions answered 200 but the end moved by %s", extended, moved)
	}
	if n := count(e.events(t, q("principal", alex)), "activation.extended", id); n != extended {
		t.Fatalf("%d extended events for %d extensions", n, extended)
	}
}

// Ten deletions of one assignment at once: one deletes it, the others find
// nothing, and it is audited once.
func TestConcurrentDeletes(t *testing.T) {
	t.Parallel()
	e := startEnv(t, harness.Redis(t), envOptions{})
	asg := e.assign(t, e.Principal(t, "alex"), "test-role", "/", "eligible")
	reqs := make([]request, 10)
	for i := range reqs {
		reqs[i] = request{"DELETE", "/v1/assignments/" + asg, e.bearer(t, "perparim"), nil}
	}
	answers := race(t, e, reqs)
	if n := tally(answers); n["200"] != 1 || n["404 not_found"] != 9 {
		t.Fatalf("answers %v, want one 200 and nine 404 not_found", n)
	}
	if n := count(e.events(t, ""), "assignment.removed", ""); n != 1 {
		t.Fatalf("%d removed events, want 1", n)
	}
}

// Sixty wrong TOTP codes at once are no more guesses than five one after
// the other: at most five are checked, the rest refused as locked (or busy,
// while the first five are still being checked), and then the right code is
// refused too. (Unfixed, about half the rounds show it.)
func TestConcurrentTOTPGuesses(t *testing.T) {
	t.Parallel()
	r := harness.Redis(t)
	for round := range 4 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			e := startEnv(t, r, envOptions{})
			var reqs []request
			for _, code := range wrongCodes(t, e.secret(t, "sophia"), 60) {
				reqs = append(reqs, request{"POST", "/v1/activations", e.bearer(t, "sophia"), map[string]any{
					"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": code},
				}})
			}
			checked := 0
			for i, r := range race(t, e, reqs) {
				switch {
				case r.Status == http.StatusForbidden && strings.Contains(r.Raw, "TOTP code is wrong"):
					checked++
				case r.Status == http.StatusForbidden && strings.Contains(r.Raw, "wrong TOTP codes: TOTP is locked"),
					r.Status == http.StatusForbidden && strings.Contains(r.Raw, "being checked at once"):
				default:
					t.Errorf("guess %d: %s", i, r)
				}
			}
			if checked > maxTOTPFailures {
				t.Errorf("%d of 60 concurrent guesses were checked, want at most %d", checked, maxTOTPFailures)
			}
			r := e.call(t, "POST", "/v1/activations", "sophia", map[string]any{
				"role": "user-administrator", "justification": why, "mfa": map[string]any{"totp": e.TOTP(t, "sophia", 0)},
			})
			wantViolation(t, wantError(t, r, 403, "policy_denied"), "wrong TOTP codes: TOTP is locked")
		})
	}
}
