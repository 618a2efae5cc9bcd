package decision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/elevatepdp/elevate/bundles"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
	"github.com/elevatepdp/elevate/policies"
)

const (
	faSophia = "sophia.davis@perparims.example"
	faEmma   = "emma.smith@perparims.example"
	faBoston = "/administrativeUnits/boston"
)

// faNow is the evaluator's clock in these tests.
var faNow = time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)

// faTokens is the fake identity provider: Authorization header -> caller.
var faTokens = faAuth{
	"Bearer sophia-token":  {Principal: faSophia, Kind: identity.User, Method: identity.MethodStatic},
	"Bearer emma-token":    {Principal: faEmma, Kind: identity.User, Method: identity.MethodJWT},
	"Bearer gateway-token": {Principal: "gateway", Kind: identity.Client, Method: identity.MethodStatic},
}

type faAuth map[string]identity.Identity

func (a faAuth) Authenticate(_ context.Context, authorization string) (identity.Identity, error) {
	if id, ok := a[authorization]; ok {
		return id, nil
	}
	return identity.Identity{}, identity.ErrUnauthenticated
}

// faStore holds each subject's elevations, or fails.
type faStore struct {
	elevations map[string][]workflow.Elevation
	err        error
}

func (s faStore) Elevations(_ context.Context, subject string, _ time.Time) ([]workflow.Elevation, error) {
	return s.elevations[subject], s.err
}

func faElevation(id, role, scope string) workflow.Elevation {
	start, end := faNow.Add(-time.Minute), faNow.Add(time.Hour)
	return workflow.Elevation{ID: id, Role: role, Scope: scope, ActivatedAt: &start, ExpiresAt: &end}
}

// faBuiltIn is the policies and demo data built into the binary.
func faBuiltIn(t testing.TB) policy.Source {
	t.Helper()
	fsys, err := policy.MergeFS(map[string]fs.FS{"policies": policies.FS, "bundles": bundles.Demo})
	if err != nil {
		t.Fatal(err)
	}
	return policy.Source{FS: fsys, Paths: []string{"policies", "bundles/demo"}}
}

// faRego is one Rego module as a source.
func faRego(module string) policy.Source {
	return policy.Source{FS: fstest.MapFS{"p/p.rego": {Data: []byte(module)}}, Paths: []string{"p"}}
}

type faServer struct {
	handler http.Handler
	log     *bytes.Buffer
}

