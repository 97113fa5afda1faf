package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// maxAPIKey bounds the per-key arrays; requests with a key outside
// [0, maxAPIKey] (undecodable garbage) count under api="unknown".
const maxAPIKey = 127

// latencyBuckets spans 50 µs to 30 s: fast metadata answers to long-poll
// fetches and acks=all produces.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Requests implements network.Observer.
type Requests struct {
	duration *prometheus.HistogramVec
	sasl     *prometheus.CounterVec
	reauth   *prometheus.CounterVec
	expired  *prometheus.CounterVec
	// Plain atomics, read by GaugeFuncs at scrape time: cheaper than a
	// float gauge's compare-and-swap loop on every request.
	inFlight, inFlightB, conns, connsOpened atomic.Int64
	// apis holds each key's histograms once the key has been seen: one
	// map lookup per key for the life of the process, then an atomic load.
	apis    [maxAPIKey + 2]atomic.Pointer[apiObservers]
	unknown int // index of api="unknown" in apis
}

type apiObservers struct {
	total, local, remote, send prometheus.Observer
}

func newRequests(reg prometheus.Registerer) *Requests {
	r := &Requests{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "strata_request_duration_seconds",
			Help:    "Time requests spend in each stage, by API: total (read to written), local (handler on the reader goroutine), remote (waiting for acks, long poll, fsync or a group), send (queued behind earlier answers, then written). Its _count by api with stage=\"total\" is the request rate.",
			Buckets: latencyBuckets,
		}, []string{"api", "stage"}),
		sasl: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_authentications_total",
			Help: "Authentications that ended, by listener, mechanism and result (success or failure). mechanism is the SASL mechanism of a SASL exchange (empty when none was chosen; failures: bad credentials, a protocol error, re-authentication as another user), or TLS for the TLS handshake of an SSL or SASL_SSL listener (failures: a bad or missing client certificate, a protocol or version mismatch, a handshake timeout; successes only on SSL listeners, where the handshake is the authentication).",
		}, []string{"listener", "mechanism", "result"}),
		reauth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_reauthentications_total",
			Help: "SASL re-authentications of authenticated connections (KIP-368, before the session of connections.max.reauth.ms or an OAUTHBEARER token ends) that ended, by listener, mechanism and result (success or failure); strata_authentications_total counts them too.",
		}, []string{"listener", "mechanism", "result"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_expired_sessions_closed_total",
			Help: "Connections closed because a request came after their SASL session ended without re-authentication, by listener.",
		}, []string{"listener"}),
		unknown: maxAPIKey + 1,
	}
	load := func(v *atomic.Int64) func() float64 { return func() float64 { return float64(v.Load()) } }
	reg.MustRegister(r.duration, r.sasl, r.reauth, r.expired,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_requests_in_flight", Help: "Requests read and not yet answered."}, load(&r.inFlight)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_request_bytes_in_flight", Help: "Bytes of requests read and not yet answered."}, load(&r.inFlightB)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_connections", Help: "Open client connections on the Kafka listener."}, load(&r.conns)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_connections_opened_total", Help: "Client connections accepted on the Kafka listener."}, load(&r.connsOpened)),
	)
	return r
}

var _ network.Observer = (*Requests)(nil)

// ConnOpened implements network.Observer.
func (r *Requests) ConnOpened() { r.conns.Add(1); r.connsOpened.Add(1) }

// ConnClosed implements network.Observer.
func (r *Requests) ConnClosed() { r.conns.Add(-1) }

// SASLAuthentication counts a SASL exchange that ended
// (broker.SASLOptions.Observe).
func (r *Requests) SASLAuthentication(listener, mechanism string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	r.sasl.WithLabelValues(listener, mechanism, result).Inc()
}

// SASLReauthentication counts a re-authentication that ended
// (broker.SASLOptions.ObserveReauth).
func (r *Requests) SASLReauthentication(listener, mechanism string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	r.reauth.WithLabelValues(listener, mechanism, result).Inc()
}

// ExpiredSessionClosed counts a connection closed for a request after its
// session ended (broker.SASLOptions.ObserveExpired).
func (r *Requests) ExpiredSessionClosed(listener string) {
	r.expired.WithLabelValues(listener).Inc()
}

// TLSHandshake counts a TLS handshake that ended (network.TLSObserver):
// failures on every TLS listener, as Kafka's failed-authentication-total
// counts SSL handshake failures; successes on listeners without SASL
// only, where the handshake authenticates the client (on SASL_SSL the
// SASL exchange that follows is counted).
func (r *Requests) TLSHandshake(listener string, sasl bool, err error) {
	switch {
	case err != nil:
		r.sasl.WithLabelValues(listener, MechanismTLS, "failure").Inc()
	case !sasl:
		r.sasl.WithLabelValues(listener, MechanismTLS, "success").Inc()
	}
}

// MechanismTLS is the mechanism label of TLS handshakes in
// strata_authentications_total.
const MechanismTLS = "TLS"

var _ network.TLSObserver = (*Requests)(nil)

// RequestRead implements network.Observer.
func (r *Requests) RequestRead(_ int16, size int) {
	r.inFlight.Add(1)
	r.inFlightB.Add(int64(size))
}

// RequestDone implements network.Observer.
func (r *Requests) RequestDone(key int16, size int, t network.RequestTimes) {
	r.inFlight.Add(-1)
	r.inFlightB.Add(-int64(size))
	o := r.api(key)
	o.total.Observe(t.Total().Seconds())
	o.local.Observe(t.Local.Seconds())
	o.remote.Observe(t.Remote.Seconds())
	o.send.Observe(t.Send.Seconds())
}

func (r *Requests) api(key int16) *apiObservers {
	i := r.unknown
	if key >= 0 && int(key) <= maxAPIKey {
		i = int(key)
	}
	if o := r.apis[i].Load(); o != nil {
		return o
	}
	name := "unknown"
	if i != r.unknown {
		if name = kmsg.NameForKey(key); name == "" {
			name = "unknown"
		}
	}
	o := &apiObservers{
		total:  r.duration.WithLabelValues(name, "total"),
		local:  r.duration.WithLabelValues(name, "local"),
		remote: r.duration.WithLabelValues(name, "remote"),
		send:   r.duration.WithLabelValues(name, "send"),
	}
	r.apis[i].CompareAndSwap(nil, o) // a racing first request built the same children
	return r.apis[i].Load()
}
