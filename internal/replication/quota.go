package replication

import (
	"math"
	"sync"
	"time"
)

// QuotaConfig is how replication throttles measure their rate (Kafka's
// replication.quota.window.num and replication.quota.window.size.seconds).
type QuotaConfig struct {
	Windows    int           // samples kept (default 11)
	WindowSize time.Duration // length of a sample (default 1 s)
}

func (c QuotaConfig) withDefaults() QuotaConfig {
	if c.Windows <= 0 {
		c.Windows = 11
	}
	if c.WindowSize <= 0 {
		c.WindowSize = time.Second
	}
	return c
}

// rateMeter is Kafka's Rate over a SampledStat, for bytes: a ring of
// samples, each started by the first record after the previous one is
// WindowSize old; samples older than Windows*WindowSize no longer count.
// The rate divides the bytes of the live samples by the time since the
// oldest began, but never by less than about Windows-1 full windows (so a
// burst after a quiet spell is spread over that much time, as in Kafka).
type rateMeter struct {
	cfg     QuotaConfig
	samples []rateSample
	cur     int
}

type rateSample struct {
	start time.Time
	bytes int64
}

func newRateMeter(cfg QuotaConfig) *rateMeter {
	cfg = cfg.withDefaults()
	return &rateMeter{cfg: cfg}
}

// record adds n bytes at now.
func (m *rateMeter) record(now time.Time, n int64) {
	if len(m.samples) == 0 {
		m.samples = append(m.samples, rateSample{start: now})
		m.cur = 0
	} else if now.Sub(m.samples[m.cur].start) >= m.cfg.WindowSize {
		m.cur++
		if m.cur >= m.cfg.Windows {
			m.cur = 0
		}
		if m.cur >= len(m.samples) {
			m.samples = append(m.samples, rateSample{start: now})
		} else {
			m.samples[m.cur] = rateSample{start: now}
		}
	}
	m.samples[m.cur].bytes += n
}

// rate is the measured bytes per second at now.
func (m *rateMeter) rate(now time.Time) float64 {
	expire := time.Duration(m.cfg.Windows) * m.cfg.WindowSize
	var total int64
	oldest := now
	for i := range m.samples {
		s := &m.samples[i]
		if now.Sub(s.start) >= expire {
			*s = rateSample{start: now}
		}
		total += s.bytes
		if s.start.Before(oldest) {
			oldest = s.start
		}
	}
	elapsed := now.Sub(oldest)
	if full, minFull := int(elapsed/m.cfg.WindowSize), m.cfg.Windows-1; full < minFull {
		elapsed += time.Duration(minFull-full) * m.cfg.WindowSize
	}
	if elapsed <= 0 {
		// One window of one second or less, measured at its start.
		elapsed = m.cfg.WindowSize
	}
	return float64(total) / elapsed.Seconds()
}

// quota is one replication throttle of a broker (Kafka's
// ReplicationQuotaManager: the leader's, or the follower's): the bytes of
// throttled replicas are recorded, and while their rate is above the limit,
// out-of-sync throttled replicas get no more. Safe for concurrent use.
type quota struct {
	now func() time.Time

	mu    sync.Mutex
	limit int64 // bytes per second; math.MaxInt64 is unlimited
	meter *rateMeter
}

func newQuota(cfg QuotaConfig, now func() time.Time) *quota {
	if now == nil {
		now = time.Now
	}
	return &quota{now: now, limit: math.MaxInt64, meter: newRateMeter(cfg)}
}

// setLimit sets the rate in bytes per second; negative is unlimited.
func (q *quota) setLimit(bytesPerSecond int64) {
	if bytesPerSecond < 0 {
		bytesPerSecond = math.MaxInt64
	}
	q.mu.Lock()
	q.limit = bytesPerSecond
	q.mu.Unlock()
}

// Limit is the rate in bytes per second (math.MaxInt64: unlimited).
func (q *quota) Limit() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.limit
}

// record counts n bytes of throttled replicas.
func (q *quota) record(n int64) {
	if n <= 0 {
		return
	}
	q.mu.Lock()
	q.meter.record(q.now(), n)
	q.mu.Unlock()
}

// exceeded reports whether the measured rate is above the limit.
func (q *quota) exceeded() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.limit == math.MaxInt64 {
		return false
	}
	return q.meter.rate(q.now()) > float64(q.limit)
}

// rate is the measured rate in bytes per second.
func (q *quota) rate() float64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.meter.rate(q.now())
}
