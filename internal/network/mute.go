package network

import (
	"time"
)

// Muting a throttled connection (Kafka 2.0+, KIP-219): a broker answers a
// client over its quota at once, with the throttle time in the response,
// and then reads nothing more from the connection until the throttle time
// has passed, so that a client that ignores the throttle time is held
// back all the same. Mute records the end of the throttle; the reader
// waits for it before it reads the next request. Requests already read
// (the reader may be ahead of the responses) are served as usual.

// Mute keeps the reader from reading the connection's next request until
// d from now. A mute that ends later than d is kept.
func (c *ConnInfo) Mute(d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d)
	for {
		cur := c.mute.Load()
		if cur != nil && !cur.Before(until) {
			return
		}
		if c.mute.CompareAndSwap(cur, &until) {
			return
		}
	}
}

// MutedFor is how long the connection stays muted from now (0: not muted).
func (c *ConnInfo) MutedFor() time.Duration {
	if m := c.mute.Load(); m != nil {
		return max(time.Until(*m), 0)
	}
	return 0
}

// waitMuted waits until the connection's mute ends. It returns false if
// the connection is killed or stopped meanwhile.
func (c *conn) waitMuted() bool {
	d := c.info.MutedFor()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.killed:
		return false
	case <-c.stopCh:
		return false
	}
}
