// Package quotatest measures, from the client's side, the rate a quota
// holds a client to, from the throttle times the broker answers with
// (never the wall clock): a test helper shared by the quota package's
// simulations and the broker's end-to-end test.
package quotatest

import "time"

// Exchange is one request of a throttled client: its size in bytes and
// the throttle time of its response.
type Exchange struct {
	Bytes    float64
	Throttle time.Duration
}

// HeldRate is the rate, in bytes per second, a client that honours every
// throttle time was held to: bytes over throttle time, across whole
// cycles of the broker's windows.
//
// A fresh client may send a burst (the window counts at least warmup,
// (samples-1)*window size), which the throttles of the next warmup of
// throttle time pay for; and when a sample of the window expires, the
// throttle just before it pays for the burst its bytes leaving allows
// after it. So counting starts once warmup has been throttled, and runs
// from just after a throttled request that is followed by an unthrottled
// one to just after the last such request; with no unthrottled request
// after the warm-up (a steady client), from the first throttled request
// after it to the last. ok is false without two such boundaries.
func HeldRate(ex []Exchange, warmup time.Duration) (rate float64, ok bool) {
	var throttled time.Duration
	start := -1
	for i, e := range ex {
		throttled += e.Throttle
		if throttled > warmup && e.Throttle > 0 {
			start = i
			break
		}
	}
	if start < 0 {
		return 0, false
	}
	var bounds []int
	for i := start; i+1 < len(ex); i++ {
		if ex[i].Throttle > 0 && ex[i+1].Throttle == 0 {
			bounds = append(bounds, i)
		}
	}
	if len(bounds) < 2 {
		bounds = bounds[:0]
		for i := start; i < len(ex); i++ {
			if ex[i].Throttle > 0 {
				bounds = append(bounds, i)
			}
		}
	}
	if len(bounds) < 2 {
		return 0, false
	}
	var bytes float64
	var paid time.Duration
	for i := bounds[0] + 1; i <= bounds[len(bounds)-1]; i++ {
		bytes += ex[i].Bytes
		paid += ex[i].Throttle
	}
	if paid <= 0 {
		return 0, false
	}
	return bytes / paid.Seconds(), true
}
