package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// spin is a rule of 25 million comprehension steps: far past any deadline
// of a few milliseconds, and checked for cancellation at every step, so an
// evaluation of it stops at its deadline rather than when it is done.
const spin = "package slow\n\nspin := count([1 | some i in numbers.range(1, 5000); some j in numbers.range(1, 5000); i != j])\n"

// gatewayPolicies answer every endpoint's built-in query: each from the
// given expression.
func gatewayPolicies(t *testing.T, expr string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"slow.rego":    spin,
		"authz.rego":   "package pim.authz\n\ndecision := {\"allow\": " + expr + ", \"reason\": \"test\"}\n",
		"gateway.rego": "package pim.gateway\n\ndecision := {\"allow\": " + expr + ", \"reason\": \"test\"}\n",
		"envoy.rego":   "package envoy.authz\n\nallow := " + expr + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	failuresUser  = "alice@example.com"
	failuresToken = "elv_failures_test_user_token"
)

// startForFailures runs Elevate over real Redis with the policies in dir,
// decision logs uploaded to logs, gateways trusted to name the subject in
// X-User, and a user token for /v1/authorize; extra are more config
// sections.
func startForFailures(t *testing.T, dir string, logs *collector, extra map[string]any) *elevatetest.Server {
	t.Helper()
	sections := decisionLogSections(logs)
	sections["decisions"] = map[string]any{"require_token": false, "subject_header": "X-User"}
	sections["identity"] = map[string]any{"static_tokens": []any{map[string]any{
		"name": failuresUser, "kind": "user", "sha256": identity.HashToken(failuresToken),
	}}}
	for k, v := range extra {
		sections[k] = v
	}
	redis := harness.Redis(t)
	return elevatetest.Start(t, elevatetest.Options{RedisURL: redis.URL, Config: opaConfig(t, sections), Args: []string{dir}})
}

// answer is one endpoint's reply to a failed decision: its decision id and
// the reason it gave.
type answer struct {
	status int
	id     string
	reason string
	raw    string
}

// httpAnswer sends req and reads the reason as forward-auth and the Data
// API give it (the first of errors) or ext_authz HTTP does (its header).
func httpAnswer(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, id: resp.Header.Get("X-Elevate-Decision-Id"), raw: string(raw)}
	var body struct {
		DecisionID string   `json:"decision_id"`
		Errors     []string `json:"errors"`
		Reason     string   `json:"reason"`
	}
	_ = json.Unmarshal(raw, &body)
	if a.id == "" {
		a.id = body.DecisionID
	}
	switch {
	case resp.Header.Get("X-Elevate-Decision-Failed") != "":
		a.reason = resp.Header.Get("X-Elevate-Decision-Failed")
	case len(body.Errors) > 0:
		a.reason = body.Errors[0]
	}
	return a
}

// grpcAnswer sends a Check for the request and reads its denial.
func grpcAnswer(t *testing.T, s *elevatetest.Server, h *authv3.AttributeContext_HttpRequest) answer {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: h},
	}})
	if err != nil {
		t.Fatal(err)
	}
	headers := resp.GetOkResponse().GetHeaders()
	if d := resp.GetDeniedResponse(); d != nil {
		headers = d.GetHeaders()
	}
	a := answer{status: int(resp.GetStatus().GetCode()), raw: resp.String()}
	for _, hv := range headers {
		switch hv.GetHeader().GetKey() {
		case "x-elevate-decision-id":
			a.id = hv.GetHeader().GetValue()
		case "x-elevate-decision-failed":
			a.reason = hv.GetHeader().GetValue()
		}
	}
	return a
}

// gatewayRequests are one request of each gateway protocol for path, from
// the subject: forward-auth, ext_authz HTTP and gRPC Check.
func gatewayRequests(t *testing.T, s *elevatetest.Server, path string) map[string]func() answer {
	return map[string]func() answer{
		"forward-auth": func() answer {
			req, _ := http.NewRequest("GET", s.URL+"/v1/forward-auth", nil)
			req.Header.Set("X-User", failuresUser)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", path)
			req.Header.Set("X-Forwarded-Host", "api.example")
			return httpAnswer(t, req)
		},
		"ext_authz_http": func() answer {
			req, err := http.NewRequest("GET", s.URL+"/v1/ext_authz"+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-User", failuresUser)
			return httpAnswer(t, req)
		},
		"ext_authz_grpc": func() answer {
			return grpcAnswer(t, s, &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: path, Host: "api.example", Headers: map[string]string{"x-user": failuresUser},
			})
		},
	}
}

