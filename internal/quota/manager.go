package quota

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Type is a kind of quota a Manager enforces.
type Type uint8

// Quota types.
const (
	Produce            Type = iota // producer_byte_rate: bytes of produce requests
	Fetch                          // consumer_byte_rate: bytes of fetch responses
	Request                        // request_percentage: handler time
	ControllerMutation             // controller_mutation_rate: partitions created or deleted
	numTypes
)

// Key is the quota key of t.
func (t Type) Key() string {
	switch t {
	case Produce:
		return ProducerByteRate
	case Fetch:
		return ConsumerByteRate
	case Request:
		return RequestPercentage
	case ControllerMutation:
		return ControllerMutationRate
	}
	return ""
}

// String names t as metrics label it.
func (t Type) String() string {
	switch t {
	case Produce:
		return "produce"
	case Fetch:
		return "fetch"
	case Request:
		return "request"
	case ControllerMutation:
		return "controller_mutation"
	}
	return "unknown"
}

// Options configure a Manager.
type Options struct {
	// Window measures byte rates and request time (quota.window.num,
	// quota.window.size.seconds).
	Window Window
	// ControllerWindow sizes the controller mutation token bucket
	// (controller.quota.window.num, controller.quota.window.size.seconds).
	ControllerWindow Window
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Idle is how long a client's rate is kept after its last record
	// (Kafka expires quota sensors after an hour); zero: one hour.
	Idle time.Duration
}

// Manager measures clients against the quotas of the metadata image. It
// is safe for concurrent use. With no quota of a type, its methods for
// that type return at once without locking or allocating.
type Manager struct {
	opts  Options
	cfg   atomic.Pointer[config]
	mu    sync.Mutex
	rates map[rateKey]*clientRate
	sweep int64 // ms of the last expiry sweep
}

type config struct {
	quotas map[Entity]map[string]float64
	has    [numTypes]bool
}

// rateKey names one client's measurement: Kafka's quota metric tags. A
// quota on a user is shared by every client id of the user; a <default>
// quota applies to each user (or client id) separately.
type rateKey struct {
	t              Type
	user, clientID string
}

type clientRate struct {
	rate   *Rate
	bucket *TokenBucket
	lastMs int64
}

// NewManager returns a Manager with no quotas.
func NewManager(opts Options) *Manager {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Idle <= 0 {
		opts.Idle = time.Hour
	}
	opts.Window = opts.Window.withDefaults()
	opts.ControllerWindow = opts.ControllerWindow.withDefaults()
	m := &Manager{opts: opts, rates: map[rateKey]*clientRate{}}
	m.cfg.Store(&config{})
	return m
}

// Set replaces the quotas (the image's; the map is not modified, and must
// not be afterwards). Measurements so far are kept: a changed quota
// applies to the rate already measured, as in Kafka.
func (m *Manager) Set(quotas map[Entity]map[string]float64) {
	c := &config{quotas: quotas}
	for _, vals := range quotas {
		for t := range numTypes {
			if _, ok := vals[t.Key()]; ok {
				c.has[t] = true
			}
		}
	}
	m.cfg.Store(c)
}

// Active reports whether any quota of type t is set.
func (m *Manager) Active(t Type) bool { return m.cfg.Load().has[t] }

// Lookup returns the quota of type t that applies to user and clientID,
// and the entity it is set on, by Kafka's precedence (Candidates).
func (m *Manager) Lookup(t Type, user, clientID string) (quota float64, on Entity, ok bool) {
	return m.cfg.Load().lookup(t, user, clientID)
}

func (c *config) lookup(t Type, user, clientID string) (float64, Entity, bool) {
	if !c.has[t] {
		return 0, Entity{}, false
	}
	key := t.Key()
	for _, e := range Candidates(user, clientID) {
		if v, ok := c.quotas[e][key]; ok {
			return v, e, true
		}
	}
	return 0, Entity{}, false
}

// client returns the measurement of (t, user, clientID) under on, with
// m.mu held.
func (m *Manager) client(t Type, on Entity, user, clientID string, nowMs int64) *clientRate {
	k := rateKey{t: t}
	if on.User.Set {
		k.user = user
	}
	if on.ClientID.Set {
		k.clientID = clientID
	}
	r := m.rates[k]
	if r == nil {
		r = &clientRate{}
		if t == ControllerMutation {
			r.bucket = NewTokenBucket(m.opts.ControllerWindow)
		} else {
			r.rate = NewRate(m.opts.Window)
		}
		m.rates[k] = r
	}
	r.lastMs = nowMs
	m.expire(nowMs)
	return r
}

