package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Gauges are read when Prometheus scrapes.
type Gauges struct {
	// Policy is the revision and load time of the policy being served.
	Policy func() (revision string, loadedAt time.Time)
	// PolicyReloadFailures counts the reloads that failed, each leaving
	// the last good policy serving (policy.Engine.Reloads).
	PolicyReloadFailures func() uint64
	// Counts are the pending requests and live elevations. Counting may
	// read the whole store, so the answer is kept for countsFor.
	Counts func() (pending, live int, err error)
	// Cache reports the store's holdings cache; nil without one.
	Cache func() CacheStats
}

// CacheStats are a holdings cache's lookups since the store was opened and
// whether the cache is in use (its invalidation subscription answers).
type CacheStats struct {
	Hits, Misses int64
	InUse        bool
}

// countsFor bounds how often a scrape makes the store count.
const countsFor = 15 * time.Second

var (
	policyInfo = prometheus.NewDesc("elevate_policy_info", "The policy being served (value 1), by revision.", []string{"revision"}, nil)
	policyLoad = prometheus.NewDesc("elevate_policy_loaded_timestamp_seconds", "When the policy being served was loaded.", nil, nil)
	policyFail = prometheus.NewDesc("elevate_policy_reload_failures_total", "Policy reloads that failed; the last good policy kept serving.", nil, nil)
	pendingReq = prometheus.NewDesc("elevate_pending_requests", "Activation requests waiting for approval.", nil, nil)
	liveElev   = prometheus.NewDesc("elevate_active_elevations", "Elevations live now.", nil, nil)
	cacheHits  = prometheus.NewDesc("elevate_holdings_cache_hits_total", "Decisions answered from this replica's holdings cache.", nil, nil)
	cacheMiss  = prometheus.NewDesc("elevate_holdings_cache_misses_total", "Decisions that read Redis because the holdings cache had no entry or was not in use.", nil, nil)
	cacheInUse = prometheus.NewDesc("elevate_holdings_cache_in_use", "1 while the holdings cache is used, 0 while its invalidation subscription is not known to deliver.", nil, nil)
)

type gaugeCollector struct {
	g        atomic.Pointer[Gauges] // nil until SetGauges
	mu       sync.Mutex
	at       time.Time
	pending  int
	live     int
	countErr error
}

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyInfo
	ch <- policyLoad
	ch <- policyFail
	ch <- pendingReq
	ch <- liveElev
	ch <- cacheHits
	ch <- cacheMiss
	ch <- cacheInUse
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g.Load()
	if g == nil {
		return
	}
	if g.Policy != nil {
		rev, at := g.Policy()
		ch <- prometheus.MustNewConstMetric(policyInfo, prometheus.GaugeValue, 1, rev)
		ch <- prometheus.MustNewConstMetric(policyLoad, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	}
	if g.PolicyReloadFailures != nil {
		ch <- prometheus.MustNewConstMetric(policyFail, prometheus.CounterValue, float64(g.PolicyReloadFailures()))
	}
	if g.Cache != nil {
		s := g.Cache()
		inUse := 0.0
		if s.InUse {
			inUse = 1
		}
		ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(s.Hits))
		ch <- prometheus.MustNewConstMetric(cacheMiss, prometheus.CounterValue, float64(s.Misses))
		ch <- prometheus.MustNewConstMetric(cacheInUse, prometheus.GaugeValue, inUse)
	}
	if g.Counts == nil {
		return
	}
	c.mu.Lock()
	if time.Since(c.at) > countsFor {
		c.pending, c.live, c.countErr = g.Counts()
		c.at = time.Now()
	}
	pending, live, err := c.pending, c.live, c.countErr
	c.mu.Unlock()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(pendingReq, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(pendingReq, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(liveElev, prometheus.GaugeValue, float64(live))
}
