package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

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

// Outside demo mode, with nothing said about decisions.require_token, every
// decision endpoint answers only a decision client presenting its token in
// its own place; a user's token is never one. An explicit false opens them.
func TestDecisionEndpointsClosedByDefault(t *testing.T) {
	first := elevatetest.Start(t, elevatetest.Options{Demo: true})
	closed := elevatetest.Start(t, elevatetest.Options{Config: identityFor(t, first)})
	opened := elevatetest.Start(t, elevatetest.Options{Config: identityFor(t, first) + "decisions:\n  require_token: false\n"})
	user, gateway := first.Token(t, "perparim"), first.Token(t, "gateway")

	data := map[string]any{"input": map[string]any{"subject": "x@y", "action": "a.b"}}
	closed.Do(t, "POST", "/v1/data/pim/authz/allow", "", data).Want(t, 401, "unauthorized")
	closed.Do(t, "POST", "/v1/data/pim/authz/allow", user, data).Want(t, 401, "unauthorized")
	closed.Do(t, "POST", "/v1/data/pim/authz/allow", gateway, data).Want(t, 200)
	opened.Do(t, "POST", "/v1/data/pim/authz/allow", "", data).Want(t, 200)

	// Forward-auth and ext_authz HTTP: the end user's token in
	// Authorization, the gateway's in X-Elevate-Client-Token. A refusal
	// names unauthenticated_client; a decision (here a policy's denial,
	// there being no assignments) does not.
	refused := func(s *elevatetest.Server, path, clientToken string) bool {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+user)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/users/17")
		req.Header.Set("X-Forwarded-Host", "api.example")
		if clientToken != "" {
			req.Header.Set("X-Elevate-Client-Token", clientToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return false
		}
		return strings.Contains(string(b), "unauthenticated_client")
	}
	check := func(s *elevatetest.Server, md ...string) bool {
		t.Helper()
		conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx := metadata.AppendToOutgoingContext(context.Background(), md...)
		resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/users/17", Host: "api.example",
				Headers: map[string]string{"authorization": "Bearer " + user},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(resp.GetDeniedResponse().GetBody(), "unauthenticated_client")
	}
	for _, path := range []string{"/v1/forward-auth", "/v1/ext_authz/users/17"} {
		if !refused(closed, path, "") {
			t.Errorf("%s answered a gateway without a token", path)
		}
		if !refused(closed, path, user) {
			t.Errorf("%s took a user's token as a decision client's", path)
		}
		if refused(closed, path, gateway) {
			t.Errorf("%s refused the decision client", path)
		}
		if refused(opened, path, "") {
			t.Errorf("%s is not opened by require_token: false", path)
		}
	}
	if !check(closed) {
		t.Error("gRPC Check answered a gateway without a token")
	}
	if !check(closed, "authorization", "Bearer "+user) {
		t.Error("gRPC Check took a user's token as a decision client's")
	}
	if check(closed, "authorization", "Bearer "+gateway) {
		t.Error("gRPC Check refused the decision client")
	}
	if check(opened) {
		t.Error("gRPC Check is not opened by require_token: false")
	}
}

// Through the running server: forward-auth reads both families of
// forwarded headers (X-Forwarded-*, X-Original-*) and refuses, as a failed
// decision, a request where they disagree or one is given twice, so a
// client cannot smuggle in the family its gateway does not set. The same
// request with agreeing headers is allowed, so the refusals are the
// disagreement's.
func TestForwardAuthForwardedHeadersMustAgree(t *testing.T) {
	s := elevatetest.Start(t, elevatetest.Options{Demo: true})
	token := s.Token(t, "perparim")
	tests := map[string]struct {
		headers [][2]string
		allowed bool
	}{
		"one family":     {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/users/17"}}, true},
		"both agreeing":  {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Original-Method", "GET"}, {"X-Forwarded-Uri", "/users/17"}, {"X-Original-Uri", "/users/17"}}, true},
		"methods differ": {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Original-Method", "DELETE"}, {"X-Forwarded-Uri", "/users/17"}}, false},
		"URIs differ":    {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/users/17"}, {"X-Original-Uri", "/users"}}, false},
		"a URI twice":    {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/users/17"}, {"X-Forwarded-Uri", "/devices"}}, false},
		"a method twice": {[][2]string{{"X-Original-Method", "GET"}, {"X-Original-Method", "POST"}, {"X-Original-Uri", "/users/17"}}, false},
		"hosts disagree": {[][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Uri", "/users/17"}, {"X-Forwarded-Host", "other.example"}}, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.URL+"/v1/forward-auth", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("X-Forwarded-Host", "api.example")
			for _, h := range tc.headers {
				req.Header.Add(h[0], h[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if tc.allowed {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%d %s, want 200", resp.StatusCode, raw)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(raw), `"bad_input"`) {
				t.Fatalf("%d %s, want 403 bad_input", resp.StatusCode, raw)
			}
		})
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
	// error is omitempty: absent must fail, not read as "". The reason is
	// the other endpoints' word for it.
	if e, ok := d["error"].(string); d["allow"] != false || !ok || e != "store_unavailable" {
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
