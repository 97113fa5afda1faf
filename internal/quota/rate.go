package quota

import (
	"math"
	"time"
)

// Window is how a rate is measured: Samples windows of Size each (Kafka's
// quota.window.num and quota.window.size.seconds, 11 and 1 s by default;
// controller.quota.window.* for controller mutations).
type Window struct {
	Samples int
	Size    time.Duration
}

func (w Window) withDefaults() Window {
	if w.Samples <= 0 {
		w.Samples = 11
	}
	if w.Size <= 0 {
		w.Size = time.Second
	}
	return w
}

func (w Window) sizeMs() int64 { return max(w.Size.Milliseconds(), 1) }

// Rate is Kafka's Rate over a SampledStat: a ring of at most Samples
// samples, each begun by the first record at least Size after the start
// of the one before; samples Samples*Size old are reset when measured.
// The rate is the sum of the samples over the time since the oldest
// began, counted as at least Samples-1 whole windows, so a burst after a
// quiet spell is spread over that much time, as in Kafka. Times are
// milliseconds, as Kafka's. Not safe for concurrent use.
type Rate struct {
	w       Window
	samples []sample
	cur     int
}

type sample struct {
	start int64 // ms
	value float64
}

// NewRate returns an empty rate measured over w.
func NewRate(w Window) *Rate { return &Rate{w: w.withDefaults()} }

// Record adds v at nowMs.
func (r *Rate) Record(v float64, nowMs int64) {
	if len(r.samples) == 0 {
		r.samples = append(r.samples, sample{start: nowMs})
		r.cur = 0
	}
	if nowMs-r.samples[r.cur].start >= r.w.sizeMs() {
		r.cur = (r.cur + 1) % r.w.Samples
		if r.cur >= len(r.samples) {
			r.samples = append(r.samples, sample{start: nowMs})
		} else {
			r.samples[r.cur] = sample{start: nowMs}
		}
	}
	r.samples[r.cur].value += v
}

// purge resets the samples too old to count.
func (r *Rate) purge(nowMs int64) {
	expire := int64(r.w.Samples) * r.w.sizeMs()
	for i := range r.samples {
		if nowMs-r.samples[i].start >= expire {
			r.samples[i] = sample{start: nowMs}
		}
	}
}

// WindowMs is the time the rate divides by at nowMs (Kafka's
// Rate.windowSize): since the oldest sample began, at least Samples-1
// whole windows, at least 1 ms.
func (r *Rate) WindowMs(nowMs int64) int64 {
	r.purge(nowMs)
	oldest := nowMs
	for _, s := range r.samples {
		oldest = min(oldest, s.start)
	}
	elapsed := nowMs - oldest
	size := r.w.sizeMs()
	if full, minFull := elapsed/size, int64(r.w.Samples-1); full < minFull {
		elapsed += (minFull - full) * size
	}
	return max(elapsed, 1)
}

// Measure is the rate per second at nowMs.
func (r *Rate) Measure(nowMs int64) float64 {
	win := r.WindowMs(nowMs) // purges first
	var total float64
	for _, s := range r.samples {
		total += s.value
	}
	return total / (float64(win) / 1000)
}

// ThrottleMs is how long a client measured at this rate must wait to be
// back at bound (Kafka's QuotaUtils.throttleTime): the excess over the
// bound, as a fraction of it, times the window; 0 within the bound.
func (r *Rate) ThrottleMs(bound float64, nowMs int64) int64 {
	v := r.Measure(nowMs)
	if v <= bound {
		return 0
	}
	return int64(math.Round((v - bound) / bound * float64(r.WindowMs(nowMs))))
}

// TokenBucket is Kafka's TokenBucket (KIP-599) for controller mutations:
// it holds at most the burst, (Samples-1)*Size*quota tokens, refills at
// quota tokens per second, and a record takes its value out, possibly
// below zero. It starts full.
type TokenBucket struct {
	w       Window
	tokens  float64
	lastMs  int64
	started bool
}

// NewTokenBucket returns a full bucket measured over w.
func NewTokenBucket(w Window) *TokenBucket { return &TokenBucket{w: w.withDefaults()} }

func (b *TokenBucket) burst(quota float64) float64 {
	return float64(b.w.Samples-1) * float64(b.w.sizeMs()) / 1000 * quota
}

func (b *TokenBucket) refill(quota float64, nowMs int64) {
	burst := b.burst(quota)
	if !b.started {
		b.tokens, b.lastMs, b.started = burst, nowMs, true
		return
	}
	b.tokens = min(burst, b.tokens+quota*float64(nowMs-b.lastMs)/1000)
	b.lastMs = nowMs
}

// Tokens are the tokens left at nowMs (negative: in debt).
func (b *TokenBucket) Tokens(quota float64, nowMs int64) float64 {
	b.refill(quota, nowMs)
	return b.tokens
}

// Record takes v tokens at nowMs.
func (b *TokenBucket) Record(v, quota float64, nowMs int64) {
	b.refill(quota, nowMs)
	b.tokens = min(b.burst(quota), b.tokens-v)
}

// ThrottleMs is the time until the bucket is out of debt at quota tokens
// per second (Kafka's ControllerMutationQuotaManager.throttleTimeMs); 0
// when it is not in debt.
func (b *TokenBucket) ThrottleMs(quota float64, nowMs int64) int64 {
	t := b.Tokens(quota, nowMs)
	if t >= 0 {
		return 0
	}
	return int64(math.Round(-t / quota * 1000))
}
