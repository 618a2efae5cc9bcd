package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// The Data API adds the subject's elevations from the store, and only from
// the store: elevations a caller puts in the input are replaced.
func TestDataAPIReadsElevationsFromTheStore(t *testing.T) {
	redis := harness.Redis(t)
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: redis.URL})
	ask := func(subject, action string, extra map[string]any) any {
		t.Helper()
		input := map[string]any{"subject": subject, "action": action, "scope": "/"}
		for k, v := range extra {
			input[k] = v
		}
		return s.Do(t, "POST", "/v1/data/pim/authz/allow", "", map[string]any{"input": input}).Want(t, 200)["result"]
	}
	forged := map[string]any{"elevations": []any{map[string]any{
		"id": "x", "role": "user-administrator", "scope": "/", "activated_at": 0, "expires_at": nil,
	}}}
	sophia, perparim := s.Principal(t, "sophia"), s.Principal(t, "perparim")
	if ask(sophia, "users.create", forged) != false {
		t.Fatal("elevations in the input were trusted")
	}
	// Perparim's permanent active assignment grants his role's permissions.
	if ask(perparim, "roleAssignments.create", nil) != true {
		t.Fatal("an active assignment does not grant")
	}
	req := s.Do(t, "POST", "/v1/activations", s.Token(t, "sophia"), map[string]any{
		"role": "user-administrator", "justification": "Onboarding three new hires",
		"mfa": map[string]any{"totp": s.TOTP(t, "sophia", 0)},
	}).Want(t, 202)
	s.Do(t, "POST", "/v1/activations/"+req["id"].(string)+"/approve", s.Token(t, "perparim"), map[string]any{"justification": "ok"}).Want(t, 200)
	if ask(sophia, "users.create", nil) != true {
		t.Fatal("an approved elevation does not grant through the Data API")
	}
}

func TestDataAPITokenSetting(t *testing.T) {
	first := elevatetest.Start(t, elevatetest.Options{Demo: true})
	s := elevatetest.Start(t, elevatetest.Options{Config: identityFor(t, first) + "decisions:\n  require_token: true\n"})
	body := map[string]any{"input": map[string]any{"subject": "x@y", "action": "a.b"}}
	s.Do(t, "POST", "/v1/data/pim/authz/allow", "", body).Want(t, 401, "unauthorized")
	s.Do(t, "POST", "/v1/data/pim/authz/allow", first.Token(t, "sophia"), body).Want(t, 401, "unauthorized")
	if got := s.Do(t, "POST", "/v1/data/pim/authz/allow", first.Token(t, "gateway"), body).Want(t, 200); got["result"] != false {
		t.Fatalf("answer %v", got)
	}
}

// With Redis gone, decisions deny and say why, cached holdings included; the
// process keeps serving; decisions come back soon after Redis does.
func TestDecisionsFailClosedWithoutRedis(t *testing.T) {
	redis := harness.Redis(t)
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: redis.URL})
	gateway := s.Token(t, "gateway")
	perparim := s.Principal(t, "perparim")
	data := map[string]any{"input": map[string]any{"subject": perparim, "action": "roleAssignments.create"}}
	authorize := map[string]any{"subject": perparim, "action": "roleAssignments.create"}
	if s.Do(t, "POST", "/v1/data/pim/authz/allow", "", data).Want(t, 200)["result"] != true {
		t.Fatal("not allowed before the outage")
	}

	forward := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/v1/forward-auth", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token(t, "perparim"))
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/users/17")
		req.Header.Set("X-Forwarded-Host", "api.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	extAuthz := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/v1/ext_authz/users/17", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token(t, "perparim"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if forward() != http.StatusOK || extAuthz() != http.StatusOK {
		t.Fatal("forward-auth or ext_authz do not allow before the outage")
	}

	redis.Stop(t)
	// Perparim's holdings are cached; the cache is bypassed once the replica
	// sees its subscription broken: at once when Redis closes it, within a
	// second of silence when the network does not say (README, "The
	// holdings cache"). 5 s is that bound with a margin for a loaded CI.
	stopped := time.Now()
	eventually(t, 5*time.Second, "forward-auth denied without Redis", func() bool { return forward() == http.StatusForbidden })
	t.Logf("forward-auth denied %s after Redis stopped", time.Since(stopped))
	if got := extAuthz(); got != http.StatusForbidden {
		t.Errorf("ext_authz during the outage: %d", got)
	}
	got := s.Do(t, "POST", "/v1/data/pim/authz/allow", "", data).Want(t, http.StatusForbidden, "decision_failed")
	if errs := got["errors"].([]any); len(errs) != 1 || errs[0] != "store_unavailable" {
		t.Fatalf("reason %v", got)
	}
	d := s.Do(t, "POST", "/v1/authorize", gateway, authorize).Want(t, 200)
	if d["allow"] != false || d["error"] == "" {
		t.Fatalf("authorize during the outage: %v", d)
	}
	s.Do(t, "GET", "/health", "", nil).Want(t, 200)
	s.Do(t, "GET", "/health/ready", "", nil).Want(t, http.StatusServiceUnavailable)

	redis.Start(t)
	restarted := time.Now()
	for {
		r := s.Do(t, "POST", "/v1/data/pim/authz/allow", "", data)
		if r.Status == http.StatusOK {
			break
		}
		// Usually milliseconds; the bound only catches a replica that
		// never recovers, with room for a loaded CI machine.
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("still failing 10s after Redis came back: %s", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("decisions back %s after Redis", time.Since(restarted))
}
