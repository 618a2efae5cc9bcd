package decision_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/elevatepdp/elevate/internal/decision"
	"github.com/elevatepdp/elevate/internal/decision/envoy"
	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/identity"
)

// clientsPolicy allows /public to anyone, and /leak only when the
// gateway's token reached the policy input (it must not).
const clientsPolicy = `package envoy.authz

default allow := false

allow if input.parsed_path == ["public"]

allow if {
	input.parsed_path == ["leak"]
	some name, _ in input.attributes.request.http.headers
	lower(name) == "x-elevate-client-token"
}

allow if {
	input.parsed_path == ["gateway"]
	input.subject == "gateway"
}

allow if {
	input.parsed_path == ["anyone"]
	input.subject != null
}
`

// clientTokens are a user's and a decision client's ("gateway") tokens and
// an Authenticator knowing both.
func clientTokens(t *testing.T) (user, client string, auth *identity.Authenticator) {
	t.Helper()
	user, _ = identity.NewToken()
	client, _ = identity.NewToken()
	auth, err := identity.New(context.Background(), identity.Config{StaticTokens: []identity.StaticToken{
		{Name: subject, Kind: identity.User, SHA256: identity.HashToken(user)},
		{Name: "gateway", Kind: identity.Client, SHA256: identity.HashToken(client)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return user, client, auth
}

// grpcCheck is Envoy's gRPC check of GET path with the end user's headers,
// the call carrying metadata md (the gateway's credential).
func grpcCheck(t *testing.T, conn *grpc.ClientConn, path string, headers map[string]string, md ...string) (allowed bool, failed string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	h := map[string]string{":authority": "app.example", ":method": "GET", ":path": path}
	for k, v := range headers {
		h[k] = v
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "1", Method: "GET", Path: path, Host: "app.example", Scheme: "https", Protocol: "HTTP/1.1", Headers: h,
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if d := resp.GetDeniedResponse(); d != nil {
		for _, hv := range d.GetHeaders() {
			if hv.GetHeader().GetKey() == envoy.HeaderDecisionFailed {
				failed = hv.GetHeader().GetValue()
			}
		}
	}
	return resp.GetOkResponse() != nil, failed
}

func serveGRPC(t *testing.T, eval *decision.Evaluator, opts envoy.Options) *grpc.ClientConn {
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

// With decision clients required, ext_authz in both modes (and
// forward-auth) decides only for a gateway presenting a decision client's
// token in its own place: gRPC call metadata, X-Elevate-Client-Token.
func TestRequireTokenCoversExtAuthz(t *testing.T) {
	user, client, auth := clientTokens(t)
	eval, _, log := newEvaluator(t, clientsPolicy)
	conn := serveGRPC(t, eval, envoy.Options{Auth: auth, Clients: auth, Log: log})
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Auth: auth, Clients: auth, Log: log}))
	open := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Auth: auth, Log: log}))

	tests := map[string]struct {
		md      []string          // gRPC call metadata
		headers map[string]string // HTTP check headers
		allowed bool
	}{
		"no client token":  {},
		"a client's token": {md: []string{"authorization", "Bearer " + client}, headers: map[string]string{decision.ClientTokenHeader: client}, allowed: true},
		"a user's token":   {md: []string{"authorization", "Bearer " + user}, headers: map[string]string{decision.ClientTokenHeader: user}},
		"an unknown token": {md: []string{"authorization", "Bearer elv_nope"}, headers: map[string]string{decision.ClientTokenHeader: "elv_nope"}},
		"an empty token":   {md: []string{"authorization", ""}, headers: map[string]string{decision.ClientTokenHeader: ""}},
		"the token twice":  {md: []string{"authorization", "Bearer " + client, "authorization", "Bearer " + client}},
		"the end user's authorization is not the gateway's": {
			headers: map[string]string{"Authorization": "Bearer " + client},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if tc.md != nil || tc.headers == nil {
				allowed, failed := grpcCheck(t, conn, "/public", nil, tc.md...)
				if allowed != tc.allowed {
					t.Errorf("gRPC: allowed = %v, want %v", allowed, tc.allowed)
				}
				if !tc.allowed && failed != reason.UnauthenticatedClient {
					t.Errorf("gRPC: failed = %q, want %s", failed, reason.UnauthenticatedClient)
				}
			}
			if tc.headers != nil || tc.md == nil {
				w := call(t, r, "GET", "/public", tc.headers, "")
				if (w.Code == http.StatusOK) != tc.allowed {
					t.Errorf("HTTP: status = %d, allowed want %v", w.Code, tc.allowed)
				}
				if !tc.allowed && w.Header().Get(envoy.HeaderDecisionFailed) != reason.UnauthenticatedClient {
					t.Errorf("HTTP: failed = %q, want %s", w.Header().Get(envoy.HeaderDecisionFailed), reason.UnauthenticatedClient)
				}
				// A refusal is a decision too: the gateway can find it in the log.
				if w.Header().Get(envoy.HeaderDecisionID) == "" {
					t.Errorf("HTTP: no %s header", envoy.HeaderDecisionID)
				}
			}
		})
	}
	t.Run("the gRPC end user's authorization is not the gateway's", func(t *testing.T) {
		if allowed, _ := grpcCheck(t, conn, "/public", map[string]string{"authorization": "Bearer " + client}); allowed {
			t.Error("a client token in the checked request's headers authenticated the gateway")
		}
	})
	t.Run("the HTTP token twice", func(t *testing.T) {
		req := httptest.NewRequest("GET", decision.ExtAuthzPrefix+"/public", nil)
		req.Header.Add(decision.ClientTokenHeader, client)
		req.Header.Add(decision.ClientTokenHeader, client)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			t.Error("two client tokens were taken")
		}
	})
	t.Run("the gateway's token never reaches the policy", func(t *testing.T) {
		if w := call(t, r, "GET", "/leak", map[string]string{decision.ClientTokenHeader: client}, ""); w.Code == http.StatusOK {
			t.Error("the policy saw X-Elevate-Client-Token")
		}
		if w := call(t, open, "GET", "/leak", map[string]string{decision.ClientTokenHeader: client}, ""); w.Code == http.StatusOK {
			t.Error("the policy saw X-Elevate-Client-Token (open endpoints)")
		}
	})
	t.Run("dry-run does not open them", func(t *testing.T) {
		dry := serveGRPC(t, eval, envoy.Options{Auth: auth, Clients: auth, DryRun: true, Log: log})
		if allowed, _ := grpcCheck(t, dry, "/public", nil); allowed {
			t.Error("gRPC dry-run answered a gateway without a token")
		}
		dryHTTP := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Auth: auth, Clients: auth, DryRun: true, Log: log}))
		if w := call(t, dryHTTP, "GET", "/public", nil, ""); w.Code == http.StatusOK {
			t.Error("HTTP dry-run answered a gateway without a token")
		}
	})
	t.Run("open without Clients", func(t *testing.T) {
		if w := call(t, open, "GET", "/public", nil, ""); w.Code != http.StatusOK {
			t.Errorf("status = %d", w.Code)
		}
	})
}