// expire drops measurements idle for opts.Idle, at most once a minute.
func (m *Manager) expire(nowMs int64) {
	if nowMs-m.sweep < time.Minute.Milliseconds() {
		return
	}
	m.sweep = nowMs
	idle := m.opts.Idle.Milliseconds()
	for k, r := range m.rates {
		if nowMs-r.lastMs >= idle {
			delete(m.rates, k)
		}
	}
}

func (m *Manager) nowMs() int64 { return m.opts.Now().UnixMilli() }

// Record adds v (bytes) to the rate of type t (Produce or Fetch) of user
// and clientID, and returns how long the client must be throttled: 0
// within its quota (or with none).
func (m *Manager) Record(t Type, user, clientID string, v float64) time.Duration {
	q, on, ok := m.cfg.Load().lookup(t, user, clientID)
	if !ok {
		return 0
	}
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.client(t, on, user, clientID, now)
	r.rate.Record(v, now)
	return time.Duration(r.rate.ThrottleMs(q, now)) * time.Millisecond
}

// Unrecord takes v back out of the rate (Kafka's unrecordQuotaSensor: a
// throttled fetch answers without its records, which then do not count).
func (m *Manager) Unrecord(t Type, user, clientID string, v float64) {
	_, on, ok := m.cfg.Load().lookup(t, user, clientID)
	if !ok {
		return
	}
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.client(t, on, user, clientID, now).rate.Record(-v, now)
}

// nanosToPercent turns handler time into request_percentage units: 100
// is one handler thread's whole time (KIP-124).
const nanosToPercent = 100.0 / float64(time.Second)

// RequestThrottle is how long the client must be throttled for the
// handler time it has used (request_percentage), bounded by one window
// as Kafka's ClientRequestQuotaManager bounds it.
func (m *Manager) RequestThrottle(user, clientID string) time.Duration {
	q, on, ok := m.cfg.Load().lookup(Request, user, clientID)
	if !ok {
		return 0
	}
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.client(Request, on, user, clientID, now)
	ms := min(r.rate.ThrottleMs(q, now), m.opts.Window.sizeMs())
	return time.Duration(ms) * time.Millisecond
}

// RecordRequestTime adds d of handler time to the client's
// request_percentage rate.
func (m *Manager) RecordRequestTime(user, clientID string, d time.Duration) {
	_, on, ok := m.cfg.Load().lookup(Request, user, clientID)
	if !ok {
		return
	}
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.client(Request, on, user, clientID, now).rate.Record(float64(d)*nanosToPercent, now)
}

// ErrThrottled is a strict controller mutation quota's refusal
// (THROTTLING_QUOTA_EXCEEDED).
var ErrThrottled = errors.New("the controller mutation quota is exceeded")

// Mutation is one request's controller mutation quota (KIP-599). A strict
// one (the request versions that know THROTTLING_QUOTA_EXCEEDED) refuses
// mutations while the bucket is in debt; a permissive one (older
// versions) accepts them all and only throttles.
type Mutation struct {
	m        *Manager
	r        *clientRate
	quota    float64
	strict   bool
	throttle int64 // ms
}

// Mutation returns the controller mutation quota of a request of user and
// clientID, nil when none applies.
func (m *Manager) Mutation(user, clientID string, strict bool) *Mutation {
	q, on, ok := m.cfg.Load().lookup(ControllerMutation, user, clientID)
	if !ok {
		return nil
	}
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	return &Mutation{m: m, r: m.client(ControllerMutation, on, user, clientID, now), quota: q, strict: strict}
}

// Record takes permits (partitions created or deleted) from the bucket.
// A strict quota whose bucket is already in debt refuses them with
// ErrThrottled (and takes nothing); otherwise they are taken, possibly
// into debt, and the request is throttled until the debt is repaid.
func (q *Mutation) Record(permits float64) error {
	m := q.m
	now := m.nowMs()
	m.mu.Lock()
	defer m.mu.Unlock()
	b := q.r.bucket
	q.r.lastMs = now
	if q.strict {
		if t := b.ThrottleMs(q.quota, now); t > 0 {
			q.throttle = max(q.throttle, t)
			return ErrThrottled
		}
		b.Record(permits, q.quota, now)
		return nil
	}
	b.Record(permits, q.quota, now)
	q.throttle = max(q.throttle, b.ThrottleMs(q.quota, now))
	return nil
}

// Throttle is how long the request's client must be throttled: for a
// strict quota, the wait its refusals announced; for a permissive one,
// until the debt its records made is repaid.
func (q *Mutation) Throttle() time.Duration {
	if q == nil {
		return 0
	}
	return time.Duration(q.throttle) * time.Millisecond
}

// Window is how byte rates and request time are measured.
func (m *Manager) Window() Window { return m.opts.Window }
