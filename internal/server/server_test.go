package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/elevatepdp/elevate/internal/policy"
)

func newServer(t testing.TB) *Server {
	t.Helper()
	return newServerIn(t, t.TempDir())
}

// newServerIn serves the policy t.rego it writes in dir.
func newServerIn(t testing.TB, dir string) *Server {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "t.rego"), []byte("package t\n\nx := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	engine, err := policy.New(context.Background(), policy.Options{Source: policy.Source{Paths: []string{dir}}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second, Engine: engine, Logger: log})
}

func do(t *testing.T, h http.Handler, method, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, rec.Body.String())
	}
	return rec.Code, body
}

func TestHealthAndErrors(t *testing.T) {
	s := newServer(t)
	s.handler.GET("/panic", func(*gin.Context) { panic("boom") })
	tests := map[string]struct {
		method, path string
		status       int
		code         string
	}{
		"alive":          {method: "GET", path: "/health", status: 200},
		"ready":          {method: "GET", path: "/health/ready", status: 200},
		"unknown route":  {method: "GET", path: "/nope", status: 404, code: "not_found"},
		"wrong method":   {method: "POST", path: "/health", status: 405, code: "method_not_allowed"},
		"handler panics": {method: "GET", path: "/panic", status: 500, code: "internal"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, body := do(t, s.Handler(), tc.method, tc.path)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, body)
			}
			if tc.code != "" {
				if body["code"] != tc.code || body["message"] == "" || body["errors"] == nil {
					t.Fatalf("error body %v, want code %q with message and errors", body, tc.code)
				}
			}
		})
	}
}

func TestReadyReportsPolicy(t *testing.T) {
	s := newServer(t)
	_, body := do(t, s.Handler(), "GET", "/health/ready")
	pol, _ := body["policy"].(map[string]any)
	if pol["revision"] == "" || pol["modules"] != float64(1) {
		t.Fatalf("ready body %v does not describe the loaded policy", body)
	}
}

// TestReadyShowsFailedReload: a reload that fails leaves the replica ready
// (the last good policy serves) and /health/ready says when and why.
func TestReadyShowsFailedReload(t *testing.T) {
	dir := t.TempDir()
	s := newServerIn(t, dir)
	_, body := do(t, s.Handler(), "GET", "/health/ready")
	pol, _ := body["policy"].(map[string]any)
	if n, ok := pol["reload_failures"]; !ok || n != float64(0) {
		t.Fatalf("ready body %v, want reload_failures 0", body)
	}
	if _, ok := pol["last_reload_failure"]; ok {
		t.Fatalf("ready body %v has a last failure before any", body)
	}
	revision := pol["revision"]

	if err := os.WriteFile(filepath.Join(dir, "t.rego"), []byte("package t\n\nx := \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC()
	if err := s.opts.Engine.Reload(context.Background()); err == nil {
		t.Fatal("a broken policy reloaded")
	}
	status, body := do(t, s.Handler(), "GET", "/health/ready")
	if status != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("ready after a failed reload: %d %v, want 200 ok", status, body)
	}
	pol, _ = body["policy"].(map[string]any)
	last, _ := pol["last_reload_failure"].(map[string]any)
	errText, _ := last["error"].(string)
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(last["at"]))
	if pol["reload_failures"] != float64(1) || !strings.Contains(errText, "t.rego:") || err != nil || at.Before(before) {
		t.Fatalf("ready body %v, want one failure naming t.rego: at about %s", body, before)
	}
	if pol["revision"] != revision {
		t.Fatalf("revision %v, want the last good one %v", pol["revision"], revision)
	}
}

func TestRequestIDIsKeptOrMade(t *testing.T) {
	s := newServer(t)
	for in, keep := range map[string]bool{"abc-123": true, "": false, "bad id\r\nX: y": false} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/health", nil)
		req.Header.Set(requestIDHeader, in)
		s.Handler().ServeHTTP(rec, req)
		got := rec.Header().Get(requestIDHeader)
		if keep && got != in || !keep && (got == in || len(got) != 32) {
			t.Errorf("request id %q came back as %q", in, got)
		}
	}
}

