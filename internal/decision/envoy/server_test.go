package envoy_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
	"github.com/elevatepdp/elevate/internal/policy"
	"github.com/elevatepdp/elevate/internal/workflow"
)

// testPolicy exercises every part of the input and of the decision shape.
const testPolicy = `package envoy.authz

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
	input.parsed_body.meta[0].kind == "report"
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
	input.parsed_path == ["version"]
	input.version == {"ext_authz": "v3", "encoding": "protojson"}
	is_number(input.now)
	input.attributes.source.address.socketAddress.portValue == 51000
	input.attributes.destination.address.socketAddress.address == "10.0.0.2"
}

# Two values for one complete rule: an evaluation error.
conflict := "a" if input.parsed_path[0] == "boom"

conflict := "b" if input.parsed_path[0] == "boom"

allow if conflict == "a"

# Long enough to outlive any deadline in these tests, unless cancelled.
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
	"request_headers_to_remove": ["one-auth-header"],
	"body": "Unauthorized Request",
	"http_status": 401,
	"dynamic_metadata": {"team": "payments", "level": 2},
}

plain_decision := {"allowed": allow}

not_a_decision := "yes"

bad_allowed := {"allowed": "yes"}

bad_status := {"allowed": false, "http_status": 999}
`

const subject = "sophia.davis@perparims.example"

// elevations is a fixed store: the subject holds db-admin.
type elevations map[string][]workflow.Elevation

func (e elevations) Elevations(_ context.Context, subject string, _ time.Time) ([]workflow.Elevation, error) {
	return e[subject], nil
}

var held = elevations{subject: {{ID: "act-1", Role: "db-admin", Scope: "/"}}}

// newEvaluator builds a real engine from rego written to a temporary
// directory, and the Evaluator over it.
func newEvaluator(t *testing.T, rego string) (*decision.Evaluator, *logtest.Hook) {
	t.Helper()
	eval, hook, _ := newEvaluatorLog(t, rego)
	return eval, hook
}

// newEvaluatorLog is newEvaluator with the logger the hook records.
func newEvaluatorLog(t *testing.T, rego string) (*decision.Evaluator, *logtest.Hook, logrus.FieldLogger) {
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
	return decision.NewEvaluator(engine, held, log), hook, log
}

// serve runs the service on a loopback listener and returns a connection.
func serve(t *testing.T, eval *decision.Evaluator, opts envoy.Options) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	envoy.NewServer(eval, opts).Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func check(t *testing.T, conn *grpc.ClientConn, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// httpRequest is a CheckRequest as Envoy sends it.
func httpRequest(method, path string, headers map[string]string, body string) *authv3.CheckRequest {
	h := map[string]string{":authority": "app.example", ":method": method, ":path": path, "x-request-id": "req-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51000}},
		}}},
		Destination: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "10.0.0.2", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: method, Path: path, Host: "app.example", Scheme: "https", Protocol: "HTTP/1.1",
			Headers: h, Body: body, Size: int64(len(body)),
		}},
	}}
}

// outcome is what Envoy does with a CheckResponse, in comparable form.
type outcome struct {
	Code       codes.Code
	Allowed    bool
	HTTPStatus int
	Headers    map[string][]string // upstream when allowed, client when denied; without the decision ID
	ToClient   map[string][]string // response_headers_to_add
	ToRemove   []string
	Body       string
	DecisionID string
	Metadata   map[string]any
}

