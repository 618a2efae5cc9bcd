// Package e2e runs the built elevate binary as a user would.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/harness"
)

// The binary serves its built-in policies from any directory, answers
// health checks, and exits 0 on SIGTERM.
func TestServeBuiltInFromAnyDirectory(t *testing.T) {
	bin := harness.Build(t, "github.com/elevatepdp/elevate/cmd/elevate", "elevate")
	addr := harness.FreeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "ELEVATE_ADDR="+addr, "ELEVATE_GRPC_ADDR="+harness.FreeAddr(t))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	for _, path := range []string{"/health", "/health/ready"} {
		if status := harness.WaitHTTP(fmt.Sprintf("http://%s%s", addr, path), 15*time.Second); status != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, status, logs.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGTERM\n%s", logs.String())
	}
	for _, want := range []string{`"msg":"policy loaded"`, `"level":"warning"`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

func TestServeRefusesBrokenPolicy(t *testing.T) {
	bin := harness.Build(t, "github.com/elevatepdp/elevate/cmd/elevate", "elevate")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package x\n\nallow if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "serve", "--addr", harness.FreeAddr(t), "--grpc-addr", harness.FreeAddr(t), dir).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("want exit 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "broken.rego:") {
		t.Fatalf("no file:line in %s", out)
	}
}
