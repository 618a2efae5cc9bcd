package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/elevatepdp/elevate/test/harness"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(ctx context.Context, args ...string) result {
	var out, errOut bytes.Buffer
	code := Execute(ctx, args, &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

func files(t *testing.T, content map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, c := range content {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const (
	goodPolicy   = "package t\n\nallow if input.x == 1\n"
	goodTests    = "package t_test\n\nimport data.t\n\ntest_allow if t.allow with input as {\"x\": 1}\n\ntest_deny if not t.allow with input as {\"x\": 2}\n"
	failingTest  = "package t_test\n\nimport data.t\n\ntest_wrong if t.allow with input as {\"x\": 2}\n"
	brokenPolicy = "package t\n\nallow if {\n\tinput.x ==\n}\n"
	// Compiles, but not in strict mode: y is assigned and never used.
	sloppyPolicy = "package t\n\nallow if {\n\ty := 1\n\tinput.x == 1\n}\n"
)

var fileLine = regexp.MustCompile(`broken\.rego:\d+`)

func TestCheck(t *testing.T) {
	tests := map[string]struct {
		files map[string]string
		code  int
		says  *regexp.Regexp
	}{
		"good":       {files: map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests}, code: 0},
		"parse":      {files: map[string]string{"broken.rego": brokenPolicy}, code: 1, says: fileLine},
		"not strict": {files: map[string]string{"sloppy.rego": sloppyPolicy}, code: 1, says: regexp.MustCompile(`sloppy\.rego:4: .*assigned var y unused`)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := run(context.Background(), "check", files(t, tc.files))
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %s", r.code, tc.code, r.stderr)
			}
			if tc.says != nil && !tc.says.MatchString(r.stderr) {
				t.Fatalf("stderr %q does not match %s", r.stderr, tc.says)
			}
		})
	}
}

func TestServeRefusesBrokenPolicyWithCheckMessage(t *testing.T) {
	dir := files(t, map[string]string{"broken.rego": brokenPolicy})
	checked := run(context.Background(), "check", dir)
	served := run(context.Background(), "serve", "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", dir)
	if served.code != 1 {
		t.Fatalf("serve exit %d, want 1", served.code)
	}
	msg := fileLine.FindString(checked.stderr)
	line := checked.stderr[strings.Index(checked.stderr, msg):]
	line = strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
	if msg == "" || !strings.Contains(served.stderr, line) {
		t.Fatalf("serve said %q; want it to include check's %q", served.stderr, line)
	}
}

func TestUsageAndConfigErrorsExit2(t *testing.T) {
	cfg := files(t, map[string]string{
		"c.yaml": "server:\n  addr: nowhere\n",
		// OPA's own sections, refused by OPA's plugin manager.
		"bundles.yaml": "services:\n  control: {url: \"http://127.0.0.1:1\"}\nbundles:\n  authz: {service: nowhere, resource: /b.tar.gz}\n",
		"logs.yaml":    "decision_logs: {service: nowhere}\n",
		"proto.yaml":   "decisions:\n  envoy_proto_descriptor: /nonexistent/api.pb\n",
		"caching.yaml": "caching:\n  inter_query_builtin_cache: {max_size_bytes: lots}\n",
	})
	tests := map[string]struct {
		args []string
		says string
	}{
		"unknown flag":         {args: []string{"serve", "--no-such-flag"}, says: "no-such-flag"},
		"bad flag value":       {args: []string{"serve", "--eval-timeout", "soon"}, says: "eval-timeout"},
		"bad config file":      {args: []string{"serve", "--config", filepath.Join(cfg, "c.yaml")}, says: "server.addr"},
		"bad bundles":          {args: []string{"serve", "--config", filepath.Join(cfg, "bundles.yaml")}, says: `config: bundles: invalid configuration for bundle "authz": service name "nowhere" not found`},
		"bad decision_logs":    {args: []string{"serve", "--config", filepath.Join(cfg, "logs.yaml")}, says: "config: decision_logs:"},
		"bad proto descriptor": {args: []string{"serve", "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--config", filepath.Join(cfg, "proto.yaml")}, says: "decisions.envoy_proto_descriptor"},
		"bad caching":          {args: []string{"serve", "--config", filepath.Join(cfg, "caching.yaml")}, says: "caching"},
		"missing path":         {args: []string{"test"}, says: "at least 1 arg"},
		"extra argument":       {args: []string{"version", "x"}, says: "unknown command"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := run(context.Background(), tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.says) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tc.says)
			}
		})
	}
}

