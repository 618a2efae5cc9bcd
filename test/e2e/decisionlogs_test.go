package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/elevatepdp/elevate/test/elevatetest"
)

// decisionLogSections configure OPA's decision-log plugin to upload to c.
func decisionLogSections(c *collector) map[string]any {
	return map[string]any{
		"services": map[string]any{"logs": map[string]any{"url": c.URL}},
		"decision_logs": map[string]any{
			"service":   "logs",
			"reporting": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
		},
	}
}

// grpcDecision sends a CheckRequest and returns its decision id.
func grpcDecision(t *testing.T, s *elevatetest.Server, h *authv3.AttributeContext_HttpRequest) string {
	t.Helper()
	a := grpcAnswer(t, s, h)
	if a.id == "" {
		t.Fatalf("no decision id in %s", a.raw)
	}
	return a.id
}

// httpDecision sends req and returns the decision id Elevate answered.
func httpDecision(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Elevate-Decision-Id")
	if id == "" {
		t.Fatalf("no decision id (%d)", resp.StatusCode)
	}
	return id
}

// uploaded waits for the decision's event at the collector.
func uploaded(t *testing.T, c *collector, id string) map[string]any {
	t.Helper()
	var ev map[string]any
	eventually(t, 10*time.Second, "decision "+id+" uploaded", func() bool {
		ev = c.event(id)
		return ev != nil
	})
	return ev
}

// loggedHeaders are the event's input.attributes.request.http.headers.
func loggedHeaders(t *testing.T, ev map[string]any) map[string]any {
	t.Helper()
	in, _ := ev["input"].(map[string]any)
	attrs, _ := in["attributes"].(map[string]any)
	req, _ := attrs["request"].(map[string]any)
	h, _ := req["http"].(map[string]any)
	headers, ok := h["headers"].(map[string]any)
	if !ok {
		t.Fatalf("event has no input.attributes.request.http.headers: %v", ev)
	}
	return headers
}

// With decision_logs configured and no mask rule in the policy, no
// decision-log event of any endpoint carries a credential: the built-in
// mask replaces Authorization, Proxy-Authorization, Cookie and Set-Cookie.
func TestDecisionLogMasksTokens(t *testing.T) {
	logs := newCollector(t)
	sections := decisionLogSections(logs)
	sections["decisions"] = map[string]any{"require_token": false, "subject_header": "X-User"}
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, Config: opaConfig(t, sections)})
	token := s.Token(t, "perparim")
	const cookie, proxy, setCookie = "session=cookie-secret", "Basic cHJveHktc2VjcmV0", "id=set-cookie-secret"
	const inQuery, inSubjectHeader = "query-token-secret", "subject-header-secret"
	secrets := []string{token, "cookie-secret", "cHJveHktc2VjcmV0", "set-cookie-secret", inQuery, inSubjectHeader}

	ids := map[string]string{}
	ids["grpc"] = grpcDecision(t, s, &authv3.AttributeContext_HttpRequest{
		Method: "GET", Path: "/users/17?access_token=" + inQuery, Host: "api.example",
		Headers: map[string]string{
			"authorization": "Bearer " + token, "cookie": cookie, "proxy-authorization": proxy, "set-cookie": setCookie,
			"accept": "text/plain", "x-user": inSubjectHeader, ":path": "/users/17?access_token=" + inQuery,
		},
	})
	ids["grpc header_map"] = grpcDecision(t, s, &authv3.AttributeContext_HttpRequest{
		Method: "GET", Path: "/users/17", Host: "api.example",
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "authorization", RawValue: []byte("Bearer " + token)}, {Key: "cookie", Value: cookie},
		}},
	})
	req, _ := http.NewRequest("GET", s.URL+"/v1/ext_authz/users/17?access_token="+inQuery, nil)
	req.Header.Set("X-User", inSubjectHeader)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Proxy-Authorization", proxy)
	req.Header.Set("Set-Cookie", setCookie)
	req.Header.Set("Accept", "text/plain")
	ids["http"] = httpDecision(t, req)
	req, _ = http.NewRequest("GET", s.URL+"/v1/forward-auth", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/users/17?access_token="+inQuery)
	req.Header.Set("X-Forwarded-Host", "api.example")
	ids["forward-auth"] = httpDecision(t, req)
	body := s.Do(t, "POST", "/v1/data/envoy/authz/allow", "", map[string]any{"input": map[string]any{
		"attributes": map[string]any{"request": map[string]any{"http": map[string]any{
			"method": "GET", "path": "/users/17",
			"headers": map[string]any{"authorization": "Bearer " + token, "cookie": cookie},
		}}},
	}}).Want(t, 200)
	ids["data"], _ = body["decision_id"].(string)

	for endpoint, id := range ids {
		ev := uploaded(t, logs, id)
		raw, _ := json.Marshal(ev)
		for _, secret := range secrets {
			if strings.Contains(string(raw), secret) {
				t.Errorf("%s: the decision log carries a credential: %s", endpoint, raw)
			}
		}
		switch endpoint {
		case "grpc", "http":
			h := loggedHeaders(t, ev)
			want := map[string]any{
				"authorization": "Bearer <masked>", "cookie": "<masked>", "proxy-authorization": "Basic <masked>",
				"set-cookie": "<masked>", "accept": "text/plain", "x-user": "<masked>",
			}
			for k, v := range want {
				if got, ok := h[k]; !ok || got != v {
					t.Errorf("%s: logged %s = %v (present %v), want %v", endpoint, k, got, ok, v)
				}
			}
		case "data":
			if h := loggedHeaders(t, ev); h["authorization"] != "Bearer <masked>" {
				t.Errorf("data: logged authorization = %v", h["authorization"])
			}
		}
	}
}

// A policy that defines data.system.log.mask replaces the built-in mask,
// as in OPA: its rule alone applies.
func TestDecisionLogOperatorMaskReplacesBuiltin(t *testing.T) {
	logs := newCollector(t)
	dir := t.TempDir()
	files := map[string]string{
		"authz.rego": "package envoy.authz\n\ndefault allow := true\n",
		"log.rego": `package system.log

mask contains {"op": "upsert", "path": "/input/attributes/request/http/headers/authorization", "value": "operator"}
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := elevatetest.Start(t, elevatetest.Options{Args: []string{dir}, Config: opaConfig(t, decisionLogSections(logs))})
	id := grpcDecision(t, s, &authv3.AttributeContext_HttpRequest{
		Method: "GET", Path: "/x", Host: "api.example",
		Headers: map[string]string{"authorization": "Bearer elv_secret", "cookie": "c=1"},
	})
	h := loggedHeaders(t, uploaded(t, logs, id))
	if h["authorization"] != "operator" || h["cookie"] != "c=1" {
		t.Fatalf("logged headers %v: want the operator's mask alone", h)
	}
}
