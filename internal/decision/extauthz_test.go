package decision_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

const extAuthzPolicy = `package envoy.authz

import input.attributes.request.http

default allow := false

allow if {
	http.method == "GET"
	input.parsed_path[0] == "public"
}

allow if {
	input.parsed_path == ["search"]
	input.parsed_query.q == ["elevate"]
	input.parsed_query.tag == ["a", "b"]
}

allow if {
	http.method == "POST"
	input.parsed_path == ["orders"]
	input.parsed_body.amount < 100
}

allow if {
	input.parsed_path == ["login"]
	input.parsed_body.user == ["sophia"]
}

allow if {
	input.parsed_path == ["upload"]
	input.parsed_body.title == ["Q3"]
}

allow if {
	input.parsed_path == ["truncated"]
	input.truncated_body
	input.parsed_body == null
}

allow if {
	input.parsed_path[0] == "db"
	some e in input.elevations
	e.role == "db-admin"
}

allow if {
	input.parsed_path == ["whoami"]
	input.subject == "sophia.davis@perparims.example"
}

allow if {
	input.parsed_path == ["attributes"]
	http.headers[":path"] == "/attributes?x=1"
	http.headers[":method"] == http.method
	http.headers["x-multi"] == "a,b"
	http.path == "/attributes?x=1"
	http.host == "app.example"
	input.version == {"ext_authz": "v3", "encoding": "protojson"}
}

conflict := "a" if input.parsed_path[0] == "boom"

conflict := "b" if input.parsed_path[0] == "boom"

allow if conflict == "a"

allow if {
	input.parsed_path[0] == "slow"
	some i in numbers.range(1, 20000)
	some j in numbers.range(1, 20000)
	i * j < 0
}

decision := {
	"allowed": allow,
	"headers": {"x-ext-auth-allow": "yes", "x-multi": ["1", "2"]},
	"response_headers_to_add": {"x-foo": "bar"},
	"request_headers_to_remove": ["one-auth-header", "another-auth-header"],
	"body": "Unauthorized Request",
	"http_status": 401,
}
`

const subject = "sophia.davis@perparims.example"

type elevations map[string][]workflow.Elevation

func (e elevations) Elevations(_ context.Context, subject string, _ time.Time) ([]workflow.Elevation, error) {
	return e[subject], nil
}

