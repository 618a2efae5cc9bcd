// Package deploy checks the deployment examples in deploy/ against the
// schemas of the programs that read them.
package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/elevatepdp/elevate/test/harness"
)

// deploy/envoy/envoy.yaml is a valid Envoy bootstrap (every typed config
// resolves and validates, as Envoy itself checks at start-up), and its two
// ext_authz filters point at Elevate's gRPC and HTTP modes, failing closed.
func TestEnvoyExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(harness.RepoRoot(t), "deploy", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, &b); err != nil {
		t.Fatalf("not an Envoy bootstrap: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("invalid: %v", err)
	}
	modes := map[string]bool{}
	for _, l := range b.StaticResources.Listeners {
		var hcm hcmv3.HttpConnectionManager
		if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
			t.Fatal(err)
		}
		for _, f := range hcm.HttpFilters {
			var authz extauthzv3.ExtAuthz
			if f.GetTypedConfig().UnmarshalTo(&authz) != nil {
				continue
			}
			if err := authz.ValidateAll(); err != nil {
				t.Fatalf("%s: %v", l.Name, err)
			}
			if authz.FailureModeAllow {
				t.Errorf("%s fails open", l.Name)
			}
			// Each presents Envoy's decision client token, apart from the
			// end user's authorization header.
			switch {
			case authz.GetGrpcService().GetEnvoyGrpc().GetClusterName() == "elevate_grpc":
				for _, md := range authz.GetGrpcService().GetInitialMetadata() {
					modes["grpc"] = modes["grpc"] || md.GetKey() == "authorization" && strings.HasPrefix(md.GetValue(), "Bearer ")
				}
			case authz.GetHttpService().GetPathPrefix() == "/v1/ext_authz":
				for _, h := range authz.GetHttpService().GetAuthorizationRequest().GetHeadersToAdd() {
					modes["http"] = modes["http"] || h.GetKey() == "x-elevate-client-token"
				}
			}
		}
	}
	if !modes["grpc"] || !modes["http"] {
		t.Fatalf("modes found with a client token: %v, want grpc and http", modes)
	}
}