func newFAServer(t testing.TB, src policy.Source, st faStore, opts ForwardAuthOptions) faServer {
	t.Helper()
	var buf bytes.Buffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetFormatter(&logrus.JSONFormatter{})
	engine, err := policy.New(context.Background(), policy.Options{Source: src, Logger: log, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	eval := NewEvaluator(engine, st, log)
	eval.now = func() time.Time { return faNow }
	if opts.Auth == nil {
		opts.Auth = faTokens
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	NewForwardAuth(eval, opts).Register(r)
	return faServer{handler: r, log: &buf}
}

type faAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

// do sends a forward-auth request; headers are name, value pairs.
func (s faServer) do(t *testing.T, method string, headers ...string) faAnswer {
	t.Helper()
	req := httptest.NewRequest(method, "/v1/forward-auth", nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	s.handler.ServeHTTP(w, req)
	a := faAnswer{status: w.Code, header: w.Header()}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
			t.Fatalf("answer is not a JSON object: %s", w.Body)
		}
	}
	return a
}

// faTraefik is how Traefik and Caddy describe the original request.
func faTraefik(method, uri string) []string {
	return []string{"X-Forwarded-Method", method, "X-Forwarded-Uri", uri, "X-Forwarded-Host", "directory.perparims.example"}
}

// faNginx is how the nginx example describes it.
func faNginx(method, uri string) []string {
	return []string{"X-Original-Method", method, "X-Original-Uri", uri}
}

func faBearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func faJoin(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestForwardAuthDefaultPolicy(t *testing.T) {
	st := faStore{elevations: map[string][]workflow.Elevation{
		faSophia: {faElevation("el-ua", "user-administrator", "/")},
		faEmma:   {faElevation("el-hd", "helpdesk-administrator", faBoston)},
	}}
	s := newFAServer(t, faBuiltIn(t), st, ForwardAuthOptions{})
	tests := map[string]struct {
		headers []string
		status  int
		role    string
		errors  []string
	}{
		"traefik: allowed": {
			headers: faJoin(faTraefik("POST", "/users"), faBearer("sophia-token")), status: 200, role: "user-administrator",
		},
		"nginx: allowed": {
			headers: faJoin(faNginx("DELETE", "/users/17?hard=true"), faBearer("sophia-token")), status: 200, role: "user-administrator",
		},
		"both families agreeing": {
			headers: faJoin(faTraefik("GET", "/groups/g1"), faNginx("GET", "/groups/g1"), faBearer("sophia-token")), status: 200, role: "user-administrator",
		},
		"role lacks the action": {
			headers: faJoin(faTraefik("DELETE", "/groups/g1"), faBearer("sophia-token")), status: 403,
			errors: []string{"no active elevation grants groups.delete at /"},
		},
		"no elevation": {
			headers: faJoin(faTraefik("POST", "/applications"), faBearer("sophia-token")), status: 403,
			errors: []string{"no active elevation grants applications.create at /"},
		},
		"unknown route": {
			headers: faJoin(faTraefik("GET", "/devices"), faBearer("sophia-token")), status: 403,
			errors: []string{`no route for "GET /devices"`},
		},
		"unit grant in its unit": {
			headers: faJoin(faTraefik("POST", "/administrativeUnits/boston/users/17/resetPassword"), faBearer("emma-token")), status: 200, role: "helpdesk-administrator",
		},
		"unit grant outside its unit": {
			headers: faJoin(faTraefik("POST", "/users/17/resetPassword"), faBearer("emma-token")), status: 403,
			errors: []string{"no active elevation grants users.resetPassword at /"},
		},
		"percent-encoded path is decoded": {
			headers: faJoin(faTraefik("GET", "/%75sers/17"), faBearer("sophia-token")), status: 200, role: "user-administrator",
		},
		// Refused: the upstream may read either as another path.
		"encoded slash": {
			headers: faJoin(faTraefik("GET", "/users/a%2Fb"), faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, `the forwarded URI: ambiguous request target: the path holds an escaped "/" or "\"`},
		},
		"encoded dot-dot": {
			headers: faJoin(faTraefik("DELETE", "/users/%2e%2e"), faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, `the forwarded URI: ambiguous request target: the path holds the dot segment ".."`},
		},
		"families disagreeing": {
			headers: faJoin(faTraefik("DELETE", "/users/17"), faNginx("GET", "/users/17"), faBearer("emma-token")), status: 403,
			errors: []string{reason.BadInput, "X-Forwarded-Method and X-Original-Method disagree"},
		},
		"header given twice": {
			headers: faJoin(faNginx("GET", "/users/17"), []string{"X-Original-Uri", "/users/18"}, faBearer("emma-token")), status: 403,
			errors: []string{reason.BadInput, "X-Original-Uri and X-Original-Uri disagree"},
		},
		"no method": {
			headers: faJoin([]string{"X-Forwarded-Uri", "/users"}, faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, "not forwarded: the gateway sent none of X-Forwarded-Method, X-Original-Method"},
		},
		"no URI": {
			headers: faJoin([]string{"X-Forwarded-Method", "GET"}, faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, "not forwarded: the gateway sent none of X-Forwarded-Uri, X-Original-Uri"},
		},
		"empty method": {
			headers: faJoin(faTraefik("", "/users"), faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, "X-Forwarded-Method is empty"},
		},
		"relative URI": {
			headers: faJoin(faTraefik("GET", "users"), faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, `the forwarded URI is not a request URI: parse "users": invalid URI for request`},
		},
		"malformed query": {
			headers: faJoin(faTraefik("GET", "/users?a=%zz"), faBearer("sophia-token")), status: 403,
			errors: []string{reason.BadInput, `the forwarded URI: ambiguous request target: query: invalid URL escape "%zz"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := s.do(t, http.MethodGet, tc.headers...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %v", a.status, tc.status, a.body)
			}
			id := a.header.Get("X-Elevate-Decision-Id")
			if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
				t.Fatalf("decision id %q is not a UUID", id)
			}
			if tc.status == 200 {
				if got := a.header.Get("X-Elevate-Role"); got != tc.role {
					t.Errorf("X-Elevate-Role %q, want %q", got, tc.role)
				}
				if a.header.Get("X-Elevate-Subject") == "" || a.body["decision_id"] != id || a.body["allow"] != true {
					t.Errorf("allowed answer: %v %v", a.header, a.body)
				}
				return
			}
			if a.header.Get("X-Elevate-Role") != "" || a.header.Get("X-Elevate-Subject") != "" {
				t.Errorf("a denial carries identity headers: %v", a.header)
			}
			if a.body["code"] != "forbidden" || a.body["decision_id"] != id {
				t.Errorf("denial: %v", a.body)
			}
			if got := strings.Join(faStrings(a.body["errors"]), "\n"); got != strings.Join(tc.errors, "\n") {
				t.Errorf("errors\n%s\nwant\n%s", got, strings.Join(tc.errors, "\n"))
			}
		})
	}
}

func faStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestForwardAuthAnswersEveryMethod(t *testing.T) {
	st := faStore{elevations: map[string][]workflow.Elevation{faSophia: {faElevation("el-ua", "user-administrator", "/")}}}
	s := newFAServer(t, faBuiltIn(t), st, ForwardAuthOptions{})
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		t.Run(m, func(t *testing.T) {
			// nginx's subrequest keeps the original method; the decision
			// is about the forwarded one either way.
			if a := s.do(t, m, faJoin(faNginx("POST", "/users"), faBearer("sophia-token"))...); a.status != 200 {
				t.Fatalf("status %d", a.status)
			}
		})
	}
}

func TestForwardAuthUnauthenticated(t *testing.T) {
	tests := map[string]struct {
		opts    ForwardAuthOptions
		headers []string
		message string
	}{
		"no credentials":   {headers: faTraefik("GET", "/users"), message: "a user's bearer token is required"},
		"unknown token":    {headers: faJoin(faTraefik("GET", "/users"), faBearer("nobody")), message: "unauthenticated"},
		"basic auth":       {headers: faJoin(faTraefik("GET", "/users"), []string{"Authorization", "Basic c29waGlh"}), message: "unauthenticated"},
		"a client's token": {headers: faJoin(faTraefik("GET", "/users"), faBearer("gateway-token")), message: "the bearer token is a decision client's; a user's is required"},
		"subject header not configured": {
			headers: faJoin(faTraefik("GET", "/users"), []string{"X-User", faSophia}), message: "a user's bearer token is required",
		},
		"subject header not a principal": {
			opts: ForwardAuthOptions{SubjectHeader: "X-User"}, headers: faJoin(faTraefik("GET", "/users"), []string{"X-User", "   "}),
			message: "X-User does not name a principal",
		},
		"subject header twice": {
			opts:    ForwardAuthOptions{SubjectHeader: "x-user"},
			headers: faJoin(faTraefik("GET", "/users"), []string{"X-User", faSophia, "X-User", faEmma}), message: "X-User is given more than once",
		},
		"no authenticator": {
			opts: ForwardAuthOptions{Auth: faAuth{}}, headers: faJoin(faTraefik("GET", "/users"), faBearer("sophia-token")), message: "unauthenticated",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newFAServer(t, faBuiltIn(t), faStore{}, tc.opts)
			a := s.do(t, http.MethodGet, tc.headers...)
			if a.status != http.StatusUnauthorized || a.body["code"] != "unauthenticated" || a.body["message"] != tc.message {
				t.Fatalf("answer %d %v, want 401 unauthenticated %q", a.status, a.body, tc.message)
			}
			if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q", got)
			}
			if a.header.Get("X-Elevate-Decision-Id") != "" {
				t.Error("a decision id without a decision")
			}
		})
	}
}

func TestForwardAuthSubjectHeader(t *testing.T) {
	st := faStore{elevations: map[string][]workflow.Elevation{
		faSophia: {faElevation("el-ua", "user-administrator", "/")},
	}}
	s := newFAServer(t, faBuiltIn(t), st, ForwardAuthOptions{SubjectHeader: "X-User"})
	tests := map[string]struct {
		headers []string
		status  int
		subject string
	}{
		"header, lowercased":           {headers: []string{"X-User", "Sophia.Davis@Perparims.example"}, status: 200, subject: faSophia},
		"header wins over the bearer":  {headers: faJoin([]string{"X-User", faEmma}, faBearer("sophia-token")), status: 403},
		"bearer without the header":    {headers: faBearer("sophia-token"), status: 200, subject: faSophia},
		"header of one without grants": {headers: []string{"X-User", faEmma}, status: 403},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := s.do(t, http.MethodGet, faJoin(faTraefik("POST", "/users"), tc.headers)...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %v", a.status, tc.status, a.body)
			}
			if got := a.header.Get("X-Elevate-Subject"); got != tc.subject {
				t.Errorf("X-Elevate-Subject %q, want %q", got, tc.subject)
			}
		})
	}
}

// A user's policy may answer a plain boolean, and sees the whole request.
func TestForwardAuthUserPolicies(t *testing.T) {
	const boolPolicy = `package gw

default allow := false

allow if {
	input.method == "GET"
	input.path == "/reports/q1"
	input.host == "reports.example"
	input.query.format == ["pdf", "csv"]
	input.subject == "sophia.davis@perparims.example"
	some e in input.elevations
	e.role == "report-reader"
	is_number(input.now)
}

role := "report-reader"

value := "yes"

object_without_allow := {"role": "report-reader"}

object_with_string_allow := {"allow": "true"}

object_deny := {"allow": false}

object_allow := {"allow": true, "role": "report-reader"}
`
	st := faStore{elevations: map[string][]workflow.Elevation{faSophia: {faElevation("el-rr", "report-reader", "/")}}}
	request := faJoin([]string{
		"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/reports/q1?format=pdf&format=csv", "X-Forwarded-Host", "reports.example",
	}, faBearer("sophia-token"))
	tests := map[string]struct {
		query   string
		headers []string
		status  int
		errors  []string
	}{
		"true":                 {query: "data.gw.allow", status: 200},
		"false":                {query: "data.gw.allow", headers: faTraefik("GET", "/reports/q2"), status: 403, errors: []string{"denied by data.gw.allow"}},
		"undefined":            {query: "data.gw.nothing", status: 403, errors: []string{"data.gw.nothing is undefined"}},
		"a string":             {query: "data.gw.value", status: 403, errors: []string{"data.gw.value is neither a boolean nor an object with allow"}},
		"object without allow": {query: "data.gw.object_without_allow", status: 403, errors: []string{"data.gw.object_without_allow has no boolean allow"}},
		"allow not a boolean":  {query: "data.gw.object_with_string_allow", status: 403, errors: []string{"data.gw.object_with_string_allow has no boolean allow"}},
		"object deny":          {query: "data.gw.object_deny", status: 403, errors: []string{"denied by data.gw.object_deny"}},
		"object allow":         {query: "data.gw.object_allow", status: 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := newFAServer(t, faRego(boolPolicy), st, ForwardAuthOptions{Query: policy.MustQuery(tc.query)})
			headers := request
			if tc.headers != nil {
				headers = faJoin(tc.headers, faBearer("sophia-token"))
			}
			a := s.do(t, http.MethodGet, headers...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %v", a.status, tc.status, a.body)
			}
			if tc.status != 200 {
				if got := faStrings(a.body["errors"]); strings.Join(got, "\n") != strings.Join(tc.errors, "\n") {
					t.Errorf("errors %q, want %q", got, tc.errors)
				}
			}
		})
	}
}

// Any failure to decide is a 403 naming the reason, never a 5xx a gateway
// might let through.
func TestForwardAuthFailsClosed(t *testing.T) {
	tests := map[string]struct {
		src    policy.Source
		st     faStore
		reason string
	}{
		"store unavailable": {st: faStore{err: errors.New("connection refused")}, reason: reason.StoreUnavailable},
		// Two values for one complete rule: a conflict at evaluation.
		"policy error": {src: faRego("package pim.gateway\n\ndecision := 1 if input.method\n\ndecision := 2 if input.path\n"), reason: reason.PolicyError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := tc.src
			if src.FS == nil {
				src = faBuiltIn(t)
			}
			s := newFAServer(t, src, tc.st, ForwardAuthOptions{})
			a := s.do(t, http.MethodGet, faJoin(faTraefik("POST", "/users"), faBearer("sophia-token"))...)
			if a.status != http.StatusForbidden || a.body["code"] != "forbidden" {
				t.Fatalf("answer %d %v", a.status, a.body)
			}
			if got := faStrings(a.body["errors"]); len(got) != 1 || got[0] != tc.reason {
				t.Errorf("errors %q, want [%s]", got, tc.reason)
			}
			if !strings.Contains(s.log.String(), `"failed":"`+tc.reason+`"`) {
				t.Errorf("failure not logged:\n%s", s.log)
			}
		})
	}
}

func TestForwardAuthLogMasksCredentials(t *testing.T) {
	st := faStore{elevations: map[string][]workflow.Elevation{faSophia: {faElevation("el-ua", "user-administrator", "/")}}}
	s := newFAServer(t, faBuiltIn(t), st, ForwardAuthOptions{})
	s.do(t, http.MethodGet, faJoin(faTraefik("POST", "/users"), faBearer("sophia-token"),
		[]string{"Cookie", "session=cookie-secret", "Proxy-Authorization", "Basic proxy-secret", "User-Agent", "curl/8", ClientTokenHeader, "elv_gateway-secret"})...)
	// Failures before evaluation are logged the same way.
	s.do(t, http.MethodGet, faJoin([]string{"X-Forwarded-Uri", "/users"}, faBearer("sophia-token"), []string{"Cookie", "session=cookie-secret"})...)

	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.log.String()), "\n") {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if entry["endpoint"] == "forward-auth" {
			lines = append(lines, entry)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("%d decision log lines, want 2:\n%s", len(lines), s.log)
	}
	for _, secret := range []string{"sophia-token", "cookie-secret", "proxy-secret", "gateway-secret"} {
		if strings.Contains(s.log.String(), secret) {
			t.Errorf("the log contains %q:\n%s", secret, s.log)
		}
	}
	first := lines[0]
	headers := first["headers"].(map[string]any)
	for name, want := range map[string]string{
		"Authorization": "Bearer <masked>", "Cookie": "<masked>", "Proxy-Authorization": "Basic <masked>",
		"User-Agent": "curl/8", "X-Forwarded-Uri": "/users", ClientTokenHeader: "<masked>",
	} {
		if headers[name] != want {
			t.Errorf("logged %s %v, want %q", name, headers[name], want)
		}
	}
	if first["subject"] != faSophia || first["method"] != "POST" || first["path"] != "/users" || !faNonEmpty(first["decision_id"]) {
		t.Errorf("decision log line: %v", first)
	}
	if lines[1]["failed"] != reason.BadInput || lines[1]["headers"].(map[string]any)["Cookie"] != "<masked>" {
		t.Errorf("failure log line: %v", lines[1])
	}
}

func TestNewForwardAuthDefaults(t *testing.T) {
	f := NewForwardAuth(nil, ForwardAuthOptions{SubjectHeader: " x-user "})
	if f.query.String() != "data.pim.gateway.decision" || f.subjectHeader != "X-User" {
		t.Fatalf("query %s, subject header %q", f.query, f.subjectHeader)
	}
}

// The forwarded headers are the client's, through the gateway: whatever
// they hold, parsing never panics, and what it accepts is an origin-form
// request the policy can route.
func FuzzForwardedRequest(f *testing.F) {
	for _, seed := range [][2]string{
		{"GET", "/users/17?x=1"}, {"POST", "/administrativeUnits/a/users"}, {"", ""}, {"GET", "*"},
		{"GET", "http://host/users"}, {"GET", "/a%2Fb"}, {"GET", "/?%zz"}, {"DELETE", "//x/../y"},
	} {
		f.Add(seed[0], seed[1], "directory.example")
	}
	f.Fuzz(func(t *testing.T, method, uri, host string) {
		h := http.Header{}
		h.Set("X-Forwarded-Method", method)
		h.Set("X-Original-Uri", uri)
		h.Set("X-Forwarded-Host", host)
		in, err := forwardedRequest(h)
		if err != nil {
			return
		}
		if in["method"] != method || in["host"] != host {
			t.Fatalf("input %v from %q %q %q", in, method, uri, host)
		}
		if _, ok := in["query"].(map[string]any); !ok {
			t.Fatalf("query %T", in["query"])
		}
	})
}

// TestBadQueryStringRefused (forward-auth): the forwarded URI is parsed as
// ext_authz parses its path; what does not parse in only one way is refused
// (bad_input), never decided without the bad pair or on a guessed path.
func TestForwardAuthBadQueryStringRefused(t *testing.T) {
	s := newFAServer(t, faRego(`package t
default allow := false

allow if not input.query.debug
`), faStore{}, ForwardAuthOptions{Query: policy.MustQuery("data.t.allow")})
	tests := map[string]struct {
		uri     string
		allowed bool
		refused bool
	}{
		"no debug":            {uri: "/x?a=1", allowed: true},
		"debug":               {uri: "/x?debug=1"},
		"semicolon separator": {uri: "/x?debug=1;a=2", refused: true},
		"bad escape":          {uri: "/x?debug=%zz", refused: true},
		"absolute URI":        {uri: "https://app.example/x?debug=1;a=2", refused: true},
		"escaped slash":       {uri: "/files/a%2Fb", refused: true},
		"double encoded dots": {uri: "/a/%252e%252e/admin", refused: true},
		"NUL":                 {uri: "/roles/admin%00", refused: true},
		"CRLF":                {uri: "/roles/a%0d%0ab", refused: true},
		"backslash":           {uri: `/a\..\admin`, refused: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s.log.Reset()
			a := s.do(t, http.MethodGet, faJoin(faTraefik("GET", tc.uri), faBearer("sophia-token"))...)
			if (a.status == 200) != tc.allowed {
				t.Fatalf("status %d, want allowed %v: %v", a.status, tc.allowed, a.body)
			}
			var errs []string
			if a.status != 200 {
				errs = faStrings(a.body["errors"])
			}
			if got := len(errs) > 0 && errs[0] == reason.BadInput; got != tc.refused {
				t.Errorf("refused %v, want %v: %v", got, tc.refused, errs)
			}
			if tc.refused && !strings.Contains(s.log.String(), `"failed":"bad_input"`) {
				t.Errorf("the refusal is not logged: %s", s.log)
			}
		})
	}
}

// faNonEmpty is whether v is a non-empty string: an absent key is nil,
// which a comparison with "" would let through.
func faNonEmpty(v any) bool {
	s, ok := v.(string)
	return ok && s != ""
}
