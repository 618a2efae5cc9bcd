// Package metrics is Elevate's Prometheus instrumentation, served at
// /metrics: decisions by endpoint and outcome with their latency, policy
// evaluation time, store latency and errors, workflow events by role, and
// the policy being served.
package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the collectors, registered on their own registry (no
// global state, so tests and several servers in one process do not clash).
type Metrics struct {
	registry *prometheus.Registry

	decisions        *prometheus.CounterVec
	decisionDuration *prometheus.HistogramVec
	failClosed       *prometheus.CounterVec
	evalDuration     *prometheus.HistogramVec
	storeDuration    *prometheus.HistogramVec
	storeErrors      *prometheus.CounterVec
	events           *prometheus.CounterVec
	gauges           *gaugeCollector

	// Label values come from a bounded set, whatever callers send: each
	// value is a new series, and the Data API takes any path from anyone.
	queries atomic.Pointer[map[string]bool]
	roles   boundedLabel
}

// Other is the label value of everything outside a label's bounded set.
const Other = "other"

// maxRoles bounds the role label's values: the roles a tenant defines are
// far fewer, and a request naming a role that does not exist is audited
// with that name.
const maxRoles = 256

// boundedLabel admits the first max distinct values; later ones are Other.
type boundedLabel struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func (b *boundedLabel) value(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return Other
	}
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	b.seen[v] = true
	return v
}

// Latency buckets from 100 µs to about 1.6 s: decisions are expected in
// the first few.
var buckets = prometheus.ExponentialBuckets(0.0001, 2, 15)

// New creates and registers the collectors; the gauges read on each
// scrape come from SetGauges.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elevate_decisions_total", Help: "Decisions answered, by endpoint and outcome (allow, deny, failed).",
		}, []string{"endpoint", "outcome"}),
		decisionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "elevate_decision_duration_seconds", Help: "Time to answer a decision, store read and evaluation included.", Buckets: buckets,
		}, []string{"endpoint", "outcome"}),
		failClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elevate_decisions_failed_closed_total", Help: "Decisions denied because none could be made, by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		evalDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "elevate_policy_evaluation_duration_seconds", Help: "Time of one policy evaluation, by query.", Buckets: buckets,
		}, []string{"query"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "elevate_store_duration_seconds", Help: "Time of one store operation.", Buckets: buckets,
		}, []string{"operation"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elevate_store_errors_total", Help: "Store operations that failed (not counting answers such as not found or conflict).",
		}, []string{"operation"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elevate_workflow_events_total", Help: "Audited workflow events (activations, approvals, denials, expiries...), by type and role.",
		}, []string{"type", "role"}),
		gauges: &gaugeCollector{},
		roles:  boundedLabel{max: maxRoles},
	}
	m.registry.MustRegister(
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.decisions, m.decisionDuration, m.failClosed, m.evalDuration, m.storeDuration, m.storeErrors, m.events,
		m.gauges,
	)
	return m
}

// SetGauges makes the gauges read g when scraped; until then they are left
// out.
func (m *Metrics) SetGauges(g Gauges) { m.gauges.g.Store(&g) }

// Decision counts one decision.
func (m *Metrics) Decision(endpoint, outcome string, took time.Duration) {
	m.decisions.WithLabelValues(endpoint, outcome).Inc()
	m.decisionDuration.WithLabelValues(endpoint, outcome).Observe(took.Seconds())
}

// FailedClosed counts a decision denied because none could be made.
func (m *Metrics) FailedClosed(endpoint, reason string) {
	m.failClosed.WithLabelValues(endpoint, reason).Inc()
}

// KnownQueries are the queries the query label names (the configured
// ones: entrypoints, forward-auth's, Envoy's); any other evaluation,
// such as a Data API path nobody configured, is counted as Other.
func (m *Metrics) KnownQueries(queries ...string) {
	set := make(map[string]bool, len(queries))
	for _, q := range queries {
		set[q] = true
	}
	m.queries.Store(&set)
}

// Evaluation times one policy evaluation.
func (m *Metrics) Evaluation(query string, took time.Duration) {
	if known := m.queries.Load(); known == nil || !(*known)[query] {
		query = Other
	}
	m.evalDuration.WithLabelValues(query).Observe(took.Seconds())
}

// StoreOp times one store operation; failed says it errored.
func (m *Metrics) StoreOp(op string, took time.Duration, failed bool) {
	m.storeDuration.WithLabelValues(op).Observe(took.Seconds())
	if failed {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// Event counts an audited workflow event.
func (m *Metrics) Event(typ, role string) {
	m.events.WithLabelValues(typ, m.roles.value(role)).Inc()
}

// Register serves GET /metrics.
func (m *Metrics) Register(r gin.IRouter) {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	r.GET("/metrics", func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
}

// Registerer is the registry /metrics serves, for other components'
// collectors (OPA's status plugin, with status.prometheus set).
func (m *Metrics) Registerer() prometheus.Registerer { return m.registry }

// Handler is the /metrics handler, for tests.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