func TestTestCommand(t *testing.T) {
	tests := map[string]struct {
		files map[string]string
		args  []string
		code  int
		out   []string
	}{
		"pass": {
			files: map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests},
			code:  0, out: []string{"PASS: 2/2"},
		},
		"verbose lists tests": {
			files: map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests},
			args:  []string{"-v"}, code: 0, out: []string{"data.t_test.test_allow: PASS", "data.t_test.test_deny: PASS"},
		},
		"run filters": {
			files: map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests},
			args:  []string{"--run", "test_deny"}, code: 0, out: []string{"PASS: 1/1"},
		},
		"coverage": {
			files: map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests},
			args:  []string{"--coverage"}, code: 0, out: []string{"PASS: 2/2", "Coverage: 100.00%"},
		},
		"failure": {
			files: map[string]string{"t.rego": goodPolicy, "t_test.rego": failingTest},
			code:  1, out: []string{"FAIL: 1/1"},
		},
		"compile error": {
			files: map[string]string{"broken.rego": brokenPolicy, "t_test.rego": goodTests},
			code:  1,
		},
		"no tests": {
			files: map[string]string{"t.rego": goodPolicy},
			code:  1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := run(context.Background(), append(append([]string{"test"}, tc.args...), files(t, tc.files))...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.out {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
				}
			}
		})
	}
}

func readBundle(t *testing.T, path string) bundle.Bundle {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := bundle.NewCustomReader(bundle.NewTarballLoader(f)).Read()
	if err != nil {
		t.Fatalf("read bundle: %v", err)
	}
	return b
}

func TestBundleBuild(t *testing.T) {
	t.Run("built-in", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "nested", "b.tar.gz")
		r := run(context.Background(), "bundle", "build", "-o", out, "--revision", "r7")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		b := readBundle(t, out)
		if b.Manifest.Revision != "r7" || b.Manifest.Roots == nil || !slices.Equal(*b.Manifest.Roots, []string{"envoy", "pim"}) {
			t.Fatalf("manifest %+v", b.Manifest)
		}
		roles, _ := b.Data["pim"].(map[string]any)["roles"].(map[string]any)
		if _, ok := roles["user-administrator"]; !ok {
			t.Fatalf("demo roles missing from bundle data: %v", b.Data)
		}
		for _, m := range b.Modules {
			if strings.HasSuffix(m.Path, "_test.rego") {
				t.Errorf("bundle holds test file %s", m.Path)
			}
		}
		if len(b.Modules) == 0 {
			t.Fatal("bundle holds no modules")
		}
	})
	t.Run("paths and roots", func(t *testing.T) {
		dir := files(t, map[string]string{"t.rego": goodPolicy, "t_test.rego": goodTests, "d/data.json": `{"k": 1}`})
		out := filepath.Join(t.TempDir(), "b.tar.gz")
		if r := run(context.Background(), "bundle", "build", dir, "-o", out); r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if b := readBundle(t, out); !slices.Equal(*b.Manifest.Roots, []string{"d", "t"}) || len(b.Modules) != 1 {
			t.Fatalf("roots %v, %d modules", *b.Manifest.Roots, len(b.Modules))
		}
	})
	t.Run("broken policy writes nothing", func(t *testing.T) {
		dir := files(t, map[string]string{"t.rego": "package t\n\nallow if nope(1)\n"})
		outDir := t.TempDir()
		r := run(context.Background(), "bundle", "build", dir, "-o", filepath.Join(outDir, "b.tar.gz"))
		if r.code != 1 || !strings.Contains(r.stderr, "t.rego:3") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if left, _ := os.ReadDir(outDir); len(left) != 0 {
			t.Fatalf("files left behind: %v", left)
		}
	})
}

func TestVersion(t *testing.T) {
	r := run(context.Background(), "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "elevate ") || !strings.Contains(r.stdout, "OPA 1.") {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
}

// serve with no path serves the built-in policies, and stops cleanly when
// its context ends (as on SIGTERM).
func TestServeBuiltInAndStop(t *testing.T) {
	addr := harness.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() {
		done <- run(ctx, "serve", "--addr", addr, "--grpc-addr", harness.FreeAddr(t), "--log-level", "warn")
	}()

	var status int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://%s/health/ready", addr))
		if err == nil {
			status = resp.StatusCode
			resp.Body.Close()
			break
		}
	}
	cancel()
	r := <-done
	if status != http.StatusOK {
		t.Fatalf("ready status %d; serve exit %d: %s", status, r.code, r.stderr)
	}
	if r.code != 0 {
		t.Fatalf("serve exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "state is kept in this process only") {
		t.Fatalf("no in-process store warning in %q", r.stderr)
	}
}
