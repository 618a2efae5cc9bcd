package compat

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/harness"
)

// The upstream opa binary is built once for the package: linking it takes
// longer than any test here.
var (
	opaOnce sync.Once
	opaDir  string
	opaPath string
	opaErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if opaDir != "" {
		os.RemoveAll(opaDir)
	}
	os.Exit(code)
}

// opaBinary is upstream opa at the version Elevate embeds.
func opaBinary(t *testing.T) string {
	t.Helper()
	opaOnce.Do(func() {
		if opaDir, opaErr = os.MkdirTemp("", "elevate-compat-"); opaErr != nil {
			return
		}
		opaPath = filepath.Join(opaDir, "opa")
		cmd := exec.Command("go", "build", "-o", opaPath, "github.com/open-policy-agent/opa")
		cmd.Dir = harness.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			opaErr = err
			t.Logf("%s", out)
		}
	})
	if opaErr != nil {
		t.Fatalf("build opa: %v", opaErr)
	}
	return opaPath
}

// serveOPA runs upstream `opa run --server` with args on a free loopback
// port until the test ends, and returns its base URL once health (a path
// such as "/health" or "/health?bundles") answers 200.
func serveOPA(t *testing.T, health string, args ...string) string {
	t.Helper()
	addr := harness.FreeAddr(t)
	cmd := exec.Command(opaBinary(t), append([]string{"run", "--server", "--addr", addr}, args...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	if harness.WaitHTTP(base+health, 30*time.Second) != http.StatusOK {
		t.Fatalf("opa run --server %v is not healthy at %s:\n%s", args, health, logs.String())
	}
	return base
}