// A decision client's token sent as the end user's bearer token is no
// subject: a policy that allows the subject named like the client, or any
// subject at all, denies.
func TestExtAuthzClientTokenIsNotASubject(t *testing.T) {
	user, client, auth := clientTokens(t)
	eval, _, log := newEvaluator(t, clientsPolicy)
	conn := serveGRPC(t, eval, envoy.Options{Auth: auth, Log: log})
	r := router(decision.NewExtAuthzHTTP(eval, decision.ExtAuthzOptions{Auth: auth, Log: log}))
	for _, path := range []string{"/gateway", "/anyone"} {
		if allowed, _ := grpcCheck(t, conn, path, map[string]string{"authorization": "Bearer " + client}); allowed {
			t.Errorf("gRPC %s: a client's token was taken as the subject", path)
		}
		if w := call(t, r, "GET", path, map[string]string{"Authorization": "Bearer " + client}, ""); w.Code == http.StatusOK {
			t.Errorf("HTTP %s: a client's token was taken as the subject", path)
		}
	}
	// The policy does tell subjects apart: a user's token is one.
	if allowed, _ := grpcCheck(t, conn, "/anyone", map[string]string{"authorization": "Bearer " + user}); !allowed {
		t.Error("gRPC: a user's token is no subject")
	}
	if w := call(t, r, "GET", "/anyone", map[string]string{"Authorization": "Bearer " + user}, ""); w.Code != http.StatusOK {
		t.Errorf("HTTP: a user's token is no subject (%d)", w.Code)
	}
}
