package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Gauges are read when Prometheus scrapes.
type Gauges struct {
	// Policy is the revision and load time of the policy being served.
	Policy func() (revision string, loadedAt time.Time)
	// Counts are the pending requests and live elevations. Counting may
	// read the whole store, so the answer is kept for countsFor.
	Counts func() (pending, live int, err error)
}

// countsFor bounds how often a scrape makes the store count.
const countsFor = 15 * time.Second

var (
	policyInfo = prometheus.NewDesc("elevate_policy_info", "The policy being served (value 1), by revision.", []string{"revision"}, nil)
	policyLoad = prometheus.NewDesc("elevate_policy_loaded_timestamp_seconds", "When the policy being served was loaded.", nil, nil)
	pendingReq = prometheus.NewDesc("elevate_pending_requests", "Activation requests waiting for approval.", nil, nil)
	liveElev   = prometheus.NewDesc("elevate_active_elevations", "Elevations live now.", nil, nil)
)

type gaugeCollector struct {
	g        Gauges
	mu       sync.Mutex
	at       time.Time
	pending  int
	live     int
	countErr error
}

func (g Gauges) collector() prometheus.Collector { return &gaugeCollector{g: g} }

func (c *gaugeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyInfo
	ch <- policyLoad
	ch <- pendingReq
	ch <- liveElev
}

func (c *gaugeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.g.Policy != nil {
		rev, at := c.g.Policy()
		ch <- prometheus.MustNewConstMetric(policyInfo, prometheus.GaugeValue, 1, rev)
		ch <- prometheus.MustNewConstMetric(policyLoad, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
	}
	if c.g.Counts == nil {
		return
	}
	c.mu.Lock()
	if time.Since(c.at) > countsFor {
		c.pending, c.live, c.countErr = c.g.Counts()
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
