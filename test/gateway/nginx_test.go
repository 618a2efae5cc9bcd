package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// client bounds every request through the gateway: a hung nginx or Elevate
// fails the test instead of hanging it.
var client = &http.Client{Timeout: 30 * time.Second}

// seen is one request that reached the protected API.
type seen struct {
	Method, Path              string
	Subject, Role, DecisionID string
	Authorization             string
}

// api is the protected API: it answers with who reached it, as nginx
// described them, and records every request.
type api struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newAPI(t *testing.T) *api {
	a := &api{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{
			Method: r.Method, Path: r.URL.RequestURI(),
			Subject: r.Header.Get("X-Elevate-Subject"), Role: r.Header.Get("X-Elevate-Role"),
			DecisionID: r.Header.Get("X-Elevate-Decision-Id"), Authorization: r.Header.Get("Authorization"),
		}
		a.mu.Lock()
		a.reqs = append(a.reqs, s)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(a.Close)
	return a
}

// requests is how many requests reached the API so far.
func (a *api) requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

func (a *api) last(t *testing.T) seen {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		t.Fatal("no request reached the API")
	}
	return a.reqs[len(a.reqs)-1]
}

// stack is Elevate (demo tenant, on Redis), the API, and nginx configured
// from deploy/nginx/elevate.conf in front of the API.
type stack struct {
	elevate *elevatetest.Server
	api     *api
	nginx   *NginxServer
}

func startStack(t *testing.T) *stack {
	t.Helper()
	redis := harness.Redis(t)
	// Decision clients required, as outside demo mode: the example must
	// present nginx's client token.
	s := &stack{elevate: elevatetest.Start(t, elevatetest.Options{
		Demo: true, RedisURL: redis.URL, Config: "decisions:\n  require_token: true\n",
	}), api: newAPI(t)}

	// Without the route nginx would answer 500 for everything; say why.
	resp, err := client.Get(s.elevate.URL + "/v1/forward-auth")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		t.Fatal("elevate serve does not serve /v1/forward-auth (404): register decision.NewForwardAuth in internal/cli/serve.go")
	}

	example, err := os.ReadFile(harness.RepoRoot(t) + "/deploy/nginx/elevate.conf")
	if err != nil {
		t.Fatal(err)
	}
	s.nginx = Nginx(t, string(example), map[string]string{
		"ELEVATE":      strings.TrimPrefix(s.elevate.URL, "http://"),
		"UPSTREAM":     strings.TrimPrefix(s.api.URL, "http://"),
		"CLIENT_TOKEN": s.elevate.Token(t, "gateway"),
	})
	return s
}

type answer struct {
	status int
	header http.Header
	body   string
}

