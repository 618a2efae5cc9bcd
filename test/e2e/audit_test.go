package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/elevatepdp/elevate/internal/audit"
	"github.com/elevatepdp/elevate/internal/cli"
	"github.com/elevatepdp/elevate/internal/client"
	"github.com/elevatepdp/elevate/internal/workflow"
	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// Two replicas sharing one Redis record concurrent changes as one hash
// chain; an export of it verifies, and editing, deleting or swapping its
// events is caught at the right seq.
func TestAuditChainAcrossReplicas(t *testing.T) {
	redis := harness.Redis(t)
	a := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: redis.URL, Args: flashArgs(t)})
	b := elevatetest.Start(t, elevatetest.Options{RedisURL: redis.URL, Config: identityFor(t, a), Args: flashArgs(t)})
	perparim, sophia := a.Token(t, "perparim"), a.Principal(t, "sophia")
	ctx := context.Background()

	const changes = 10
	var wg sync.WaitGroup
	errs := make(chan error, changes)
	for i := range changes {
		srv := []*elevatetest.Server{a, b}[i%2]
		wg.Go(func() {
			_, err := client.New(srv.URL, perparim, nil).CreateAssignment(ctx, workflow.AssignmentRequest{
				Principal: sophia, Role: "flash-role", Scope: fmt.Sprintf("/audit-%d", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Both replicas answer the same chain: seq 1..10, each linked to the one
	// before.
	for _, srv := range []*elevatetest.Server{a, b} {
		events, err := client.New(srv.URL, perparim, nil).Audit(ctx, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != changes {
			t.Fatalf("%d events, want %d", len(events), changes)
		}
		prev := audit.Genesis
		for i, e := range events {
			if e.Seq != int64(i+1) || e.Type != audit.AssignmentCreated {
				t.Fatalf("event %d: seq %d, type %s", i, e.Seq, e.Type)
			}
			if e.PrevHash != prev {
				t.Fatalf("seq %d does not link to the one before", e.Seq)
			}
			prev = e.Hash
		}
		if err := audit.Verify(events, nil); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("paging", func(t *testing.T) {
		page := a.Do(t, "GET", "/v1/audit?limit=4", perparim, nil).Want(t, 200)
		if len(page["events"].([]any)) != 4 || page["next_after_seq"] != 4.0 || page["anchor"] != nil {
			t.Fatalf("first page: %v", page)
		}
		page = a.Do(t, "GET", "/v1/audit?limit=4&after_seq=8", perparim, nil).Want(t, 200)
		if evs := page["events"].([]any); len(evs) != 2 || evs[0].(map[string]any)["seq"] != 9.0 || page["next_after_seq"] != nil {
			t.Fatalf("last page: %v", page)
		}
		a.Do(t, "GET", "/v1/audit?after_seq=-1", perparim, nil).Want(t, 422, "invalid_value")
		a.Do(t, "GET", "/v1/audit?format=xml", perparim, nil).Want(t, 422, "invalid_value")
	})
	t.Run("jsonl and csv", func(t *testing.T) {
		resp, body := auditGet(t, a.URL+"/v1/audit?format=jsonl&limit=3", perparim)
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" || resp.Header.Get("X-Next-After-Seq") != "3" {
			t.Fatalf("jsonl answer %s, next %q", ct, resp.Header.Get("X-Next-After-Seq"))
		}
		x, err := audit.ReadExport(strings.NewReader(body))
		if err != nil || len(x.Events) != 3 || x.Verify() != nil {
			t.Fatalf("jsonl page: %d events, %v, %v\n%s", len(x.Events), err, x.Verify(), body)
		}
		resp, body = auditGet(t, a.URL+"/v1/audit?format=csv", perparim)
		lines := strings.Split(strings.TrimSpace(body), "\n")
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || len(lines) != changes+1 || !strings.HasPrefix(lines[0], "seq,time,type,") {
			t.Fatalf("csv answer %s:\n%s", resp.Header.Get("Content-Type"), body)
		}
	})

	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	r := auditCLI(t, "audit", "export", "-o", file, "--server", b.URL, "--token", perparim)
	if r.code != 0 || !strings.Contains(r.stderr, "exported 10 events, seq 1..10") {
		t.Fatalf("export: %+v", r)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != changes {
		t.Fatalf("export has %d lines:\n%s", len(lines), raw)
	}
	edit := func(line string) string {
		return strings.Replace(line, `"scope":"/audit-`, `"scope":"/elsewhere-`, 1)
	}
	// anchorAt is the anchor line of the export trimmed up to seq n.
	anchorAt := func(n int) string {
		x, err := audit.ReadExport(strings.NewReader(lines[n-1]))
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`{"anchor":{"hash":%q,"seq":%d}}`+"\n", x.Events[0].Hash, n)
	}
	tests := map[string]struct {
		lines []string
		code  int
		says  []string
	}{
		"untouched":      {lines: lines, says: []string{"ok: 10 events, seq 1..10"}},
		"field edited":   {lines: withLine(lines, 3, edit(lines[3])), code: 1, says: []string{"broken at seq 4", "line 4", "altered"}},
		"event deleted":  {lines: slices.Delete(slices.Clone(lines), 4, 5), code: 1, says: []string{"broken at seq 5", "line 5", "removed", "seq 5 missing"}},
		"events swapped": {lines: withSwapped(lines, 5, 6), code: 1, says: []string{"broken at seq 6", "line 6", "reordered", "seq 7 appears where seq 6 belongs"}},
		"first deleted":  {lines: lines[1:], code: 1, says: []string{"broken at seq 1", "removed"}},
		"trimmed":        {lines: append([]string{anchorAt(3)}, lines[3:]...), says: []string{"ok: 7 events, seq 4..10 (anchored at seq 3)"}},
		"trimmed, first retained deleted": {lines: append([]string{anchorAt(3)}, lines[4:]...), code: 1,
			says: []string{"broken at seq 4", "line 2", "removed"}},
	}
	for name, tc := range tests {
		t.Run("verify "+name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".jsonl")
			if err := os.WriteFile(path, []byte(strings.Join(tc.lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			r := auditCLI(t, "audit", "verify", path)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d: %+v", r.code, tc.code, r)
			}
			for _, s := range tc.says {
				if !strings.Contains(r.stdout, s) {
					t.Fatalf("output %q does not say %q", r.stdout, s)
				}
			}
		})
	}

	t.Run("json export", func(t *testing.T) {
		file := filepath.Join(dir, "audit.json")
		auditCLI(t, "audit", "export", "--format", "json", "-o", file, "--server", a.URL, "--token", perparim).want(t, 0)
		if r := auditCLI(t, "audit", "verify", file).want(t, 0); !strings.Contains(r.stdout, "ok: 10 events, seq 1..10") {
			t.Fatalf("verify: %+v", r)
		}
	})
	t.Run("verify the server", func(t *testing.T) {
		for _, srv := range []*elevatetest.Server{a, b} {
			if r := auditCLI(t, "audit", "verify", "--server", srv.URL, "--token", perparim).want(t, 0); r.stdout != "ok: 10 events, seq 1..10\n" {
				t.Fatalf("verify --server: %+v", r)
			}
		}
	})
	t.Run("filtered export", func(t *testing.T) {
		r := auditCLI(t, "audit", "export", "--type", string(audit.AssignmentRemoved), "--server", a.URL, "--token", perparim).want(t, 0)
		if r.stdout != "" || !strings.Contains(r.stderr, "filtered") {
			t.Fatalf("filtered export: %+v", r)
		}
	})
}

// auditResult is what one run of the elevate command line did.
type auditResult struct {
	code           int
	stdout, stderr string
}

func auditCLI(t *testing.T, args ...string) auditResult {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &errOut)
	return auditResult{code, out.String(), errOut.String()}
}

func (r auditResult) want(t *testing.T, code int) auditResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func auditGet(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return resp, string(body)
}

func withLine(lines []string, i int, line string) []string {
	out := slices.Clone(lines)
	out[i] = line
	return out
}

func withSwapped(lines []string, i, j int) []string {
	out := slices.Clone(lines)
	out[i], out[j] = out[j], out[i]
	return out
}
