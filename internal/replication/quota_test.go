package replication

import (
	"math"
	"testing"
	"time"
)

// testClock is a settable clock.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
func newTestClock() *testClock               { return &testClock{t: time.Unix(1_700_000_000, 0)} }

func TestRateMeter(t *testing.T) {
	type step struct {
		at    time.Duration // since the start
		bytes int64         // recorded at at (0: none)
		rate  float64       // expected rate at at, after the record; -1 skips
	}
	tests := []struct {
		name  string
		cfg   QuotaConfig
		steps []step
	}{
		{name: "empty", cfg: QuotaConfig{Windows: 11, WindowSize: time.Second},
			steps: []step{{at: 0, rate: 0}, {at: 5 * time.Second, rate: 0}}},
		// A burst is spread over at least Windows-1 windows.
		{name: "burst over the minimum span", cfg: QuotaConfig{Windows: 11, WindowSize: time.Second},
			steps: []step{{at: 0, bytes: 1000, rate: 100}, {at: 500 * time.Millisecond, rate: 1000 / 10.5}}},
		{name: "two windows", cfg: QuotaConfig{Windows: 2, WindowSize: time.Second},
			steps: []step{
				{at: 0, bytes: 1000, rate: 1000}, // elapsed 0 -> 1 window
				{at: 500 * time.Millisecond, bytes: 1000, rate: 2000 / 1.5},
				{at: 1000 * time.Millisecond, bytes: 1000, rate: 3000 / 1.0}, // a new sample; elapsed 1 s is one full window
				{at: 1500 * time.Millisecond, rate: 3000 / 1.5},
				// At 2 s the first sample is Windows*WindowSize old and expires.
				{at: 2000 * time.Millisecond, rate: 1000 / 1.0},
				{at: 2999 * time.Millisecond, rate: 1000 / 1.999},
				{at: 3000 * time.Millisecond, rate: 0},
			}},
		{name: "steady rate", cfg: QuotaConfig{Windows: 3, WindowSize: time.Second},
			steps: func() []step {
				var s []step
				for i := 0; i < 40; i++ { // 100 bytes every 100 ms: 1000 B/s
					s = append(s, step{at: time.Duration(i) * 100 * time.Millisecond, bytes: 100, rate: -1})
				}
				// At 3.9 s the ring holds the samples begun at 1, 2 and 3 s (the
				// last reused the first slot): 3000 bytes over 2.9 s.
				s = append(s, step{at: 3900 * time.Millisecond, rate: 3000.0 / 2.9})
				return s
			}()},
		{name: "ring reuses samples", cfg: QuotaConfig{Windows: 2, WindowSize: time.Second},
			steps: []step{
				{at: 0, bytes: 100, rate: -1},
				{at: 1 * time.Second, bytes: 200, rate: -1},
				{at: 2 * time.Second, bytes: 400, rate: 600 / 1.0}, // replaces the first
				{at: 2500 * time.Millisecond, rate: 600 / 1.5},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(1_700_000_000, 0)
			m := newRateMeter(tc.cfg)
			for i, s := range tc.steps {
				now := start.Add(s.at)
				if s.bytes > 0 {
					m.record(now, s.bytes)
				}
				if s.rate < 0 {
					continue
				}
				if got := m.rate(now); math.Abs(got-s.rate) > 1e-6*max(1, s.rate) {
					t.Fatalf("step %d at %v: rate %.3f, want %.3f", i, s.at, got, s.rate)
				}
			}
		})
	}
}

func TestQuotaExceeded(t *testing.T) {
	clk := newTestClock()
	q := newQuota(QuotaConfig{Windows: 2, WindowSize: time.Second}, clk.Now)
	q.record(1 << 30)
	if q.exceeded() {
		t.Fatal("unlimited quota exceeded")
	}
	q = newQuota(QuotaConfig{Windows: 2, WindowSize: time.Second}, clk.Now)
	q.setLimit(1000)
	if q.exceeded() {
		t.Fatal("exceeded with nothing recorded")
	}
	q.record(1000) // 1000 B over one window: at the limit, not above
	if q.exceeded() {
		t.Fatalf("exceeded at the limit (rate %.1f)", q.rate())
	}
	q.record(1)
	if !q.exceeded() {
		t.Fatalf("not exceeded above the limit (rate %.1f)", q.rate())
	}
	clk.Advance(500 * time.Millisecond) // 1001 B / 1.5 s
	if q.exceeded() {
		t.Fatalf("still exceeded after time passed (rate %.1f)", q.rate())
	}
	q.setLimit(-1)
	q.record(1 << 30)
	if q.exceeded() || q.Limit() != math.MaxInt64 {
		t.Fatal("negative limit is not unlimited")
	}
	q.setLimit(0) // zero: anything recorded exceeds it
	if !q.exceeded() {
		t.Fatal("limit 0 not exceeded")
	}
}

// TestQuotaLongRun drives a throttled sender the way a fetcher does (send
// up to chunk bytes whenever the quota is not exceeded, check every 10 ms)
// and checks the achieved rate is the limit within the window's burst.
func TestQuotaLongRun(t *testing.T) {
	for _, tc := range []struct {
		cfg   QuotaConfig
		limit int64
		chunk int64
	}{
		{QuotaConfig{Windows: 11, WindowSize: time.Second}, 2 << 20, 1 << 20},
		{QuotaConfig{Windows: 2, WindowSize: time.Second}, 2 << 20, 1 << 20},
		{QuotaConfig{Windows: 5, WindowSize: 200 * time.Millisecond}, 100 << 10, 8 << 10},
	} {
		clk := newTestClock()
		q := newQuota(tc.cfg, clk.Now)
		q.setLimit(tc.limit)
		const run = 60 * time.Second
		var sent int64
		for clk.t.Sub(time.Unix(1_700_000_000, 0)) < run {
			if !q.exceeded() {
				q.record(tc.chunk)
				sent += tc.chunk
			}
			clk.Advance(10 * time.Millisecond)
		}
		want := float64(tc.limit) * run.Seconds()
		burst := float64(tc.limit)*(time.Duration(tc.cfg.Windows)*tc.cfg.WindowSize).Seconds() + float64(tc.chunk)
		if float64(sent) < want*0.9 || float64(sent) > want*1.05+burst {
			t.Errorf("%+v limit %d: sent %d in %v, want %.0f (+ burst %.0f)", tc.cfg, tc.limit, sent, run, want, burst)
		}
	}
}