// On shutdown readiness turns false at once, while a request in flight still
// completes.
func TestGracefulShutdown(t *testing.T) {
	s := newServer(t)
	release := make(chan struct{})
	entered := make(chan struct{})
	s.handler.GET("/slow", func(c *gin.Context) {
		close(entered)
		<-release
		c.JSON(200, gin.H{"done": true})
	})
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr.String() + "/slow")
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	<-entered
	cancel()
	for !s.stopping.Load() {
		time.Sleep(time.Millisecond)
	}
	if status, _ := do(t, s.Handler(), "GET", "/health/ready"); status != http.StatusServiceUnavailable {
		t.Fatalf("ready while shutting down: %d", status)
	}
	close(release)
	if code := <-slow; code != 200 {
		t.Fatalf("in-flight request got %d, want 200", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

type healthService struct{}

func (healthService) Register(g *grpc.Server) { healthpb.RegisterHealthServer(g, health.NewServer()) }

// gRPC services share the server's lifecycle: they serve beside HTTP and
// stop with it.
func TestGRPCListener(t *testing.T) {
	s := newServer(t)
	s = New(Options{Addr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GRPC: []GRPCRegistrar{healthService{}},
		ShutdownTimeout: 5 * time.Second, Engine: s.opts.Engine, Logger: s.log})
	if _, err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()

	conn, err := grpc.NewClient(s.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", resp, err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err == nil {
		t.Fatal("gRPC still answers after shutdown")
	}
}

// readAll is a route reading the whole body, as the APIs do.
type readAll struct{}

func (readAll) Register(r gin.IRouter) {
	r.POST("/slow", func(c *gin.Context) {
		if _, err := io.ReadAll(c.Request.Body); err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		c.Status(http.StatusOK)
	})
}

// serveWith serves opts (an engine and logger added) until the test ends.
func serveWith(t *testing.T, opts Options) *Server {
	t.Helper()
	base := newServer(t)
	opts.Engine, opts.Logger, opts.Addr, opts.GRPCAddr, opts.ShutdownTimeout = base.opts.Engine, base.log, "127.0.0.1:0", "127.0.0.1:0", time.Second
	s := New(opts)
	if _, err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-served })
	return s
}

// cutWithin is how long the server took to close conn (after answering
// or not), while send writes to it; at most limit.
func cutWithin(t *testing.T, conn net.Conn, limit time.Duration, send func()) time.Duration {
	t.Helper()
	started := time.Now()
	go send()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	if err == nil {
		err = io.EOF
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %s", limit)
	}
	return time.Since(started)
}

// A body sent a byte a second is cut once the read timeout runs out, not
// read to its end: the HTTP listener bounds the time to read a request.
func TestSlowBodyIsCut(t *testing.T) {
	s := serveWith(t, Options{APIs: []Registrar{readAll{}}, ReadTimeout: time.Second})
	conn, err := net.Dial("tcp", s.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const bodyLen = 30 // seconds to send it all
	if _, err := fmt.Fprintf(conn, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", bodyLen); err != nil {
		t.Fatal(err)
	}
	took := cutWithin(t, conn, 20*time.Second, func() {
		for range bodyLen {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	})
	// One second configured; generous for a loaded machine, far below the
	// 30 s the body takes.
	if took > 8*time.Second {
		t.Fatalf("cut after %s", took)
	}
}

// A gRPC connection that never completes its handshake is closed once the
// read timeout runs out.
func TestGRPCHandshakeIsCut(t *testing.T) {
	s := serveWith(t, Options{GRPC: []GRPCRegistrar{healthService{}}, ReadTimeout: time.Second})
	conn, err := net.Dial("tcp", s.grpcListener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if took := cutWithin(t, conn, 20*time.Second, func() { _, _ = conn.Write([]byte("PRI * HTTP/2.0\r\n")) }); took > 8*time.Second {
		t.Fatalf("cut after %s", took)
	}
}
