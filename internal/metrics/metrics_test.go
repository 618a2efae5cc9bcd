package metrics

import (
	"fmt"
	"testing"
	"time"
)

// series counts the series of each metric family.
func series(t *testing.T, m *Metrics) map[string]int {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, f := range families {
		out[f.GetName()] = len(f.GetMetric())
	}
	return out
}

// Labels come from a bounded set: evaluations of thousands of distinct
// queries (Data API paths anyone may send) and events of thousands of
// role names make a bounded number of series.
func TestMetricLabelsBounded(t *testing.T) {
	m := New()
	m.KnownQueries("data.pim.authz.allow", "data.envoy.authz.allow")
	for i := range 3000 {
		m.Evaluation(fmt.Sprintf("data.x%d.y", i), time.Millisecond)
		m.Event("activation.denied", fmt.Sprintf("role-%d", i))
		m.Decision("data", "deny", time.Millisecond)
	}
	m.Evaluation("data.pim.authz.allow", time.Millisecond)
	m.Evaluation("data.envoy.authz.allow", time.Millisecond)
	got := series(t, m)
	if n := got["elevate_policy_evaluation_duration_seconds"]; n != 3 {
		t.Errorf("evaluation series = %d, want 3 (two known queries and other)", n)
	}
	if n := got["elevate_workflow_events_total"]; n != maxRoles+1 {
		t.Errorf("event series = %d, want %d (the first roles and other)", n, maxRoles+1)
	}
}
