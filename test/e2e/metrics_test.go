package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elevatepdp/elevate/test/elevatetest"
	"github.com/elevatepdp/elevate/test/harness"
)

// metric reads one sample of /metrics (0 when absent): the first of name
// whose labels include the given pairs.
func metric(t *testing.T, s *elevatetest.Server, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	line := regexp.MustCompile(`^([a-z_]+)(\{(.*)\})? (\S+)$`)
	for _, l := range strings.Split(string(body), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			continue
		}
		matches := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(","+m[3]+",", ","+labels[i]+`="`+labels[i+1]+`",`) {
				matches = false
			}
		}
		if matches {
			v, _ := strconv.ParseFloat(m[4], 64)
			return v
		}
	}
	return 0
}

// Each metric is there and moves when its thing happens.
func TestMetrics(t *testing.T) {
	redis := harness.Redis(t)
	s := elevatetest.Start(t, elevatetest.Options{Demo: true, RedisURL: redis.URL})
	sophia, perparim := s.Token(t, "sophia"), s.Token(t, "perparim")

	if metric(t, s, "elevate_policy_info") != 1 || metric(t, s, "elevate_policy_loaded_timestamp_seconds") == 0 {
		t.Fatal("no policy info")
	}
	s.Do(t, "POST", "/v1/authorize", sophia, map[string]any{"action": "users.create"}).Want(t, 200)
	if metric(t, s, "elevate_decisions_total", "endpoint", "authorize", "outcome", "deny") != 1 {
		t.Error("authorize denial not counted")
	}
	s.Do(t, "POST", "/v1/data/pim/authz/allow", "", map[string]any{"input": map[string]any{"subject": s.Principal(t, "perparim"), "action": "roles.read"}}).Want(t, 200)
	if metric(t, s, "elevate_decisions_total", "endpoint", "data", "outcome", "allow") != 1 {
		t.Error("Data API allowance not counted")
	}
	if metric(t, s, "elevate_decision_duration_seconds_count", "endpoint", "data") != 1 ||
		metric(t, s, "elevate_policy_evaluation_duration_seconds_count", "query", "data.pim.authz.allow") != 1 {
		t.Error("decision or evaluation time not observed")
	}
	if metric(t, s, "elevate_store_duration_seconds_count", "operation", "holdings") < 2 {
		t.Error("store reads not timed")
	}

	req := s.Do(t, "POST", "/v1/activations", sophia, map[string]any{
		"role": "user-administrator", "justification": "Onboarding three new hires",
		"mfa": map[string]any{"totp": s.TOTP(t, "sophia", 0)},
	}).Want(t, 202)
	if metric(t, s, "elevate_workflow_events_total", "type", "activation.requested", "role", "user-administrator") != 1 {
		t.Error("activation request not counted")
	}
	s.Do(t, "POST", "/v1/activations/"+req["id"].(string)+"/approve", perparim, map[string]any{"justification": "ok"}).Want(t, 200)
	if metric(t, s, "elevate_workflow_events_total", "type", "activation.approved", "role", "user-administrator") != 1 ||
		metric(t, s, "elevate_workflow_events_total", "type", "activation.activated", "role", "user-administrator") != 1 {
		t.Error("approval and activation not counted")
	}
	// Counted on the first scrape after the start; cached for a while.
	if metric(t, s, "elevate_active_elevations") > 1 || metric(t, s, "elevate_pending_requests") > 1 {
		t.Error("implausible gauges")
	}

	// The holdings cache is used once its invalidation subscription
	// answers; a decision repeated then reads no Redis.
	eventually(t, 10*time.Second, "holdings cache in use", func() bool { return metric(t, s, "elevate_holdings_cache_in_use") == 1 })
	hits := metric(t, s, "elevate_holdings_cache_hits_total")
	for range 2 {
		s.Do(t, "POST", "/v1/authorize", sophia, map[string]any{"action": "users.create"}).Want(t, 200)
	}
	if metric(t, s, "elevate_holdings_cache_hits_total") < hits+1 || metric(t, s, "elevate_holdings_cache_misses_total") < 1 {
		t.Error("holdings cache hits and misses not counted")
	}

	redis.Stop(t)
	eventually(t, 10*time.Second, "holdings cache out of use without Redis", func() bool {
		return metric(t, s, "elevate_holdings_cache_in_use") == 0
	})
	s.Do(t, "POST", "/v1/data/pim/authz/allow", "", map[string]any{"input": map[string]any{"subject": "x@y", "action": "a"}}).Want(t, 403)
	if metric(t, s, "elevate_decisions_failed_closed_total", "endpoint", "data", "reason", "store_unavailable") != 1 {
		t.Error("fail-closed denial not counted")
	}
	if metric(t, s, "elevate_store_errors_total", "operation", "holdings") < 1 {
		t.Error("store error not counted")
	}
	redis.Start(t)
}