// through sends a request to the API through nginx, with a bearer token
// ("" for none) and more headers as name, value pairs.
func (s *stack) through(t *testing.T, method, path, token string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.nginx.URL+path, strings.NewReader(`{"displayName": "New Hire"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

// want fails unless the request through nginx gets status, and checks
// that exactly the allowed ones reached the API.
func (s *stack) want(t *testing.T, status int, method, path, token string, headers ...string) answer {
	t.Helper()
	before := s.api.requests()
	a := s.through(t, method, path, token, headers...)
	if a.status != status {
		t.Fatalf("%s %s through nginx: status %d, want %d: %s\n%s\n--- elevate ---\n%s",
			method, path, a.status, status, a.body, s.nginx.Log(), s.elevate.Log())
	}
	reached := s.api.requests() - before
	if want := map[bool]int{true: 1, false: 0}[status == http.StatusOK]; reached != want {
		t.Fatalf("%s %s: %d requests reached the API, want %d", method, path, reached, want)
	}
	return a
}

// decisionID is OPA's form of a decision ID: a version 4 UUID.
var decisionID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// The brief's story through a real nginx: Sophia is refused, elevates with
// Perparim's approval and gets through, deactivates and is refused again,
// with nothing restarted or reconfigured in between.
func TestNginxForwardAuth(t *testing.T) {
	s := startStack(t)
	e := s.elevate
	sophia, perparim := e.Token(t, "sophia"), e.Token(t, "perparim")
	sophiaName := e.Principal(t, "sophia")

	// No credentials: 401 with Elevate's challenge, nothing reaches the API.
	a := s.want(t, http.StatusUnauthorized, "POST", "/users", "")
	if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
		t.Errorf("WWW-Authenticate %q through nginx", got)
	}
	s.want(t, http.StatusUnauthorized, "GET", "/users", "not-a-token")

	// Sophia may not create users yet.
	s.want(t, http.StatusForbidden, "POST", "/users", sophia)

	// She activates User Administrator (TOTP, justification); it waits for
	// approval and grants nothing meanwhile.
	req := e.Do(t, "POST", "/v1/activations", sophia, map[string]any{
		"role": "user-administrator", "justification": "Onboarding three new hires",
		"mfa": map[string]any{"totp": e.TOTP(t, "sophia", 0)},
	}).Want(t, http.StatusAccepted)
	if req["status"] != "pending_approval" {
		t.Fatalf("activation: %v", req)
	}
	id := req["id"].(string)
	s.want(t, http.StatusForbidden, "POST", "/users", sophia)

	// Perparim approves: the same request now gets through, and the API
	// learns who made it, by which role, under which decision.
	e.Do(t, "POST", "/v1/activations/"+id+"/approve", perparim, map[string]any{"justification": "Approved for onboarding"}).Want(t, http.StatusOK)
	s.want(t, http.StatusOK, "POST", "/users", sophia)
	got := s.api.last(t)
	if got.Method != "POST" || got.Path != "/users" || got.Subject != sophiaName || got.Role != "user-administrator" {
		t.Fatalf("the API saw %+v", got)
	}
	if !decisionID.MatchString(got.DecisionID) {
		t.Fatalf("X-Elevate-Decision-Id %q reached the API", got.DecisionID)
	}
	if got.Authorization != "Bearer "+sophia {
		t.Errorf("the API did not get the caller's Authorization")
	}

	// Each request is decided on its own method, path and scope, and
	// reaches the API as the client sent it.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/users/17?select=displayName", http.StatusOK},
		{"PATCH", "/administrativeUnits/new-york-office/users/17", http.StatusOK},
		{"POST", "/users/17/resetPassword", http.StatusOK},
		{"GET", "/groups/g1", http.StatusOK},
		{"DELETE", "/groups/g1", http.StatusForbidden},
		{"POST", "/applications", http.StatusForbidden},
		{"GET", "/devices", http.StatusForbidden},
		{"DELETE", "/users/../x", http.StatusForbidden},
	} {
		s.want(t, tc.status, tc.method, tc.path, sophia)
		if tc.status != http.StatusOK {
			continue
		}
		if got := s.api.last(t); got.Method != tc.method || got.Path != tc.path || got.Subject != sophiaName {
			t.Errorf("%s %s: the API saw %+v", tc.method, tc.path, got)
		}
	}

	// Headers a client sends under Elevate's names never reach the API;
	// nor can a client describe another request than the one it makes.
	s.want(t, http.StatusOK, "GET", "/users", sophia,
		"X-Elevate-Subject", "perparim.abdullahu@perparims.example", "X-Elevate-Role", "privileged-role-administrator")
	if got := s.api.last(t); got.Subject != sophiaName || got.Role != "user-administrator" {
		t.Fatalf("a client's X-Elevate-* headers reached the API: %+v", got)
	}
	s.want(t, http.StatusForbidden, "DELETE", "/groups/g1", sophia,
		"X-Original-Method", "GET", "X-Forwarded-Method", "GET", "X-Original-URI", "/users", "X-Forwarded-Uri", "/users")

	// She deactivates: denied again at once.
	e.Do(t, "POST", "/v1/activations/"+id+"/deactivate", sophia, map[string]any{"justification": "Done"}).Want(t, http.StatusOK)
	s.want(t, http.StatusForbidden, "POST", "/users", sophia)
	s.want(t, http.StatusForbidden, "GET", "/users/17", sophia)
}
