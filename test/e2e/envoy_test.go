package e2e

import (
	"context"
	"net/http"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// Envoy's ext_authz in both modes, against the server with its built-in
// policies (data.envoy.authz.allow maps requests onto data.pim.gateway) and
// elevations in Redis.
func TestEnvoyExtAuthz(t *testing.T) {
	redis := harness.Redis(t)
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: redis.URL})
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)

	check := func(who, method, path string) codes.Code {
		t.Helper()
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Path: path, Host: "api.example",
				Headers: map[string]string{"authorization": "Bearer " + s.Token(t, who)},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return codes.Code(resp.Status.Code)
	}
	httpCheck := func(who, method, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+"/v1/ext_authz"+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token(t, who))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	tests := map[string]struct {
		who, method, path string
		grpc              codes.Code
		http              int
	}{
		// Perparim's permanent Privileged Role Administrator grants users.read.
		"perparim reads a user":  {"perparim", "GET", "/users/17", codes.OK, 200},
		"perparim creates users": {"perparim", "POST", "/users", codes.PermissionDenied, 403},
		"sophia reads a user":    {"sophia", "GET", "/users/17", codes.PermissionDenied, 403},
		"unknown route":          {"perparim", "GET", "/devices", codes.PermissionDenied, 403},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := check(tc.who, tc.method, tc.path); got != tc.grpc {
				t.Errorf("gRPC: %s, want %s", got, tc.grpc)
			}
			if got := httpCheck(tc.who, tc.method, tc.path); got != tc.http {
				t.Errorf("HTTP mode: %d, want %d", got, tc.http)
			}
		})
	}
}