// Thousands of distinct Data API paths, from a caller nobody authenticated
// in demo mode, make no new series: the query label is a configured
// query or "other".
func TestMetricLabelsBoundedOverHTTP(t *testing.T) {
	s := elevatetest.Start(t, elevatetest.Options{Demo: true})
	// series counts the evaluation metric's series, all every series of
	// Elevate's request metrics (bytes would grow with the values' digits).
	count := func() (series int, all int) {
		t.Helper()
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "elevate_policy_evaluation_duration_seconds_count{") {
				series++
			}
			// The store's series appear with the background sweep,
			// whatever callers send.
			if strings.HasPrefix(l, "elevate_") && !strings.HasPrefix(l, "elevate_store_") {
				all++
			}
		}
		return series, all
	}
	s.Do(t, "POST", "/v1/data/pim/authz/allow", "", map[string]any{"input": map[string]any{"subject": "x@y", "action": "a.b"}}).Want(t, 200)
	s.Do(t, "GET", "/v1/data/x0/0", "", nil).Want(t, 200)
	before, total := count()
	for i := range 500 {
		s.Do(t, "GET", "/v1/data/x"+strconv.Itoa(i)+"/"+strconv.Itoa(i%7), "", nil).Want(t, 200)
	}
	after, grown := count()
	if after != before {
		t.Errorf("evaluation series grew from %d to %d", before, after)
	}
	if grown != total {
		t.Errorf("/metrics grew from %d to %d series", total, grown)
	}
	if metric(t, s, "elevate_policy_evaluation_duration_seconds_count", "query", "data.pim.authz.allow") != 1 ||
		metric(t, s, "elevate_policy_evaluation_duration_seconds_count", "query", "other") < 500 {
		t.Error("the configured query or other is not counted")
	}
}

// TestFailedPolicyReloadIsVisible: a broken file in a served policy
// directory leaves the last good policy serving and the replica ready, and
// shows in /metrics, in /health/ready and in the log at error.
func TestFailedPolicyReloadIsVisible(t *testing.T) {
	extra := t.TempDir()
	file := filepath.Join(extra, "extra.rego")
	if err := os.WriteFile(file, []byte("package extra\n\nx := 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := elevatetest.Start(t, elevatetest.Options{Args: []string{repo(t, "policies"), extra}})
	if got := metric(t, s, "elevate_policy_reload_failures_total"); got != 0 {
		t.Fatalf("reload failures %v before any", got)
	}
	if !strings.Contains(metricsText(t, s), "\nelevate_policy_reload_failures_total 0\n") {
		t.Fatal("elevate_policy_reload_failures_total is not exported")
	}
	revision := s.Do(t, "GET", "/health/ready", "", nil).Want(t, 200)["policy"].(map[string]any)["revision"]

	// The watcher says nothing once it watches: break the file until a
	// reload fails (each write is a change, so each try reloads).
	for try := 0; metric(t, s, "elevate_policy_reload_failures_total") == 0; try++ {
		if try == 50 {
			t.Fatalf("no failed reload counted:\n%s", s.Log())
		}
		broken := fmt.Sprintf("package extra\n\n# try %d\nx := \n", try)
		if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	body := s.Do(t, "GET", "/health/ready", "", nil).Want(t, 200)
	pol := body["policy"].(map[string]any)
	last, _ := pol["last_reload_failure"].(map[string]any)
	if body["status"] != "ok" || pol["revision"] != revision || !strings.Contains(fmt.Sprint(last["error"]), "extra.rego:") || last["at"] == nil {
		t.Fatalf("ready body %v, want ok, revision %v and the failure naming extra.rego:", body, revision)
	}
	if !strings.Contains(s.Log(), `"level":"error","msg":"policy reload failed; the last good policy keeps serving"`) {
		t.Fatalf("no error line for the failed reload:\n%s", s.Log())
	}
}

// metricsText is /metrics as served.
func metricsText(t *testing.T, s *elevatetest.Server) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