func newEvaluator(t *testing.T, rego string) (*decision.Evaluator, *logtest.Hook, logrus.FieldLogger) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	log, hook := logtest.NewNullLogger()
	engine, err := policy.New(context.Background(), policy.Options{Source: policy.Source{Paths: []string{dir}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	held := elevations{subject: {{ID: "act-1", Role: "db-admin", Scope: "/"}}}
	return decision.NewEvaluator(engine, held, log), hook, log
}

func router(h *decision.ExtAuthzHTTP) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	h.Register(r)
	return r
}

// call sends Envoy's authorization request for method and path (the
// original request's) to the HTTP mode.
func call(t *testing.T, r http.Handler, method, path string, headers map[string]string, body string) *httptest.ResponseRecorder {
	t.Helper()
	// The target in origin form, as Envoy sends it (even for CONNECT).
	req := httptest.NewRequest(method, decision.ExtAuthzPrefix+path, strings.NewReader(body))
	req.Host = "app.example"
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestExtAuthzHTTP(t *testing.T) {
	eval, _, log := newEvaluator(t, extAuthzPolicy)
	plain := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	obj := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Query: policy.MustQuery("data.envoy.authz.decision"), Log: log}))
	bySubject := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{SubjectHeader: "X-Elevate-Subject", Log: log}))
	small := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{MaxBody: 8, Log: log}))

	jsonCT := map[string]string{"Content-Type": "application/json"}
	tests := map[string]struct {
		router  http.Handler
		method  string
		path    string
		headers map[string]string
		body    string
		status  int
		want    map[string]string // response headers
		reply   string
		failed  string
	}{
		"allow":                         {router: plain, method: "GET", path: "/public/index.html", status: 200},
		"HEAD":                          {router: bySubject, method: "HEAD", path: "/db", headers: map[string]string{"X-Elevate-Subject": subject}, status: 200},
		"deny":                          {router: plain, method: "DELETE", path: "/public/index.html", status: 403},
		"no path beyond the prefix":     {router: plain, method: "GET", path: "", status: 403},
		"parsed_query":                  {router: plain, method: "GET", path: "/search?q=elevate&tag=a&tag=b", status: 200},
		"parsed_query, one value short": {router: plain, method: "GET", path: "/search?q=elevate&tag=a", status: 403},
		"parsed_body JSON":              {router: plain, method: "POST", path: "/orders", headers: jsonCT, body: `{"amount": 42}`, status: 200},
		"parsed_body JSON, too much":    {router: plain, method: "POST", path: "/orders", headers: jsonCT, body: `{"amount": 420}`, status: 403},
		"parsed_body form": {
			router: plain, method: "POST", path: "/login", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body: "user=sophia", status: 200,
		},
		"parsed_body multipart": {
			router: plain, method: "POST", path: "/upload", headers: map[string]string{"Content-Type": "multipart/form-data; boundary=b"},
			body: "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3\r\n--b--\r\n", status: 200,
		},
		"body truncated by Envoy": {
			router: plain, method: "POST", path: "/truncated",
			headers: map[string]string{"Content-Type": "application/json", "X-Envoy-Auth-Partial-Body": "true"}, body: `{"a": `, status: 200,
		},
		"body truncated at MaxBody": {
			router: small, method: "POST", path: "/truncated", headers: jsonCT, body: `{"amount": 42}`, status: 200,
		},
		"request attributes": {
			router: plain, method: "PATCH", path: "/attributes?x=1", headers: map[string]string{"X-Multi": "a,b"}, status: 200,
		},
		"object allows": {
			router: obj, method: "GET", path: "/public", status: 200,
			want: map[string]string{
				"X-Ext-Auth-Allow": "yes", "X-Multi": "1,2", "X-Foo": "bar",
				"X-Envoy-Auth-Headers-To-Remove": "one-auth-header, another-auth-header",
			},
		},
		"object denies": {
			router: obj, method: "GET", path: "/private", status: 401, reply: "Unauthorized Request",
			want: map[string]string{"X-Ext-Auth-Allow": "yes", "X-Multi": "1,2", "X-Foo": "", "X-Envoy-Auth-Headers-To-Remove": ""},
		},
		"malformed JSON body": {
			router: plain, method: "POST", path: "/orders", headers: jsonCT, body: `{"amount": `, status: 400, failed: reason.BadInput,
		},
		"policy error": {router: plain, method: "GET", path: "/boom", status: 403, failed: reason.PolicyError},
		"subject from a trusted header": {
			router: bySubject, method: "GET", path: "/db/orders", headers: map[string]string{"X-Elevate-Subject": subject}, status: 200,
		},
		"subject from a header read as input.subject": {
			router: bySubject, method: "GET", path: "/whoami", headers: map[string]string{"X-Elevate-Subject": "SOPHIA.DAVIS@perparims.example"}, status: 200,
		},
		"no subject, no elevations": {router: bySubject, method: "GET", path: "/db/orders", status: 403},
		"subject header ignored unless configured": {
			router: plain, method: "GET", path: "/db/orders", headers: map[string]string{"X-Elevate-Subject": subject}, status: 403,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := call(t, tc.router, tc.method, tc.path, tc.headers, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d (body %q)", w.Code, tc.status, w.Body.String())
			}
			id := w.Header().Get(envoy.HeaderDecisionID)
			if id == "" {
				t.Errorf("no %s", envoy.HeaderDecisionID)
			}
			for k, v := range tc.want {
				if got := strings.Join(w.Header().Values(k), ","); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tc.failed != "" {
				if got := w.Header().Get(envoy.HeaderDecisionFailed); got != tc.failed {
					t.Errorf("%s = %q, want %q", envoy.HeaderDecisionFailed, got, tc.failed)
				}
				var body struct {
					DecisionID string `json:"decision_id"`
					Reason     string `json:"reason"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.DecisionID != id || body.Reason != tc.failed {
					t.Errorf("body = %s, want decision_id %q and reason %q", w.Body.String(), id, tc.failed)
				}
				return
			}
			if w.Header().Get(envoy.HeaderDecisionFailed) != "" {
				t.Errorf("unexpected %s", envoy.HeaderDecisionFailed)
			}
			if tc.method != "HEAD" && w.Body.String() != tc.reply {
				t.Errorf("body = %q, want %q", w.Body.String(), tc.reply)
			}
		})
	}
}

// Envoy sends the original method, whatever it is.
func TestExtAuthzHTTPAnyMethod(t *testing.T) {
	eval, _, log := newEvaluator(t, `package envoy.authz
allow if input.attributes.request.http.method == input.parsed_path[0]
`)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "HEAD", "PROPFIND", "MKCOL", "PURGE", "get"} {
		if w := call(t, r, m, "/"+m, nil, ""); w.Code != 200 {
			t.Errorf("%s: status %d", m, w.Code)
		}
	}
}

// The routes work under a group, with the prefix stripped.
func TestExtAuthzHTTPUnderGroup(t *testing.T) {
	eval, _, log := newEvaluator(t, `package envoy.authz
allow if input.attributes.request.http.path == "/a%20b/c?d=e"
`)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}).Register(r.Group("/pdp"))
	req := httptest.NewRequest("GET", "/pdp"+decision.ExtAuthzPrefix+"/a%20b/c?d=e", nil)
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Errorf("status %d", w.Code)
	}
}

func TestExtAuthzHTTPPrimerPolicy(t *testing.T) {
	eval, _, log := newEvaluator(t, primerPolicy)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	now := time.Now().Unix()
	token := func(role, name string, exp int64) string {
		return "Bearer " + hs256(t, map[string]any{
			"role": role, "sub": base64.URLEncoding.EncodeToString([]byte(name)), "nbf": now - 60, "exp": exp,
		})
	}
	tests := map[string]struct {
		method, path, auth, body string
		allowed                  bool
	}{
		"guest reads a person":      {"GET", "/people/1", token("guest", "alice", now+3600), "", true},
		"guest cannot add a person": {"POST", "/people", token("guest", "alice", now+3600), `{"firstname": "Charlie"}`, false},
		"admin adds someone else":   {"POST", "/people", token("admin", "bob", now+3600), `{"firstname": "Charlie"}`, true},
		"admin cannot add themself": {"POST", "/people", token("admin", "bob", now+3600), `{"firstname": "Bob"}`, false},
		"expired token":             {"GET", "/people/1", token("admin", "bob", now-1), "", false},
		"no token":                  {"GET", "/people/1", "", "", false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			headers := map[string]string{"Content-Type": "application/json"}
			if tc.auth != "" {
				headers["Authorization"] = tc.auth
			}
			w := call(t, r, tc.method, tc.path, headers, tc.body)
			if (w.Code == 200) != tc.allowed {
				t.Errorf("status = %d, want allowed %v", w.Code, tc.allowed)
			}
		})
	}
}

func TestExtAuthzHTTPSubjectFromToken(t *testing.T) {
	userToken, _ := identity.NewToken()
	clientToken, _ := identity.NewToken()
	auth, err := identity.New(context.Background(), identity.Config{StaticTokens: []identity.StaticToken{
		{Name: subject, Kind: identity.User, SHA256: identity.HashToken(userToken)},
		{Name: "gateway", Kind: identity.Client, SHA256: identity.HashToken(clientToken)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	eval, hook, log := newEvaluator(t, extAuthzPolicy)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Auth: auth, Log: log}))
	for token, want := range map[string]int{userToken: 200, clientToken: 403, "elv_nope": 403} {
		if w := call(t, r, "GET", "/db/x", map[string]string{"Authorization": "Bearer " + token}, ""); w.Code != want {
			t.Errorf("status = %d, want %d", w.Code, want)
		}
	}
	// Credentials never reach the decision log.
	call(t, r, "GET", "/public", map[string]string{
		"Authorization": "Bearer " + userToken, "Cookie": "s=1", "Proxy-Authorization": "Basic eA==",
	}, "")
	var d *logrus.Entry
	for _, e := range hook.AllEntries() {
		if e.Message == "decision" {
			d = e
		}
	}
	headers, _ := d.Data["headers"].(map[string]string)
	for k, want := range map[string]string{"authorization": "Bearer <masked>", "cookie": "<masked>", "proxy-authorization": "Basic <masked>"} {
		if headers[k] != want {
			t.Errorf("decision log %s = %q, want %q", k, headers[k], want)
		}
	}
	if d.Data["endpoint"] != envoy.EndpointHTTP || d.Data["subject"] != subject {
		t.Errorf("decision log = %v", d.Data)
	}
}

// The decision log follows the logger's level: at warn, allowed and
// denied decisions write nothing and failed ones are still written.
func TestDecisionLogFollowsLevel(t *testing.T) {
	eval, hook, log := newEvaluator(t, extAuthzPolicy+"\nconflict := x if some x in [1, 2]\n")
	log.(*logrus.Logger).SetLevel(logrus.WarnLevel)
	hook.Reset() // the engine's "policy loaded"
	call(t, router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log})), "GET", "/public", nil, "")
	if n := len(hook.AllEntries()); n != 0 {
		t.Fatalf("%d entries at warn for a decision made", n)
	}
	failing := decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Query: policy.MustQuery("data.envoy.authz.conflict"), Log: log})
	if w := call(t, router(failing), "GET", "/public", nil, ""); w.Code != http.StatusForbidden {
		t.Fatalf("a failed evaluation answered %d", w.Code)
	}
	if e := hook.LastEntry(); e == nil || e.Message != "decision failed closed" || e.Data["failed"] != reason.PolicyError {
		t.Fatalf("failed decision logged as %+v", e)
	}
	log.(*logrus.Logger).SetLevel(logrus.InfoLevel)
	call(t, router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log})), "GET", "/public", nil, "")
	if e := hook.LastEntry(); e == nil || e.Message != "decision" {
		t.Fatalf("at info the decision logged %+v", e)
	}
}

func TestExtAuthzHTTPDryRun(t *testing.T) {
	eval, hook, log := newEvaluator(t, extAuthzPolicy)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{
		Query: policy.MustQuery("data.envoy.authz.decision"), DryRun: true, Log: log,
	}))
	w := call(t, r, "GET", "/private", nil, "")
	id := w.Header().Get(envoy.HeaderDecisionID)
	if w.Code != 200 || id == "" || w.Header().Get("X-Ext-Auth-Allow") != "" {
		t.Fatalf("dry run answered %d %v, want a plain allowance", w.Code, w.Header())
	}
	var real, dry bool
	for _, e := range hook.AllEntries() {
		if e.Data["decision_id"] != id {
			continue
		}
		if res, ok := e.Data["result"].(map[string]any); ok && res["allowed"] == false && e.Data["dry_run"] == true {
			real = true
		}
		if e.Data["allowed"] == false && e.Data["http_status"] == 401 {
			dry = true
		}
	}
	if !real || !dry {
		t.Errorf("the log does not say the request was denied in truth (decision %v, dry-run line %v)", real, dry)
	}
}

// The HTTP mode respects the request's context: a slow policy past the
// deadline is denied, not allowed.
func TestExtAuthzHTTPDeadline(t *testing.T) {
	eval, _, log := newEvaluator(t, extAuthzPolicy)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	call(t, r, "GET", "/public", nil, "") // prepares the query
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", decision.ExtAuthzPrefix+"/slow", nil)
	w := httptest.NewRecorder()
	start := time.Now()
	r.ServeHTTP(w, req)
	if w.Code != 403 || w.Header().Get(envoy.HeaderDecisionFailed) != reason.PolicyTimeout {
		t.Errorf("status %d, failed %q; want 403 %s", w.Code, w.Header().Get(envoy.HeaderDecisionFailed), reason.PolicyTimeout)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// The same request gets the same decision in both modes.
func TestExtAuthzSameDecisionInBothModes(t *testing.T) {
	eval, _, log := newEvaluator(t, extAuthzPolicy)
	opts := envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), SubjectHeader: "x-elevate-subject", Log: log}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	envoy.NewServer(eval, opts).Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	httpSrv := httptest.NewServer(router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{
		Query: opts.Query, SubjectHeader: opts.SubjectHeader, Log: log,
	})))
	defer httpSrv.Close()

	requests := []struct {
		method, path, body string
		headers            map[string]string
	}{
		{"GET", "/public/a", "", nil},
		{"GET", "/private", "", nil},
		{"GET", "/search?q=elevate&tag=a&tag=b", "", nil},
		{"GET", "/search?q=elevate", "", nil},
		{"POST", "/orders", `{"amount": 1}`, map[string]string{"content-type": "application/json"}},
		{"POST", "/orders", `{"amount": 1000}`, map[string]string{"content-type": "application/json"}},
		{"POST", "/orders", `{"amount": `, map[string]string{"content-type": "application/json"}},
		{"POST", "/login", "user=sophia", map[string]string{"content-type": "application/x-www-form-urlencoded"}},
		{"GET", "/db/orders", "", map[string]string{"x-elevate-subject": subject}},
		{"GET", "/db/orders", "", map[string]string{"x-elevate-subject": "liam.chen@perparims.example"}},
		{"GET", "/attributes?x=1", "", map[string]string{"x-multi": "a,b"}},
		{"GET", "/boom", "", nil},
	}
	for _, rq := range requests {
		t.Run(rq.method+" "+rq.path, func(t *testing.T) {
			// gRPC: the CheckRequest Envoy sends.
			headers := map[string]string{":authority": "app.example", ":method": rq.method, ":path": rq.path}
			for k, v := range rq.headers {
				headers[k] = v
			}
			if rq.body != "" {
				headers["content-length"] = strconv.Itoa(len(rq.body))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: rq.method, Path: rq.path, Host: "app.example", Headers: headers, Body: rq.body, Size: int64(len(rq.body)),
				}},
			}})
			if err != nil {
				t.Fatal(err)
			}
			grpcAnswer := answerOfGRPC(resp)

			// HTTP: the authorization request Envoy's http_service sends.
			req, err := http.NewRequestWithContext(ctx, rq.method, httpSrv.URL+decision.ExtAuthzPrefix+rq.path, strings.NewReader(rq.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "app.example"
			for k, v := range rq.headers {
				req.Header.Set(k, v)
			}
			hresp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer hresp.Body.Close()
			httpAnswer := answerOfHTTP(t, hresp)

			if grpcAnswer != httpAnswer {
				t.Errorf("gRPC and HTTP modes differ:\n gRPC %s\n HTTP %s", grpcAnswer, httpAnswer)
			}
		})
	}
}

// answer is what the client and upstream get, in one comparable string:
// allowed or the status, headers (without the decision ID), body.
func answerOfGRPC(resp *authv3.CheckResponse) string {
	var parts []string
	if ok := resp.GetOkResponse(); ok != nil {
		parts = append(parts, "allowed")
		for _, h := range ok.GetHeaders() {
			parts = append(parts, "upstream "+h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
		}
		for _, h := range ok.GetResponseHeadersToAdd() {
			parts = append(parts, "upstream "+h.GetHeader().GetKey()+": "+h.GetHeader().GetValue())
		}
		for _, h := range ok.GetHeadersToRemove() {
			parts = append(parts, "remove "+h)
		}
	} else {
		d := resp.GetDeniedResponse()
		parts = append(parts, "denied "+strconv.Itoa(int(d.GetStatus().GetCode())), "body "+d.GetBody())
		for _, h := range d.GetHeaders() {
			parts = append(parts, "client "+strings.ToLower(h.GetHeader().GetKey())+": "+h.GetHeader().GetValue())
		}
	}
	return normalize(parts)
}

func answerOfHTTP(t *testing.T, resp *http.Response) string {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	where := "client"
	if resp.StatusCode == 200 {
		parts = append(parts, "allowed")
		where = "upstream"
	} else {
		parts = append(parts, "denied "+strconv.Itoa(resp.StatusCode), "body "+string(body))
	}
	for k, vs := range resp.Header {
		k = strings.ToLower(k)
		switch k {
		case "date", "content-length":
			continue
		case "content-type":
			if resp.Header.Get(envoy.HeaderDecisionFailed) == "" {
				continue // Go's guess, not the policy's
			}
		case "x-envoy-auth-headers-to-remove":
			for _, h := range strings.Split(vs[0], ", ") {
				parts = append(parts, "remove "+h)
			}
			continue
		}
		for _, v := range vs {
			parts = append(parts, where+" "+k+": "+v)
		}
	}
	return normalize(parts)
}

// normalize sorts the parts and blanks the decision ID, which differs.
func normalize(parts []string) string {
	for i, p := range parts {
		if strings.Contains(p, envoy.HeaderDecisionID+": ") {
			parts[i] = "decision id"
		}
		if strings.HasPrefix(p, "body {\"decision_id\"") {
			var b map[string]string
			_ = json.Unmarshal([]byte(strings.TrimPrefix(p, "body ")), &b)
			parts[i] = "body failed: " + b["reason"]
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// The primer's first policy, as published in the OPA-Envoy documentation
// (openpolicyagent.org/docs/envoy/primer), unchanged.
const primerPolicy = `package envoy.authz

import rego.v1

import input.attributes.request.http

default allow := false

allow if {
	is_token_valid
	action_allowed
}

is_token_valid if {
	token.valid
	now := time.now_ns() / 1000000000
	token.payload.nbf <= now
	now < token.payload.exp
}

action_allowed if {
	http.method == "GET"
	token.payload.role == "guest"
	glob.match("/people/*", ["/"], http.path)
}

action_allowed if {
	http.method == "GET"
	token.payload.role == "admin"
	glob.match("/people/*", ["/"], http.path)
}

action_allowed if {
	http.method == "POST"
	token.payload.role == "admin"
	glob.match("/people", ["/"], http.path)
	lower(input.parsed_body.firstname) != base64url.decode(token.payload.sub)
}

token := {"valid": valid, "payload": payload} if {
	[_, encoded] := split(http.headers.authorization, " ")
	[valid, _, payload] := io.jwt.decode_verify(encoded, {"secret": "secret"})
}
`

// hs256 mints the primer's tokens: HS256 with the secret "secret".
func hs256(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signed := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, []byte("secret"))
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil))
}

// TestBadQueryStringRefused (HTTP mode): as in the gRPC mode, a query or
// path that does not parse in only one way is refused with 400 bad_input,
// and the refusal is logged as a decision.
func TestBadQueryStringRefused(t *testing.T) {
	eval, hook, log := newEvaluator(t, `package envoy.authz
allow if not input.parsed_query.debug
`)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	tests := map[string]struct {
		path   string
		status int
	}{
		"no debug":            {path: "/x?a=1", status: 200},
		"debug":               {path: "/x?debug=1", status: 403},
		"semicolon separator": {path: "/x?debug=1;a=2", status: 400},
		"bad escape":          {path: "/x?debug=%zz", status: 400},
		"escaped slash":       {path: "/files/a%2Fb", status: 400},
		// Go re-escapes a path holding '"' from its decoded form, which
		// turned %2F into '/' (found by FuzzExtAuthzHTTP).
		"escaped slash after a quote": {path: `/"%2F`, status: 400},
		"double encoded dots":         {path: "/a/%252e%252e/admin", status: 400},
		"NUL":                         {path: "/roles/admin%00", status: 400},
		"CRLF":                        {path: "/roles/a%0d%0ab", status: 400},
		"encoded dot segment":         {path: "/public/%2e%2e/admin", status: 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := call(t, r, "GET", tc.path, nil, "")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			id := w.Header().Get(envoy.HeaderDecisionID)
			if tc.status != 400 {
				return
			}
			if got := w.Header().Get(envoy.HeaderDecisionFailed); got != reason.BadInput {
				t.Errorf("%s = %q", envoy.HeaderDecisionFailed, got)
			}
			found := false
			for _, e := range hook.AllEntries() {
				if e.Data["decision_id"] == id && e.Data["failed"] == reason.BadInput {
					found = true
				}
			}
			if !found {
				t.Errorf("no decision log line for %q", id)
			}
		})
	}
}

// TestExtAuthzHTTPDecisionIDHeader: in the HTTP mode too, a policy's own
// x-elevate-decision-id is never replaced, and the operator can turn the
// header off.
func TestExtAuthzHTTPDecisionIDHeader(t *testing.T) {
	eval, _, log := newEvaluator(t, `package envoy.authz
decision := {"allowed": true, "headers": {"x-elevate-decision-id": "the policy's"}} if input.parsed_path == ["own"]
decision := {"allowed": true} if input.parsed_path == ["plain"]
`)
	q := policy.MustQuery("data.envoy.authz.decision")
	on := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Query: q, Log: log}))
	off := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Query: q, Log: log, NoDecisionIDHeader: true}))
	if got := call(t, on, "GET", "/own", nil, "").Header().Values(envoy.HeaderDecisionID); len(got) != 1 || got[0] != "the policy's" {
		t.Errorf("policy's header: %v", got)
	}
	if got := call(t, on, "GET", "/plain", nil, "").Header().Values(envoy.HeaderDecisionID); len(got) != 1 || len(got[0]) != 36 {
		t.Errorf("decision id header: %v", got)
	}
	for _, path := range []string{"/plain", "/x?a=%zz"} {
		if got := call(t, off, "GET", path, nil, "").Header().Values(envoy.HeaderDecisionID); len(got) != 0 {
			t.Errorf("%s: turned off, yet %v", path, got)
		}
	}
}

