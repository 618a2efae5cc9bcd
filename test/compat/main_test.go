package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

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
