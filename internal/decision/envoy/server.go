package envoy

import (
	"context"
	"fmt"

	authv2 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v2"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"

	"github.com/elevatepdp/elevate/internal/decision/reason"
	"github.com/elevatepdp/elevate/internal/policy"
)

// ServiceName is the gRPC service Envoy's ext_authz filter calls.
const ServiceName = "envoy.service.auth.v3.Authorization"

// Server is the gRPC envoy.service.auth.v3.Authorization service, with
// gRPC health checking (for Envoy's cluster health checks) and reflection.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	authz  *Authorizer
	health *health.Server
	log    logrus.FieldLogger
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// NewServer returns the service; eval is usually a *decision.Evaluator.
func NewServer(eval Evaluator, opts Options) *Server {
	if opts.Log == nil {
		opts.Log = logrus.StandardLogger()
	}
	h := health.NewServer()
	h.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus(ServiceNameV2, healthpb.HealthCheckResponse_SERVING)
	return &Server{authz: NewAuthorizer(eval, opts), health: h, log: opts.Log}
}

// Register adds the Authorization services (v3 and, as the OPA-Envoy
// plugin serves it, v2), health and reflection to g.
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
	authv2.RegisterAuthorizationServer(g, v2Server{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

// Shutdown reports NOT_SERVING to health checks, so Envoy stops sending
// checks here before the gRPC server stops.
func (s *Server) Shutdown() { s.health.Shutdown() }

// Check is envoy.service.auth.v3.Authorization/Check. It answers every
// request, within the call's deadline: what cannot be decided is denied.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, req, nil)
}

// check decides req, its input built by input (nil: Input(req)).
func (s *Server) check(ctx context.Context, req *authv3.CheckRequest, input func() (map[string]any, error)) (resp *authv3.CheckResponse, err error) {
	defer func() {
		// Authorize recovers its own panics; this covers the conversion.
		if p := recover(); p != nil {
			id := policy.NewDecisionID()
			s.log.WithFields(logrus.Fields{"decision_id": id, "endpoint": EndpointGRPC, "failed": reason.Internal, "panic": fmt.Sprint(p)}).
				Error("decision failed closed: panic")
			failed := failedResponse(id, reason.Internal, 403)
			if s.authz.idHeader {
				failed = failed.withDecisionIDHeader()
			}
			resp, err = failed.CheckResponse(), nil
		}
	}()
	return s.authz.decide(ctx, req, EndpointGRPC, grpcClientCredential(ctx), input).CheckResponse(), nil
}

// ClientMetadata is the gRPC call metadata carrying the gateway's decision
// client token, "Bearer <token>" (Envoy: grpc_service.initial_metadata).
// It is the call's own, apart from the checked request's headers, whose
// authorization is the end user's.
const ClientMetadata = "authorization"

func grpcClientCredential(ctx context.Context) ClientCredential {
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get(ClientMetadata)
	if len(values) == 0 {
		return ClientCredential{}
	}
	return ClientCredential{Authorization: values[0], Many: len(values) > 1}
}