// TestExtAuthzHTTPSkipRequestBodyParse: the plugin's skip-request-body-parse
// in the HTTP mode: a body that would not parse is not parsed, so not refused.
func TestExtAuthzHTTPSkipRequestBodyParse(t *testing.T) {
	eval, _, log := newEvaluator(t, `package envoy.authz
allow if not "parsed_body" in object.keys(input)
`)
	skip := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log, SkipRequestBodyParse: true}))
	parse := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	ct := map[string]string{"Content-Type": "application/json"}
	if w := call(t, skip, "POST", "/p", ct, "{broken"); w.Code != 200 {
		t.Errorf("skipped: status %d", w.Code)
	}
	if w := call(t, parse, "POST", "/p", ct, "{broken"); w.Code != 400 {
		t.Errorf("parsed: status %d, want 400", w.Code)
	}
}

// TestExtAuthzHTTPEscapedPrefix: an escaped route prefix does not make the
// original path decoded before it is parsed: /v1/ext%5Fauthz/a%2Fb is still
// refused for its escaped slash, and an escaped prefix with a plain path is
// decided as usual.
func TestExtAuthzHTTPEscapedPrefix(t *testing.T) {
	eval, _, log := newEvaluator(t, `package envoy.authz
allow if input.parsed_path == ["a", "b"]
`)
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Log: log}))
	for path, status := range map[string]int{
		"/v1/ext%5Fauthz/a%2Fb": 400,
		"/v1/ext_authz/a%2Fb":   400,
		"/v1/ext%5Fauthz/a/b":   200,
		"/v1/ext_authz/a/b":     200,
		"/v1/ext_authz%2Fa/b":   400,
	} {
		req := httptest.NewRequest("GET", path, nil)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != status {
			t.Errorf("%s: status %d, want %d", path, w.Code, status)
		}
	}
}
