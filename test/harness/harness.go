// Package harness starts the real programs Elevate's integration tests talk
// to: binaries built from this module and from its pinned dependencies, on
// free loopback ports, in temporary directories the test owns.
package harness

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// RepoRoot is the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Build compiles a main package of this module or of a module it requires
// (so upstream opa is the exact version Elevate embeds) and returns the
// binary's path. Nothing is downloaded beyond the module cache.
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// FreeAddr is a loopback host:port nothing listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitStatus polls url until it answers want or timeout passes, and
// returns the last status, 0 when nothing answered.
func WaitStatus(url string, want int, timeout time.Duration) int {
	status := 0
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if status = WaitHTTP(url, time.Until(deadline)); status == want {
			break
		}
	}
	return status
}

// WaitHTTP polls url until it answers (any status) or timeout passes, and
// returns the status, or 0 when nothing answered.
func WaitHTTP(url string, timeout time.Duration) int {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return resp.StatusCode
		}
	}
	return 0
}
