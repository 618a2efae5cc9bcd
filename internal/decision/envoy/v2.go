package envoy

import (
	"context"
	"encoding/json"
	"fmt"

	corev2 "github.com/envoyproxy/go-control-plane/envoy/api/v2/core"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv2 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v2"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev2 "github.com/envoyproxy/go-control-plane/envoy/type"
	"github.com/open-policy-agent/opa/v1/util"
	"google.golang.org/protobuf/proto"
)

// ServiceNameV2 is the ext_authz service of Envoy's v2 transport API, which
// Envoy itself no longer speaks; the OPA-Envoy plugin still answers it.
const ServiceNameV2 = "envoy.service.auth.v2.Authorization"

// v2Server answers envoy.service.auth.v2.Authorization/Check as the plugin
// does: decided as a v3 request, with the plugin's v2 input, and answered
// with the parts of the decision a v2 response can carry (headers, status
// and body; no headers to remove, query parameters or dynamic metadata).
type v2Server struct {
	authv2.UnimplementedAuthorizationServer
	s *Server
}

var _ authv2.AuthorizationServer = v2Server{}

// Check is envoy.service.auth.v2.Authorization/Check.
func (v v2Server) Check(ctx context.Context, req *authv2.CheckRequest) (*authv2.CheckResponse, error) {
	// The v3 messages keep the v2 field numbers: the request reads as v3
	// for the subject and the decision log.
	var v3 authv3.CheckRequest
	b, err := proto.Marshal(req)
	if err == nil {
		err = proto.Unmarshal(b, &v3)
	}
	input := func() (map[string]any, error) {
		if err != nil {
			return nil, fmt.Errorf("read v2 check request: %w", err)
		}
		return InputV2(req, v.s.authz.input)
	}
	resp, cerr := v.s.check(ctx, &v3, input)
	if cerr != nil {
		return nil, cerr
	}
	return v2Response(resp), nil
}

// InputV2 is the policy input for a v2 CheckRequest, as the plugin builds
// it: the request as encoding/json writes the v2 Go types (snake_case
// names), version {"ext_authz": "v2", "encoding": "encoding/json"}, and
// parsed_path, parsed_query, parsed_body, truncated_body and
// source_principal as for v3 (Input). v2 has no raw_body.
func InputV2(req *authv2.CheckRequest, opts InputOptions) (map[string]any, error) {
	if req == nil {
		req = &authv2.CheckRequest{}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode v2 check request: %w", err)
	}
	input := map[string]any{}
	if err := util.UnmarshalJSON(b, &input); err != nil {
		return nil, fmt.Errorf("decode v2 check request: %w", err)
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	v3 := &authv3.AttributeContext_HttpRequest{Path: h.GetPath(), Headers: h.GetHeaders(), Body: h.GetBody()}
	if err := addParsed(input, v3, opts); err != nil {
		return nil, err
	}
	input["version"] = map[string]any{"ext_authz": "v2", "encoding": "encoding/json"}
	if p := req.GetAttributes().GetSource().GetPrincipal(); p != "" {
		input["source_principal"] = p
	}
	if p := req.GetAttributes().GetDestination().GetPrincipal(); p != "" {
		input["destination_principal"] = p
	}
	return input, nil
}

// v2Response is the v3 answer as a v2 one.
func v2Response(r *authv3.CheckResponse) *authv2.CheckResponse {
	out := &authv2.CheckResponse{Status: r.GetStatus()}
	headers := func(hs []*corev3.HeaderValueOption) []*corev2.HeaderValueOption {
		var out []*corev2.HeaderValueOption
		for _, h := range hs {
			out = append(out, &corev2.HeaderValueOption{Header: &corev2.HeaderValue{Key: h.GetHeader().GetKey(), Value: h.GetHeader().GetValue()}})
		}
		return out
	}
	switch h := r.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		out.HttpResponse = &authv2.CheckResponse_OkResponse{OkResponse: &authv2.OkHttpResponse{Headers: headers(h.OkResponse.GetHeaders())}}
	case *authv3.CheckResponse_DeniedResponse:
		out.HttpResponse = &authv2.CheckResponse_DeniedResponse{DeniedResponse: &authv2.DeniedHttpResponse{
			Headers: headers(h.DeniedResponse.GetHeaders()),
			Status:  &typev2.HttpStatus{Code: typev2.StatusCode(h.DeniedResponse.GetStatus().GetCode())},
			Body:    h.DeniedResponse.GetBody(),
		}}
	}
	return out
}
