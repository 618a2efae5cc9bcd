// Package compat checks Elevate's policies and tools against upstream OPA,
// built from the very module Elevate embeds.
package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/elevatepdp/elevate/internal/cli"
	"github.com/elevatepdp/elevate/test/harness"
)

var summary = regexp.MustCompile(`(?m)^(PASS|FAIL): (\d+)/(\d+)$`)

// tests returns the passed and total counts a test runner printed.
func tests(t *testing.T, who, out string) (passed, total int) {
	t.Helper()
	m := summary.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s printed no PASS/FAIL summary:\n%s", who, out)
	}
	passed, _ = strconv.Atoi(m[2])
	total, _ = strconv.Atoi(m[3])
	return passed, total
}

func opaCmd(t *testing.T, opa string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(opa, args...).CombinedOutput()
	return string(out), err
}

func elevate(args ...string) (int, string) {
	var out bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &out)
	return code, out.String()
}

func TestUpstreamOPA(t *testing.T) {
	root := harness.RepoRoot(t)
	opa := opaBinary(t)
	policies := filepath.Join(root, "policies")
	extensions := filepath.Join(root, "test", "testdata", "extensions")
	demo := filepath.Join(root, "bundles", "demo")

	t.Run("same tests pass under opa test and elevate test", func(t *testing.T) {
		for name, paths := range map[string][]string{
			"policies":            {policies},
			"policies+extensions": {policies, extensions},
		} {
			t.Run(name, func(t *testing.T) {
				opaOut, err := opaCmd(t, opa, append([]string{"test"}, paths...)...)
				if err != nil {
					t.Fatalf("opa test: %v\n%s", err, opaOut)
				}
				code, ours := elevate(append([]string{"test"}, paths...)...)
				if code != 0 {
					t.Fatalf("elevate test exit %d\n%s", code, ours)
				}
				opaPassed, opaTotal := tests(t, "opa test", opaOut)
				passed, total := tests(t, "elevate test", ours)
				if passed != opaPassed || total != opaTotal || passed != total {
					t.Fatalf("opa test %d/%d, elevate test %d/%d", opaPassed, opaTotal, passed, total)
				}
				if name == "policies" && total < 40 {
					t.Fatalf("only %d policy tests; want at least 40", total)
				}
			})
		}
	})

	t.Run("opa check --strict", func(t *testing.T) {
		for _, paths := range [][]string{{policies}, {policies, extensions}, {policies, demo}} {
			if out, err := opaCmd(t, opa, append([]string{"check", "--strict"}, paths...)...); err != nil {
				t.Errorf("opa check --strict %v: %v\n%s", paths, err, out)
			}
			if code, out := elevate(append([]string{"check"}, paths...)...); code != 0 {
				t.Errorf("elevate check %v: exit %d\n%s", paths, code, out)
			}
		}
	})

	t.Run("opa fmt --list prints nothing", func(t *testing.T) {
		out, err := opaCmd(t, opa, "fmt", "--list", policies, extensions)
		if err != nil || out != "" {
			t.Fatalf("opa fmt --list: %v\n%s", err, out)
		}
	})

	t.Run("opa accepts the bundle elevate builds", func(t *testing.T) {
		b := filepath.Join(t.TempDir(), "b.tar.gz")
		if code, out := elevate("bundle", "build", policies, demo, "-o", b); code != 0 {
			t.Fatalf("bundle build: exit %d\n%s", code, out)
		}
		out, err := opaCmd(t, opa, "eval", "-b", b, "--format", "raw", "data.pim.roles")
		if err != nil {
			t.Fatalf("opa eval -b: %v\n%s", err, out)
		}
		var roles map[string]map[string]any
		if err := json.Unmarshal([]byte(out), &roles); err != nil {
			t.Fatalf("opa eval output is not the roles object: %v\n%s", err, out)
		}
		for _, id := range []string{"user-administrator", "helpdesk-administrator", "application-administrator", "privileged-role-administrator"} {
			if roles[id]["settings"] == nil {
				t.Errorf("role %s missing from the bundle: %v", id, roles)
			}
		}

		base := serveOPA(t, "/health?bundles", "-b", b)
		resp, err := http.Get(base + "/v1/data/pim/roles/user-administrator/name")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte(`"result":"User Administrator"`)) {
			t.Fatalf("opa run -b served %s", body)
		}
	})
}
