package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one node's registry: its own prometheus.Registry (never the
// global one), the hot-path instruments and, once Attach is called, the
// collector that reads the node's state at scrape time.
type Metrics struct {
	reg      *prometheus.Registry
	requests *Requests
	fsync    prometheus.Histogram
	throttle *prometheus.HistogramVec

	mu     sync.Mutex
	health Health
}

// fsyncBuckets spans 10 µs to 10 s.
var fsyncBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// throttleBuckets spans 1 ms to 30 s.
var throttleBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns a registry with the Go runtime and process collectors, the
// build info, the request and connection instruments and the fsync
// histogram.
func New(build BuildInfo) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "strata_build_info",
		Help:        "Always 1; the labels describe the running binary.",
		ConstLabels: prometheus.Labels{"version": build.Version, "commit": build.Commit, "build_date": build.Date, "goversion": build.GoVersion},
	})
	info.Set(1)
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "strata_log_fsync_duration_seconds",
		Help:    "Duration of each fsync of a partition log segment.",
		Buckets: fsyncBuckets,
	})
	m.throttle = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_client_throttle_time_seconds",
		Help:    "Throttle times client quotas imposed, by quota: produce (producer_byte_rate), fetch (consumer_byte_rate), request (request_percentage), controller_mutation (controller_mutation_rate); its _count is the number of throttled responses.",
		Buckets: throttleBuckets,
	}, []string{"quota"})
	reg.MustRegister(info, m.fsync, m.throttle)
	m.requests = newRequests(reg)
	return m
}

// Registry is the node's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Requests is the network.Observer that feeds the request and connection
// metrics.
func (m *Metrics) Requests() *Requests { return m.requests }

// ObserveThrottle records one throttle a client quota imposed; quota is
// the quota type's name (quota.Type.String).
func (m *Metrics) ObserveThrottle(quota string, d time.Duration) {
	m.throttle.WithLabelValues(quota).Observe(d.Seconds())
}

// ObserveFsync records one fsync's duration.
func (m *Metrics) ObserveFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// Sources are what the state collector reads; nil members are skipped
// (a controller-only node has no partitions or groups).
type Sources struct {
	Partitions PartitionSource
	Groups     GroupSource
	Cluster    ClusterSource
	Health     Health
}

// Attach registers the collector over s and makes /readyz ask s.Health.
// Call it once, when the node's components exist.
func (m *Metrics) Attach(s Sources) {
	m.reg.MustRegister(&stateCollector{parts: s.Partitions, groups: s.Groups, cluster: s.Cluster, health: s.Health})
	m.mu.Lock()
	m.health = s.Health
	m.mu.Unlock()
}

// Ready reports readiness: not ready until Attach, then what Health says.
func (m *Metrics) Ready() (bool, string) {
	m.mu.Lock()
	h := m.health
	m.mu.Unlock()
	if h == nil {
		return false, "starting"
	}
	return h.Ready()
}
