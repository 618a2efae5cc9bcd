package envoy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev2 "github.com/envoyproxy/go-control-plane/envoy/api/v2/core"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv2 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v2"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/policy"
)

// decisionLog keeps what the Evaluator hands its decision logger.
type decisionLog struct {
	mu    sync.Mutex
	infos []*server.Info
}

func (l *decisionLog) Log(_ context.Context, info *server.Info) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.infos = append(l.infos, info)
	return nil
}

func (l *decisionLog) find(id string) *server.Info {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, info := range l.infos {
		if info.DecisionID == id {
			return info
		}
	}
	return nil
}

const debugPolicy = `package envoy.authz
allow if not input.parsed_query.debug
`

// TestBadQueryStringRefused: a query that does not parse is refused (400,
// bad_input) as the OPA-Envoy plugin refuses it, never evaluated without the
// bad pair: a policy denying ?debug must not be bypassed. The refusal is in
// the decision log like any decision.
func TestBadQueryStringRefused(t *testing.T) {
	eval, _ := newEvaluator(t, debugPolicy)
	dl := &decisionLog{}
	eval.LogDecisions(dl)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	tests := map[string]struct {
		path string
		want outcome
	}{
		"no debug":             {path: "/x?a=1", want: outcome{Code: codes.OK, Allowed: true}},
		"debug":                {path: "/x?debug=1", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 403}},
		"semicolon separator":  {path: "/x?debug=1;a=2", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"bad escape":           {path: "/x?debug=%zz", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"bad escape elsewhere": {path: "/x?a=%zz&debug=1", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"escaped slash":        {path: "/files/a%2Fb?a=1", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"double encoded dots":  {path: "/a/%252e%252e/admin", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"NUL in a segment":     {path: "/roles/admin%00", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"CRLF in a segment":    {path: "/roles/a%0d%0ab", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"backslash":            {path: `/a\..\admin`, want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
		"dot segment":          {path: "/public/../admin", want: outcome{Code: codes.PermissionDenied, HTTPStatus: 400}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := outcomeOf(check(t, conn, httpRequest("GET", tc.path, nil, "")))
			refused := tc.want.HTTPStatus == 400
			if r := got.Headers[envoy.HeaderDecisionFailed]; refused != (len(r) == 1 && r[0] == reason.BadInput) {
				t.Errorf("%s = %v", envoy.HeaderDecisionFailed, r)
			}
			info := dl.find(got.DecisionID)
			if info == nil {
				t.Fatalf("decision %q is not in the decision log", got.DecisionID)
			}
			if refused && info.Error == nil {
				t.Errorf("the decision log entry of a refusal has no error")
			}
			got.Body, got.Headers = "", nil
			assertOutcome(t, got, tc.want)
		})
	}
}

// TestCheckDryRunKeepsDynamicMetadata: in dry-run a denial is allowed, but
// the decision's dynamic_metadata still reaches Envoy, as with the plugin.
func TestCheckDryRunKeepsDynamicMetadata(t *testing.T) {
	eval, _ := newEvaluator(t, `package envoy.authz
decision := {"allowed": false, "http_status": 401, "dynamic_metadata": {"why": "no token"}}
`)
	conn := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), DryRun: true, Log: discard()})
	got := outcomeOf(check(t, conn, httpRequest("GET", "/x", nil, "")))
	if !got.Allowed || got.Code != codes.OK {
		t.Fatalf("dry run answered %+v, want an allowance", got)
	}
	if got.Metadata["why"] != "no token" || got.Metadata["decision_id"] != got.DecisionID {
		t.Errorf("dynamic metadata = %v, want the decision's and its decision_id", got.Metadata)
	}
}

// TestDecisionIDHeader: every answer carries x-elevate-decision-id, a UUID
// as OPA's decision IDs are, unless the policy sets that header itself
// (never replaced) or the operator turns it off.
func TestDecisionIDHeader(t *testing.T) {
	eval, _ := newEvaluator(t, `package envoy.authz
allow if input.parsed_path[0] == "public"

decision := {"allowed": true, "headers": {"x-elevate-decision-id": "the policy's"}} if input.parsed_path[0] == "own"
decision := {"allowed": false, "headers": {"X-Elevate-Decision-Id": "the policy's"}} if input.parsed_path[0] == "own-denied"
decision := {"allowed": true, "response_headers_to_add": {"x-elevate-decision-id": "the policy's"}} if input.parsed_path[0] == "own-client"
`)
	plain := serve(t, eval, envoy.Options{Log: discard()})
	own := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), Log: discard()})
	off := serve(t, eval, envoy.Options{NoDecisionIDHeader: true, Log: discard()})
	ids := func(resp *authv3.CheckResponse) []string {
		var hs []*corev3.HeaderValueOption
		switch r := resp.GetHttpResponse().(type) {
		case *authv3.CheckResponse_OkResponse:
			hs = append(r.OkResponse.GetHeaders(), r.OkResponse.GetResponseHeadersToAdd()...)
		case *authv3.CheckResponse_DeniedResponse:
			hs = r.DeniedResponse.GetHeaders()
		}
		var out []string
		for _, h := range hs {
			if strings.EqualFold(h.GetHeader().GetKey(), envoy.HeaderDecisionID) {
				out = append(out, h.GetHeader().GetValue())
			}
		}
		return out
	}
	for name, tc := range map[string]struct {
		conn *grpc.ClientConn
		path string
		want string // "uuid": the decision's ID
		none bool
	}{
		"allowed":                           {conn: plain, path: "/public", want: "uuid"},
		"denied":                            {conn: plain, path: "/private", want: "uuid"},
		"refused":                           {conn: plain, path: "/x?a=%zz", want: "uuid"},
		"policy's own header is kept":       {conn: own, path: "/own", want: "the policy's"},
		"policy's own header, denied":       {conn: own, path: "/own-denied", want: "the policy's"},
		"policy's own header to the client": {conn: own, path: "/own-client", want: "the policy's"},
		"turned off, allowed":               {conn: off, path: "/public", none: true},
		"turned off, refused":               {conn: off, path: "/x?a=%zz", none: true},
	} {
		t.Run(name, func(t *testing.T) {
			resp := check(t, tc.conn, httpRequest("GET", tc.path, nil, ""))
			got := ids(resp)
			if tc.none {
				if len(got) != 0 {
					t.Errorf("%s = %v, want none", envoy.HeaderDecisionID, got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%s = %v, want one", envoy.HeaderDecisionID, got)
			}
			id := resp.GetDynamicMetadata().AsMap()["decision_id"].(string)
			if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
				t.Errorf("decision id %q is not a UUID", id)
			}
			if want := tc.want; want == "uuid" && got[0] != id || want != "uuid" && got[0] != want {
				t.Errorf("%s = %q, want %q (decision %s)", envoy.HeaderDecisionID, got[0], want, id)
			}
		})
	}
}

// TestInputPrincipals: the peers' principals (their certificates' URI SAN,
// the SPIFFE id in Istio) are input.source_principal and
// input.destination_principal, as policies written for the plugin expect.
func TestInputPrincipals(t *testing.T) {
	eval, _ := newEvaluator(t, `package envoy.authz
allow if {
	input.source_principal == "spiffe://cluster.local/ns/shop/sa/frontend"
	input.destination_principal == "spiffe://cluster.local/ns/shop/sa/orders"
}
`)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	req := httpRequest("GET", "/orders", nil, "")
	req.Attributes.Source.Principal = "spiffe://cluster.local/ns/shop/sa/frontend"
	req.Attributes.Destination.Principal = "spiffe://cluster.local/ns/shop/sa/orders"
	if got := outcomeOf(check(t, conn, req)); !got.Allowed {
		t.Errorf("the principals' request was denied: %+v", got)
	}
	req.Attributes.Source.Principal = "spiffe://cluster.local/ns/shop/sa/intruder"
	if got := outcomeOf(check(t, conn, req)); got.Allowed {
		t.Errorf("another principal was allowed: %+v", got)
	}
}

// TestCheckV2: envoy.service.auth.v2.Authorization/Check is answered too,
// as by the plugin: the v2 input (version ext_authz "v2"), the same
// decisions, refusals and decision IDs.
func TestCheckV2(t *testing.T) {
	eval, _ := newEvaluator(t, `package envoy.authz
default decision := {"allowed": false, "http_status": 401, "body": "who?", "headers": {"www-authenticate": "Bearer"}}

decision := {"allowed": true, "headers": {"x-v": input.version.ext_authz}} if {
	input.parsed_path == ["public"]
	input.attributes.request.http.method == "GET"
	input.source_principal == "spiffe://a"
}
`)
	conn := serve(t, eval, envoy.Options{Query: policy.MustQuery("data.envoy.authz.decision"), Log: discard()})
	client := authv2.NewAuthorizationClient(conn)
	req := func(path string) *authv2.CheckRequest {
		return &authv2.CheckRequest{Attributes: &authv2.AttributeContext{
			Source: &authv2.AttributeContext_Peer{Principal: "spiffe://a"},
			Request: &authv2.AttributeContext_Request{Http: &authv2.AttributeContext_HttpRequest{
				Method: "GET", Path: path, Headers: map[string]string{":path": path},
			}},
		}}
	}
	header := func(hs []*corev2.HeaderValueOption, k string) string {
		for _, h := range hs {
			if h.GetHeader().GetKey() == k {
				return h.GetHeader().GetValue()
			}
		}
		return ""
	}
	resp, err := client.Check(context.Background(), req("/public"))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil || header(ok.GetHeaders(), "x-v") != "v2" {
		t.Fatalf("allowed v2 request answered %v", resp)
	}
	if _, err := uuid.Parse(header(ok.GetHeaders(), envoy.HeaderDecisionID)); err != nil {
		t.Errorf("no decision ID header: %v", resp)
	}
	resp, err = client.Check(context.Background(), req("/private"))
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDeniedResponse(); codes.Code(resp.GetStatus().GetCode()) != codes.PermissionDenied || d.GetStatus().GetCode() != 401 ||
		d.GetBody() != "who?" || header(d.GetHeaders(), "www-authenticate") != "Bearer" {
		t.Errorf("denied v2 request answered %v", resp)
	}
	resp, err = client.Check(context.Background(), req("/public?debug=1;a=2"))
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 400 || header(d.GetHeaders(), envoy.HeaderDecisionFailed) != reason.BadInput {
		t.Errorf("bad v2 query answered %v", resp)
	}
}

// TestCheckDryRunStillRefusesBadInput: dry-run tries a policy; a request that
// does not parse had no decision to try, and is refused as by the plugin,
// which answers its parse errors before dry-run applies.
func TestCheckDryRunStillRefusesBadInput(t *testing.T) {
	eval, _ := newEvaluator(t, debugPolicy)
	conn := serve(t, eval, envoy.Options{DryRun: true, Log: discard()})
	if got := outcomeOf(check(t, conn, httpRequest("GET", "/x?debug=1;a=2", nil, ""))); got.Allowed || got.HTTPStatus != 400 {
		t.Errorf("dry run answered a bad query with %+v, want 400", got)
	}
	if got := outcomeOf(check(t, conn, httpRequest("GET", "/x?debug=1", nil, ""))); !got.Allowed {
		t.Errorf("dry run denied a parsed request: %+v", got)
	}
}

// TestHTTPSendCacheSharedAcrossChecks: ext_authz requests share OPA's
// inter-query cache, so a policy fetching a JWKS with force_cache fetches it
// once, as under the plugin.
func TestHTTPSendCacheSharedAcrossChecks(t *testing.T) {
	var hits atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys": [{"kid": "k1"}]}`))
	}))
	t.Cleanup(jwks.Close)
	eval, _ := newEvaluator(t, `package envoy.authz
allow if {
	keys := http.send({"method": "GET", "url": "`+jwks.URL+`", "force_cache": true, "force_cache_duration_seconds": 300}).body.keys
	keys[0].kid == "k1"
}
`)
	conn := serve(t, eval, envoy.Options{Log: discard()})
	for range 3 {
		if got := outcomeOf(check(t, conn, httpRequest("GET", "/x", nil, ""))); !got.Allowed {
			t.Fatalf("denied: %+v", got)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d fetches for 3 checks, want 1", n)
	}
}
