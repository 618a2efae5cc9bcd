// Package elevatetest runs a whole Elevate server inside a test, through the
// same command line a user runs (`elevate serve ...`), and talks to it over
// HTTP as a client would.
package elevatetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/elevatepdp/elevate/internal/cli"
	"github.com/elevatepdp/elevate/internal/demo"
	"github.com/elevatepdp/elevate/test/harness"
)

// Options say how to start the server.
type Options struct {
	// RedisURL is the store; empty for the in-process one.
	RedisURL string
	// Demo loads the demo tenant and writes its credentials.
	Demo bool
	// Config is YAML for --config.
	Config string
	// Args are more serve arguments (flags, policy paths).
	Args []string
	// Unready makes Start return as soon as /health/ready answers, ready
	// or not (a server waiting for its first bundle answers 503).
	Unready bool
}

// Server is a running Elevate.
type Server struct {
	URL string
	// GRPCAddr is where Envoy's ext_authz gRPC service listens.
	GRPCAddr string
	Creds    demo.Credentials
	log      *syncBuffer
	stop     context.CancelFunc
	done     chan int
	once     sync.Once
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs `elevate serve` on a free port and waits until it is ready.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := t.TempDir()
	addr := harness.FreeAddr(t)
	grpcAddr := harness.FreeAddr(t)
	args := []string{"serve", "--addr", addr, "--grpc-addr", grpcAddr, "--log-level", "warn"}
	creds := filepath.Join(dir, "demo-credentials.json")
	if o.Demo {
		args = append(args, "--demo", "--demo-credentials", creds)
	}
	if o.RedisURL != "" {
		args = append(args, "--redis-url", o.RedisURL)
	}
	if o.Config != "" {
		file := filepath.Join(dir, "elevate.yaml")
		if err := os.WriteFile(file, []byte(o.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", file)
	}
	args = append(args, o.Args...)

	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{URL: "http://" + addr, GRPCAddr: grpcAddr, log: &syncBuffer{}, stop: cancel, done: make(chan int, 1)}
	go func() { s.done <- cli.Execute(ctx, args, s.log, s.log) }()
	t.Cleanup(func() { s.Stop(t) })

	// Ready can take a while (bundles are fetched and activated first).
	wait := func() int { return harness.WaitStatus(s.URL+"/health/ready", http.StatusOK, 20*time.Second) }
	if o.Unready {
		wait = func() int { return harness.WaitHTTP(s.URL+"/health/ready", 20*time.Second) }
	}
	if status := wait(); status != http.StatusOK && (!o.Unready || status == 0) {
		t.Fatalf("elevate did not become ready (status %d):\n%s", status, s.Log())
	}
	if o.Demo {
		b, err := os.ReadFile(creds)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &s.Creds); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Log is what the server wrote.
func (s *Server) Log() string { return s.log.String() }

// Stop shuts the server down as SIGTERM does and checks it exited cleanly.
// Stopping twice is harmless.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.once.Do(func() {
		s.stop()
		select {
		case code := <-s.done:
			if code != 0 {
				t.Errorf("elevate exited with %d:\n%s", code, s.Log())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("elevate did not stop within 20s")
		}
	})
}

// principal finds a demo principal by the start of its name ("sophia").
func (s *Server) principal(t testing.TB, who string) demo.PrincipalCredentials {
	t.Helper()
	for _, p := range s.Creds.Principals {
		if strings.HasPrefix(p.Principal, who) {
			return p
		}
	}
	t.Fatalf("no demo principal %q", who)
	return demo.PrincipalCredentials{}
}

// Token is a demo principal's bearer token, or a client's ("gateway").
func (s *Server) Token(t testing.TB, who string) string {
	t.Helper()
	for _, c := range s.Creds.Clients {
		if c.Name == who {
			return c.Token
		}
	}
	return s.principal(t, who).Token
}

// Principal is a demo principal's full name ("sophia" -> sophia.davis@...).
func (s *Server) Principal(t testing.TB, who string) string {
	t.Helper()
	return s.principal(t, who).Principal
}

// TOTP is the demo principal's current TOTP code. Codes are good once: a
// test using two in the same 30 s step asks for the next step's code with
// offset 1 (one step of skew is accepted).
func (s *Server) TOTP(t testing.TB, who string, offset int) string {
	t.Helper()
	code, err := totp.GenerateCode(s.principal(t, who).TOTPSecret, time.Now().Add(time.Duration(offset)*30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// Response is an answer of the API.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// Do sends a request with a bearer token ("" for none) and a JSON body (nil
// for none; a string is sent as is).
func (s *Server) Do(t testing.TB, method, path, token string, body any) Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := Response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %s", method, path, raw)
		}
	}
	return out
}

// Want fails the test unless the answer has the status (and, for errors,
// the code), and returns the body.
func (r Response) Want(t testing.TB, status int, code ...string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Raw)
	}
	if len(code) > 0 && r.Body["code"] != code[0] {
		t.Fatalf("code %v, want %s: %s", r.Body["code"], code[0], r.Raw)
	}
	return r.Body
}

// String is the answer for failure messages.
func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Raw) }
