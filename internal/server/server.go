// Package server wires Elevate's listeners, health endpoints and orderly
// shutdown around the policy engine.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/elevatepdp/elevate/internal/httperr"
	"github.com/elevatepdp/elevate/internal/policy"
)

// Registrar adds routes: the API packages implement it.
type Registrar interface {
	Register(r gin.IRouter)
}

// GRPCRegistrar adds gRPC services: the Envoy ext_authz server does.
type GRPCRegistrar interface {
	Register(g *grpc.Server)
}

// Options configure a Server.
type Options struct {
	Addr string
	// GRPCAddr is where gRPC services listen; unused without GRPC services.
	GRPCAddr        string
	GRPC            []GRPCRegistrar
	ShutdownTimeout time.Duration
	// ReadTimeout bounds reading one request, body included, on the HTTP
	// listener, and the connection handshake on the gRPC one: a client
	// trickling bytes cannot hold a connection longer. Zero means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	Engine      *policy.Engine
	Logger      *logrus.Logger
	// APIs are served beside the health endpoints.
	APIs []Registrar
	// Checks must pass for the replica to be ready (the store, say); each
	// gets a short deadline.
	Checks map[string]func(context.Context) error
}

// DefaultReadTimeout is Options.ReadTimeout when zero.
const DefaultReadTimeout = 30 * time.Second

// Bounds of the gRPC listener's connections. A connection that sends
// nothing for grpcMaxIdle is closed; a live one is pinged after grpcPing
// of silence and closed when the ping is not answered within
// grpcPingTimeout; a client pinging more often than every grpcMinPing is
// disconnected (Envoy's default keepalive is well above it). Every
// connection is asked to go away after grpcMaxAge, and closed ReadTimeout
// later: gRPC cannot bound the reading of one message, so this bounds how
// long a stream trickling bytes can hold a connection.
const (
	grpcMaxIdle     = 5 * time.Minute
	grpcPing        = time.Minute
	grpcPingTimeout = 20 * time.Second
	grpcMinPing     = 10 * time.Second
	grpcMaxAge      = time.Hour
)

// Server is one Elevate replica's listeners: HTTP, and gRPC when a gRPC
// service is registered.
type Server struct {
	opts         Options
	log          *logrus.Logger
	handler      *gin.Engine
	http         *http.Server
	listener     net.Listener
	grpc         *grpc.Server
	grpcListener net.Listener
	stopping     atomic.Bool
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the server and its routes; Listen and Serve start it.
func New(opts Options) *Server {
	s := &Server{opts: opts, log: opts.Logger}
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.Use(s.requestID(), s.accessLog(), s.recovery())
	r.NoRoute(func(c *gin.Context) {
		httperr.Abort(c, http.StatusNotFound, httperr.New("not_found", fmt.Sprintf("no route for %s %s", c.Request.Method, c.Request.URL.Path)))
	})
	r.NoMethod(func(c *gin.Context) {
		httperr.Abort(c, http.StatusMethodNotAllowed, httperr.New("method_not_allowed", fmt.Sprintf("%s is not allowed on %s", c.Request.Method, c.Request.URL.Path)))
	})
	r.GET("/health", s.health)
	r.GET("/health/ready", s.ready)
	for _, api := range opts.APIs {
		api.Register(r)
	}
	s.handler = r
	read := opts.ReadTimeout
	if read <= 0 {
		read = DefaultReadTimeout
	}
	s.http = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: min(10*time.Second, read),
		// The whole request, body included: a body sent a byte at a time
		// is cut when it runs out.
		ReadTimeout: read,
		IdleTimeout: 2 * time.Minute,
	}
	if len(opts.GRPC) > 0 {
		s.grpc = grpc.NewServer(
			grpc.ConnectionTimeout(read),
			grpc.KeepaliveParams(keepalive.ServerParameters{
				MaxConnectionIdle: grpcMaxIdle, Time: grpcPing, Timeout: grpcPingTimeout,
				MaxConnectionAge: grpcMaxAge, MaxConnectionAgeGrace: read,
			}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPing, PermitWithoutStream: true}),
		)
		for _, svc := range opts.GRPC {
			svc.Register(s.grpc)
		}
	}
	return s
}

// Handler is the HTTP handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the HTTP address, and the gRPC one when there are gRPC
// services; a bad or busy address fails here, before anything is served.
func (s *Server) Listen() (net.Addr, error) {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.opts.Addr, err)
	}
	if s.grpc != nil {
		g, err := net.Listen("tcp", s.opts.GRPCAddr)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listen on %s (gRPC): %w", s.opts.GRPCAddr, err)
		}
		s.grpcListener = g
	}
	s.listener = ln
	return ln.Addr(), nil
}

// GRPCAddr is the bound gRPC address, nil without gRPC services.
func (s *Server) GRPCAddr() net.Addr {
	if s.grpcListener == nil {
		return nil
	}
	return s.grpcListener.Addr()
}

// Serve serves on the bound listener until ctx ends, then shuts down in
// order: readiness turns false, new connections stop, in-flight requests
// finish within the shutdown timeout.
func (s *Server) Serve(ctx context.Context) error {
	if s.listener == nil {
		return errors.New("serve: Listen was not called")
	}
	s.log.WithField("addr", s.listener.Addr().String()).Info("serving HTTP")
	served := make(chan error, 1)
	go func() { served <- s.http.Serve(s.listener) }()
	grpcServed := make(chan error, 1)
	if s.grpc != nil {
		s.log.WithField("addr", s.grpcListener.Addr().String()).Info("serving gRPC")
		go func() { grpcServed <- s.grpc.Serve(s.grpcListener) }()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP: %w", err)
	case err := <-grpcServed:
		s.http.Close()
		return fmt.Errorf("serve gRPC: %w", err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	s.log.WithField("timeout", s.opts.ShutdownTimeout.String()).Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	if s.grpc != nil {
		s.stopGRPC(sctx)
	}
	if err := s.http.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down HTTP: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// stopGRPC lets in-flight calls finish, and cuts them when ctx ends first.
func (s *Server) stopGRPC(ctx context.Context) {
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
	}
}

func (s *Server) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyPolicy is the policy part of /health/ready's body: what is served
// (policy.Info) and the failed reloads (policy.Reloads), flattened into one
// object.
type readyPolicy struct {
	policy.Info
	policy.Reloads
}

// ready reports whether this replica should receive traffic: a policy is
// loaded (the engine cannot exist without one), every check passes and it
// is not shutting down. A failed reload does not make it unready, since the
// last good policy keeps serving; the body shows the failure.
func (s *Server) ready(c *gin.Context) {
	checks := gin.H{"policy": "ok", "shutdown": "ok"}
	status := http.StatusOK
	if s.stopping.Load() {
		checks["shutdown"] = "shutting down"
		status = http.StatusServiceUnavailable
	}
	for name, check := range s.opts.Checks {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		err := check(ctx)
		cancel()
		checks[name] = "ok"
		if err != nil {
			checks[name] = err.Error()
			status = http.StatusServiceUnavailable
		}
	}
	body := gin.H{"status": "ok", "checks": checks, "policy": readyPolicy{s.opts.Engine.Info(), s.opts.Engine.Reloads()}}
	if status != http.StatusOK {
		body["status"] = "unavailable"
	}
	c.JSON(status, body)
}
