package metrics

import (
	"testing"
	"time"
)

// OPA's status plugin may gather before the engine and the store exist:
// the gauges are then left out, and appear once set.
func TestGaugesBeforeAndAfterSetGauges(t *testing.T) {
	m := New()
	gauges := func() map[string]float64 {
		t.Helper()
		families, err := m.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range families {
			for _, metric := range f.GetMetric() {
				switch {
				case metric.GetGauge() != nil:
					out[f.GetName()] = metric.GetGauge().GetValue()
				case metric.GetCounter() != nil:
					out[f.GetName()] = metric.GetCounter().GetValue()
				}
			}
		}
		return out
	}
	before := gauges()
	for _, name := range []string{"elevate_policy_info", "elevate_policy_reload_failures_total", "elevate_active_elevations", "elevate_holdings_cache_in_use"} {
		if _, ok := before[name]; ok {
			t.Errorf("%s gathered before SetGauges", name)
		}
	}
	m.SetGauges(Gauges{
		Policy:               func() (string, time.Time) { return "r1", time.Unix(100, 0) },
		PolicyReloadFailures: func() uint64 { return 4 },
		Counts:               func() (int, int, error) { return 2, 3, nil },
		Cache:                func() CacheStats { return CacheStats{Hits: 5, Misses: 1, InUse: true} },
	})
	g := gauges()
	for name, want := range map[string]float64{
		"elevate_policy_info": 1, "elevate_policy_loaded_timestamp_seconds": 100, "elevate_policy_reload_failures_total": 4,
		"elevate_pending_requests": 2, "elevate_active_elevations": 3,
		"elevate_holdings_cache_hits_total": 5, "elevate_holdings_cache_misses_total": 1, "elevate_holdings_cache_in_use": 1,
	} {
		if g[name] != want {
			t.Errorf("%s = %v, want %v", name, g[name], want)
		}
	}
}
