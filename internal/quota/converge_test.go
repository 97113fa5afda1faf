package quota

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/quota/quotatest"
)

// simulate runs a producer that sends size bytes per request and waits
// the throttle time it is told (plus gap, its own time) before the next,
// on a fake clock, until throttled for total. It returns the rate the
// producer was held to, read from the throttle times only
// (quotatest.HeldRate).
func simulate(w Window, quota, size float64, gap, total time.Duration) (float64, bool) {
	now := time.Unix(0, 0)
	m := NewManager(Options{Window: w, Now: func() time.Time { return now }})
	m.Set(map[Entity]map[string]float64{{User: Named("u")}: {ProducerByteRate: quota}})
	var ex []quotatest.Exchange
	var throttled time.Duration
	for throttled < total {
		t := m.Record(Produce, "u", "c", size)
		ex = append(ex, quotatest.Exchange{Bytes: size, Throttle: t})
		throttled += t
		now = now.Add(t + gap)
	}
	return quotatest.HeldRate(ex, time.Duration(w.Samples-1)*w.Size)
}

// TestThrottledProducerConvergesToQuota: a producer that honours the
// throttle times it is given is held to its quota, whatever its request
// size and the window, once the first throttle has absorbed the burst the
// window allows.
func TestThrottledProducerConvergesToQuota(t *testing.T) {
	for _, c := range []struct {
		w     Window
		quota float64
		size  float64
		total time.Duration
		gap   time.Duration
		tol   float64
	}{
		{Window{Samples: 11, Size: time.Second}, 1 << 20, 64 << 10, 60 * time.Second, time.Millisecond, 0.03},
		{Window{Samples: 2, Size: time.Second}, 200 << 10, 40 << 10, 8 * time.Second, time.Millisecond, 0.03},
		{Window{Samples: 2, Size: time.Second}, 200 << 10, 16 << 10, 8 * time.Second, time.Millisecond, 0.03},
		{Window{Samples: 3, Size: time.Second}, 100 << 10, 5 << 10, 20 * time.Second, time.Millisecond, 0.03},
		// A slow client (10 ms of its own per request, 5% of each
		// throttle) is measured that much above: its own time is not
		// throttle time, but the broker's window sees it.
		{Window{Samples: 2, Size: time.Second}, 200 << 10, 40 << 10, 8 * time.Second, 10 * time.Millisecond, 0.08},
	} {
		t.Run(fmt.Sprintf("%d/%v/%v/%v/%v", c.w.Samples, c.quota, c.size, c.total, c.gap), func(t *testing.T) {
			got, ok := simulate(c.w, c.quota, c.size, c.gap, c.total)
			if !ok {
				t.Fatal("no measurement")
			}
			if dev := math.Abs(got-c.quota) / c.quota; dev > c.tol {
				t.Fatalf("held to %.0f B/s, quota %.0f: %.1f%% off (tolerance %.0f%%)", got, c.quota, dev*100, c.tol*100)
			}
			t.Logf("held to %.0f B/s against %.0f (%.2f%%)", got, c.quota, (got-c.quota)/c.quota*100)
		})
	}
}