// An evaluation past policy.eval_timeout is reported as policy_timeout, the
// decision package's reason, by every endpoint (POST /v1/authorize, the
// Data API, forward-auth, ext_authz HTTP and gRPC Check), counted under
// that reason in /metrics; and, for every endpoint but /v1/authorize (its
// decisions do not reach the decision-log plugin yet), uploaded to the
// decision log with the reason as its error's code.
func TestPolicyTimeoutOnEveryEndpoint(t *testing.T) {
	logs := newCollector(t)
	s := startForFailures(t, gatewayPolicies(t, "data.slow.spin > 0"), logs,
		map[string]any{"policy": map[string]any{"eval_timeout": "1ms"}})

	asks := gatewayRequests(t, s, "/users/17")
	asks["data"] = func() answer {
		req, _ := http.NewRequest("POST", s.URL+"/v1/data/pim/authz/decision",
			strings.NewReader(`{"input":{"subject":"`+failuresUser+`","action":"users.read"}}`))
		req.Header.Set("Content-Type", "application/json")
		return httpAnswer(t, req)
	}
	asks["authorize"] = func() answer {
		r := s.Do(t, "POST", "/v1/authorize", failuresToken, map[string]any{"action": "users.read"})
		a := answer{status: r.Status, raw: r.Raw}
		a.id, _ = r.Body["decision_id"].(string)
		// error is omitempty: absent is not "policy_timeout".
		a.reason, _ = r.Body["error"].(string)
		if r.Body["allow"] != false {
			t.Errorf("authorize: allow is %v, want false: %s", r.Body["allow"], r.Raw)
		}
		return a
	}
	for endpoint, ask := range asks {
		t.Run(endpoint, func(t *testing.T) {
			a := ask()
			if a.reason != "policy_timeout" || a.id == "" {
				t.Fatalf("answered %d, reason %q, decision id %q, want policy_timeout: %s", a.status, a.reason, a.id, a.raw)
			}
			if n := metric(t, s, "elevate_decisions_failed_closed_total", "endpoint", endpoint, "reason", "policy_timeout"); n != 1 {
				t.Errorf("elevate_decisions_failed_closed_total{endpoint=%q,reason=\"policy_timeout\"} = %v, want 1", endpoint, n)
			}
			if n := metric(t, s, "elevate_decisions_total", "endpoint", endpoint, "outcome", "failed"); n != 1 {
				t.Errorf("elevate_decisions_total{endpoint=%q,outcome=\"failed\"} = %v, want 1", endpoint, n)
			}
			if endpoint == "authorize" {
				return
			}
			ev := uploaded(t, logs, a.id)
			e, _ := ev["error"].(map[string]any)
			if msg, _ := e["message"].(string); e["code"] != "policy_timeout" || msg == "" || ev["result"] != nil {
				t.Errorf("the decision log's event has no policy_timeout error, or a result: %v", ev)
			}
		})
	}
}

// A request a gateway protocol cannot read in only one way (an escaped "/"
// in the original path) is refused as bad_input on forward-auth, ext_authz
// HTTP and gRPC Check, counted in /metrics under that reason and uploaded
// to the decision log with the reason as its error's code. The same request with a plain path is decided
// (allowed), so the refusal is the path's.
func TestBadInputRefusalsRecordedOnEveryProtocol(t *testing.T) {
	logs := newCollector(t)
	s := startForFailures(t, gatewayPolicies(t, "true"), logs, nil)

	plain, ambiguous := gatewayRequests(t, s, "/users/17"), gatewayRequests(t, s, "/users%2F17")
	for protocol, ask := range ambiguous {
		t.Run(protocol, func(t *testing.T) {
			if a := plain[protocol](); a.reason != "" || a.id == "" {
				t.Fatalf("the plain path: answered %d, reason %q, decision id %q, want a decision: %s", a.status, a.reason, a.id, a.raw)
			}
			a := ask()
			if a.reason != "bad_input" || a.id == "" {
				t.Fatalf("answered %d, reason %q, decision id %q, want bad_input: %s", a.status, a.reason, a.id, a.raw)
			}
			if n := metric(t, s, "elevate_decisions_failed_closed_total", "endpoint", protocol, "reason", "bad_input"); n != 1 {
				t.Errorf("elevate_decisions_failed_closed_total{endpoint=%q,reason=\"bad_input\"} = %v, want 1", protocol, n)
			}
			if n := metric(t, s, "elevate_decisions_total", "endpoint", protocol, "outcome", "failed"); n != 1 {
				t.Errorf("elevate_decisions_total{endpoint=%q,outcome=\"failed\"} = %v, want 1", protocol, n)
			}
			ev := uploaded(t, logs, a.id)
			e, _ := ev["error"].(map[string]any)
			if msg, _ := e["message"].(string); e["code"] != "bad_input" || msg == "" || ev["result"] != nil {
				t.Errorf("the decision log's event has no bad_input error, or a result: %v", ev)
			}
		})
	}
}