func outcomeOf(resp *authv3.CheckResponse) outcome {
	o := outcome{Code: codes.Code(resp.GetStatus().GetCode()), Metadata: resp.GetDynamicMetadata().AsMap()}
	collect := func(opts []*corev3.HeaderValueOption) map[string][]string {
		m := map[string][]string{}
		for _, h := range opts {
			if h.GetHeader().GetKey() == envoy.HeaderDecisionID {
				o.DecisionID = h.GetHeader().GetValue()
				continue
			}
			m[h.GetHeader().GetKey()] = append(m[h.GetHeader().GetKey()], h.GetHeader().GetValue())
		}
		return m
	}
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		o.Allowed = true
		o.Headers = collect(r.OkResponse.GetHeaders())
		o.ToClient = collect(r.OkResponse.GetResponseHeadersToAdd())
		o.ToRemove = r.OkResponse.GetHeadersToRemove()
	case *authv3.CheckResponse_DeniedResponse:
		o.HTTPStatus = int(r.DeniedResponse.GetStatus().GetCode())
		o.Headers = collect(r.DeniedResponse.GetHeaders())
		o.Body = r.DeniedResponse.GetBody()
	}
	return o
}

func TestCheck(t *testing.T) {
	eval, _ := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	obj := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), Log: discard()})
	plainObj := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.plain_decision"), Log: discard()})
	notDecision := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.not_a_decision"), Log: discard()})
	badAllowed := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.bad_allowed"), Log: discard()})
	badStatus := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.bad_status"), Log: discard()})
	undefined := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.nothing_here"), Log: discard()})
	bySubjectHeader := serve(t, eval, envoy.Options{SubjectHeader: "X-Elevate-Subject", Log: discard()})

	jsonBody := map[string]string{"content-type": "application/json"}
	tests := map[string]struct {
		conn   *grpc.ClientConn
		req    *authv3.CheckRequest
		want   outcome
		failed string
	}{
		"allow": {
			conn: conn, req: httpRequest("GET", "/public/index.html", nil, ""),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"deny": {
			conn: conn, req: httpRequest("DELETE", "/public/index.html", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"object allows with headers to add and remove": {
			conn: obj, req: httpRequest("GET", "/public", nil, ""),
			want: outcome{
				Code: codes.OK, Allowed: true,
				Headers:  map[string][]string{"x-ext-auth-allow": {"yes"}, "x-multi": {"1", "2"}},
				ToClient: map[string][]string{"x-foo": {"bar"}},
				ToRemove: []string{"one-auth-header"},
			},
		},
		"object denies with status, body and headers": {
			conn: obj, req: httpRequest("GET", "/private", nil, ""),
			want: outcome{
				Code: codes.PermissionDenied, HTTPStatus: 401, Body: "Unauthorized Request",
				Headers: map[string][]string{"x-ext-auth-allow": {"yes"}, "x-multi": {"1", "2"}},
			},
		},
		"object without optional fields": {
			conn: plainObj, req: httpRequest("POST", "/private", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"undefined decision denies": {
			conn: undefined, req: httpRequest("GET", "/public", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"decision neither boolean nor object": {
			conn: notDecision, req: httpRequest("GET", "/public", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403}, failed: reason.PolicyError,
		},
		"object with non-boolean allowed": {
			conn: badAllowed, req: httpRequest("GET", "/public", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403}, failed: reason.PolicyError,
		},
		"object with impossible status": {
			conn: badStatus, req: httpRequest("GET", "/public", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403}, failed: reason.PolicyError,
		},
		"parsed_query": {
			conn: conn, req: httpRequest("GET", "/search?q=elevate&tag=a&tag=b", nil, ""),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"parsed_query, one value missing": {
			conn: conn, req: httpRequest("GET", "/search?q=elevate&tag=a", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"parsed_body JSON": {
			conn: conn, req: httpRequest("POST", "/orders", jsonBody, `{"amount": 42}`),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"parsed_body JSON, over the limit": {
			conn: conn, req: httpRequest("POST", "/orders", jsonBody, `{"amount": 420}`),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"parsed_body of a truncated body is null": {
			conn: conn,
			req: httpRequest("POST", "/truncated", map[string]string{
				"content-type": "application/json", "content-length": "100",
			}, `{"amount": `),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"parsed_body form": {
			conn: conn, req: httpRequest("POST", "/login", map[string]string{"content-type": "application/x-www-form-urlencoded"}, "user=sophia"),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"parsed_body multipart": {
			conn: conn, req: httpRequest("POST", "/upload", map[string]string{"content-type": "multipart/form-data; boundary=XyZ"},
				"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nQ3\r\n"+
					"--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"kind\":\"report\"}\r\n--XyZ--\r\n"),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"malformed JSON body": {
			conn: conn, req: httpRequest("POST", "/orders", jsonBody, `{"amount": `),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}, failed: reason.BadInput,
		},
		"malformed path": {
			conn: conn, req: httpRequest("GET", "/public/%zz", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}, failed: reason.BadInput,
		},
		// Envoy's network filter sends no HTTP request: evaluated, as by
		// the plugin, with an empty path.
		"no attributes": {
			conn: conn, req: &authv3.CheckRequest{},
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"no http request": {
			conn: conn, req: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}},
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"policy error": {
			conn: conn, req: httpRequest("GET", "/boom", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403}, failed: reason.PolicyError,
		},
		"version, now and peers": {
			conn: conn, req: httpRequest("GET", "/version", nil, ""),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"elevations of the subject from a trusted header": {
			conn: bySubjectHeader, req: httpRequest("GET", "/db/orders", map[string]string{"x-elevate-subject": "Sophia.Davis@perparims.example"}, ""),
			want: outcome{Code: codes.OK, Allowed: true},
		},
		"no elevations without a subject": {
			conn: bySubjectHeader, req: httpRequest("GET", "/db/orders", nil, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"subject header ignored unless configured": {
			conn: conn, req: httpRequest("GET", "/db/orders", map[string]string{"x-elevate-subject": subject}, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
		"someone else's elevations are not the subject's": {
			conn: bySubjectHeader, req: httpRequest("GET", "/db/orders", map[string]string{"x-elevate-subject": "liam.chen@perparims.example"}, ""),
			want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := outcomeOf(check(t, tc.conn, tc.req))
			if got.DecisionID == "" {
				t.Errorf("no %s header", envoy.HeaderDecisionID)
			}
			if got.Metadata["decision_id"] != got.DecisionID {
				t.Errorf("dynamic metadata decision_id = %v, want %q", got.Metadata["decision_id"], got.DecisionID)
			}
			if tc.failed != "" {
				if r := got.Headers[envoy.HeaderDecisionFailed]; len(r) != 1 || r[0] != tc.failed {
					t.Errorf("%s = %v, want %q", envoy.HeaderDecisionFailed, r, tc.failed)
				}
				var body struct {
					DecisionID string `json:"decision_id"`
					Reason     string `json:"reason"`
				}
				if err := jsonUnmarshal(got.Body, &body); err != nil || body.Reason != tc.failed || body.DecisionID != got.DecisionID {
					t.Errorf("body = %s (%v), want decision_id %q and reason %q", got.Body, err, got.DecisionID, tc.failed)
				}
				if ct := got.Headers["content-type"]; len(ct) != 1 || ct[0] != "application/json" {
					t.Errorf("content-type = %v", ct)
				}
				got.Body, got.Headers = "", nil
			} else if _, ok := got.Headers[envoy.HeaderDecisionFailed]; ok {
				t.Errorf("unexpected %s", envoy.HeaderDecisionFailed)
			}
			assertOutcome(t, got, tc.want)
		})
	}
}

func assertOutcome(t *testing.T, got, want outcome) {
	t.Helper()
	if got.Code != want.Code || got.Allowed != want.Allowed || got.HTTPStatus != want.HTTPStatus || got.Body != want.Body {
		t.Errorf("got code %v allowed %v status %d body %q; want code %v allowed %v status %d body %q",
			got.Code, got.Allowed, got.HTTPStatus, got.Body, want.Code, want.Allowed, want.HTTPStatus, want.Body)
	}
	for _, c := range []struct {
		name      string
		got, want map[string][]string
	}{{"headers", got.Headers, want.Headers}, {"response headers to add", got.ToClient, want.ToClient}} {
		if len(c.got) != len(c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			continue
		}
		for k, v := range c.want {
			if strings.Join(c.got[k], "|") != strings.Join(v, "|") {
				t.Errorf("%s[%s] = %v, want %v", c.name, k, c.got[k], v)
			}
		}
	}
	if strings.Join(got.ToRemove, "|") != strings.Join(want.ToRemove, "|") {
		t.Errorf("headers to remove = %v, want %v", got.ToRemove, want.ToRemove)
	}
}

func TestCheckDynamicMetadata(t *testing.T) {
	eval, _ := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), Log: discard()})
	md := outcomeOf(check(t, conn, httpRequest("GET", "/public", nil, ""))).Metadata
	if md["team"] != "payments" || md["level"] != 2.0 {
		t.Errorf("dynamic metadata = %v", md)
	}
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

// The primer's parsed_query example, unchanged.
const primerQueryPolicy = `package envoy.authz

import rego.v1

default allow := false

allow if {
	input.parsed_path == ["people"]
	input.parsed_query.lang == ["en"]
	input.parsed_query.id == ["1", "2"]
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

// primerCase is a request to a documentation policy and whether it passes.
type primerCase struct {
	policy                   string
	method, path, auth, body string
	allowed                  bool
}

func primerCases(t *testing.T) map[string]primerCase {
	now := time.Now().Unix()
	token := func(role, sub string, exp int64) string {
		return "Bearer " + hs256(t, map[string]any{"role": role, "sub": sub, "nbf": now - 60, "exp": exp})
	}
	alice := base64.URLEncoding.EncodeToString([]byte("alice"))
	bob := base64.URLEncoding.EncodeToString([]byte("bob"))
	return map[string]primerCase{
		"guest reads a person":       {primerPolicy, "GET", "/people/1", token("guest", alice, now+3600), "", true},
		"guest cannot add a person":  {primerPolicy, "POST", "/people", token("guest", alice, now+3600), `{"firstname": "Charlie"}`, false},
		"admin adds someone else":    {primerPolicy, "POST", "/people", token("admin", bob, now+3600), `{"firstname": "Charlie"}`, true},
		"admin cannot add themself":  {primerPolicy, "POST", "/people", token("admin", bob, now+3600), `{"firstname": "Bob"}`, false},
		"expired token":              {primerPolicy, "GET", "/people/1", token("admin", bob, now-1), "", false},
		"forged token":               {primerPolicy, "GET", "/people/1", token("admin", bob, now+3600) + "x", "", false},
		"no token":                   {primerPolicy, "GET", "/people/1", "", "", false},
		"parsed_query example":       {primerQueryPolicy, "GET", "/people?lang=en&id=1&id=2", "", "", true},
		"parsed_query example, miss": {primerQueryPolicy, "GET", "/people?lang=fr&id=1&id=2", "", "", false},
	}
}

func TestCheckPrimerPolicies(t *testing.T) {
	conns := map[string]*grpc.ClientConn{}
	for _, p := range []string{primerPolicy, primerQueryPolicy} {
		eval, _ := newEvaluator(t, p)
		conns[p] = serve(t, eval, envoy.Options{Log: discard()})
	}
	for name, tc := range primerCases(t) {
		t.Run(name, func(t *testing.T) {
			headers := map[string]string{"content-type": "application/json"}
			if tc.auth != "" {
				headers["authorization"] = tc.auth
			}
			got := outcomeOf(check(t, conns[tc.policy], httpRequest(tc.method, tc.path, headers, tc.body)))
			if got.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v", got.Allowed, tc.allowed)
			}
		})
	}
}

func TestCheckSubjectFromToken(t *testing.T) {
	userToken, err := identity.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	clientToken, _ := identity.NewToken()
	auth, err := identity.New(context.Background(), identity.Config{StaticTokens: []identity.StaticToken{
		{Name: subject, Kind: identity.User, SHA256: identity.HashToken(userToken)},
		{Name: "gateway", Kind: identity.Client, SHA256: identity.HashToken(clientToken)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	eval, hook := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Auth: auth, SubjectHeader: "x-elevate-subject", Log: discard()})
	tests := map[string]struct {
		headers map[string]string
		allowed bool
	}{
		"a user's token":             {map[string]string{"authorization": "Bearer " + userToken}, true},
		"a client's token is nobody": {map[string]string{"authorization": "Bearer " + clientToken}, false},
		"an unknown token is nobody": {map[string]string{"authorization": "Bearer elv_nope"}, false},
		// Each of these allows only if the right one of the two is the
		// subject: sophia is allowed, liam is not.
		"a user's token wins over the header":           {map[string]string{"authorization": "Bearer " + userToken, "x-elevate-subject": "liam.chen@perparims.example"}, true},
		"a client's token is no subject, the header is": {map[string]string{"authorization": "Bearer " + clientToken, "x-elevate-subject": subject}, true},
		"the header without a token":                    {map[string]string{"x-elevate-subject": subject}, true},
		"a bad token falls back to the header":          {map[string]string{"authorization": "Bearer elv_nope", "x-elevate-subject": subject}, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			hook.Reset()
			for _, path := range []string{"/whoami", "/db/x"} {
				got := outcomeOf(check(t, conn, httpRequest("GET", path, tc.headers, "")))
				if got.Allowed != tc.allowed {
					t.Errorf("%s: allowed = %v, want %v", path, got.Allowed, tc.allowed)
				}
			}
			// The decision log never shows a credential, and does show that
			// one was sent: an absent field must fail, not pass.
			decisions := 0
			for _, e := range hook.AllEntries() {
				if e.Message != "decision" {
					continue
				}
				decisions++
				h, ok := e.Data["headers"].(map[string]string)
				if !ok {
					t.Fatalf("decision log line without headers: %v", e.Data)
				}
				if _, sent := tc.headers["authorization"]; sent {
					if got, ok := h["authorization"]; !ok || got != "Bearer <masked>" {
						t.Errorf("decision log authorization = %q (present %v), want Bearer <masked>", got, ok)
					}
				}
			}
			if decisions != 2 {
				t.Errorf("%d decision log lines, want 2", decisions)
			}
		})
	}
}

func TestCheckMasksCredentialsInDecisionLog(t *testing.T) {
	eval, hook := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	check(t, conn, httpRequest("GET", "/public", map[string]string{
		"authorization": "Bearer secret-token", "cookie": "session=secret", "proxy-authorization": "Basic c2VjcmV0", "accept": "text/html",
		"set-cookie": "session=secret", "x-elevate-client-token": "elv_gateway-secret",
	}, ""))
	entry := lastDecision(t, hook)
	headers, _ := entry.Data["headers"].(map[string]string)
	for k, want := range map[string]string{
		"authorization": "Bearer <masked>", "cookie": "<masked>", "proxy-authorization": "Basic <masked>",
		"set-cookie": "<masked>", "x-elevate-client-token": "<masked>",
	} {
		if headers[k] != want {
			t.Errorf("decision log %s = %q, want %q", k, headers[k], want)
		}
	}
	if headers["accept"] != "text/html" {
		t.Errorf("decision log accept = %q", headers["accept"])
	}
	if entry.Data["endpoint"] != envoy.EndpointGRPC || entry.Data["path"] != "/public" || entry.Data["source"] != "10.0.0.1:51000" {
		t.Errorf("decision log fields = %v", entry.Data)
	}
}

func TestCheckDryRun(t *testing.T) {
	eval, hook, log := newEvaluatorLog(t, testPolicy)
	obj := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), DryRun: true, Log: log})
	conn := serve(t, eval, envoy.Options{DryRun: true, Log: log})

	got := outcomeOf(check(t, obj, httpRequest("DELETE", "/private", nil, "")))
	if got.Code != codes.OK || !got.Allowed || got.DecisionID == "" {
		t.Fatalf("dry run answered %+v, want an allowance", got)
	}
	// The decision log says what the policy decided.
	d := lastDecision(t, hook)
	if d.Data["dry_run"] != true || d.Data["decision_id"] != got.DecisionID {
		t.Errorf("decision log = %v", d.Data)
	}
	if res, _ := d.Data["result"].(map[string]any); res["allowed"] != false {
		t.Errorf("decision log result = %v, want the real denial", d.Data["result"])
	}
	if !logged(hook, func(e *logrus.Entry) bool {
		return e.Data["decision_id"] == got.DecisionID && e.Data["allowed"] == false && e.Data["http_status"] == 401
	}) {
		t.Error("no log line saying the request was denied in truth")
	}

	// Failures too are allowed, and logged as what they were.
	got = outcomeOf(check(t, conn, httpRequest("GET", "/boom", nil, "")))
	if !got.Allowed {
		t.Errorf("dry run denied a failed decision: %+v", got)
	}
	if !logged(hook, func(e *logrus.Entry) bool {
		return e.Data["decision_id"] == got.DecisionID && e.Data["failed"] == reason.PolicyError
	}) {
		t.Error("no log line saying the decision failed")
	}

	// An allowance is an allowance.
	if got := outcomeOf(check(t, obj, httpRequest("GET", "/public", nil, ""))); !got.Allowed || got.Headers["x-ext-auth-allow"] == nil {
		t.Errorf("dry run changed an allowance: %+v", got)
	}
}

func TestCheckDeadline(t *testing.T) {
	eval, hook := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	// Connect and prepare the query first, so the deadline is all the
	// evaluation's.
	check(t, conn, httpRequest("GET", "/public", nil, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, httpRequest("GET", "/slow", nil, ""))
	switch {
	case err != nil && status.Code(err) != codes.DeadlineExceeded:
		t.Fatalf("Check: %v, want DeadlineExceeded", err)
	case err == nil && resp.GetStatus().GetCode() == int32(codes.OK):
		t.Fatal("a request that ran out of time was allowed")
	}
	// The evaluation stopped at the deadline and failed closed, rather than
	// running to its end. When the client's deadline passes, gRPC cancels
	// the call, so the Evaluator sees a cancelled context (policy_error)
	// or, if the server's own timer fires first, a timeout.
	deadline := time.Now().Add(5 * time.Second)
	stopped := func(e *logrus.Entry) bool {
		err, _ := e.Data["error"].(string)
		return (e.Data["failed"] == reason.PolicyTimeout || e.Data["failed"] == reason.PolicyError) &&
			strings.Contains(err, "cancel")
	}
	for !logged(hook, stopped) {
		if time.Now().After(deadline) {
			t.Fatal("evaluation did not stop at the deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("evaluation took %v", d)
	}
}

func TestHealthAndReflection(t *testing.T) {
	eval, _ := newEvaluator(t, testPolicy)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, svc := range []string{"", envoy.ServiceName} {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), envoy.ServiceName) {
		t.Errorf("reflection lists %v, not %s", names, envoy.ServiceName)
	}
}

func TestShutdownReportsNotServing(t *testing.T) {
	eval, _ := newEvaluator(t, testPolicy)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv := envoy.NewServer(eval, envoy.Options{Log: discard()})
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	srv.Shutdown()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: envoy.ServiceName})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("health after Shutdown = %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
}

func discard() logrus.FieldLogger {
	log, _ := logtest.NewNullLogger()
	return log
}

func logged(hook *logtest.Hook, match func(*logrus.Entry) bool) bool {
	for _, e := range hook.AllEntries() {
		if match(e) {
			return true
		}
	}
	return false
}

// lastDecision is the Evaluator's last decision log line.
func lastDecision(t *testing.T, hook *logtest.Hook) *logrus.Entry {
	t.Helper()
	entries := hook.AllEntries()
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Message == "decision" || entries[i].Message == "decision failed closed" {
			return entries[i]
		}
	}
	t.Fatal("no decision logged")
	return nil
}

func jsonUnmarshal(s string, v any) error {
	return json.Unmarshal([]byte(s), v)
}
