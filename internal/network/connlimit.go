package network

// Connection limits, as Kafka's acceptor applies them:
//
//   - max.connections.per.ip (with per-address overrides): a connection from
//     an address that already holds its maximum is closed as soon as it is
//     accepted, with an INFO line (rate-limited per address);
//   - max.connections: at the limit the listener stops accepting until a
//     connection closes, so the kernel's backlog holds new clients instead
//     of the broker dropping them;
//   - max.connection.creation.rate: accepts are spaced so that no more than
//     this many connections a second are taken, again leaving the rest in
//     the backlog.

import (
	"net"
	"sync"
	"time"
)

// ConnLimits configure the limits; zero values mean unlimited.
type ConnLimits struct {
	// Max is max.connections.
	Max int
	// PerIP is max.connections.per.ip; negative: none (Kafka's 0, which
	// leaves only the overridden addresses).
	PerIP int
	// PerIPOverrides are max.connections.per.ip.overrides, by IP address
	// (hosts resolved by the caller).
	PerIPOverrides map[string]int
	// CreationRate is max.connection.creation.rate, per second.
	CreationRate int
}

func (l ConnLimits) perIP(ip string) int {
	if n, ok := l.PerIPOverrides[ip]; ok {
		return n
	}
	switch {
	case l.PerIP < 0:
		return 0 // only the overridden addresses may connect
	case l.PerIP == 0:
		return -1 // unlimited
	}
	return l.PerIP
}

// connLimiter counts connections per address and in all.
type connLimiter struct {
	lim ConnLimits
	now func() time.Time

	mu       sync.Mutex
	total    int
	byIP     map[string]int
	freed    chan struct{} // signalled when a connection closes
	nextSlot time.Time     // creation rate: the earliest time of the next accept
	warned   map[string]time.Time
}

func newConnLimiter(lim ConnLimits, now func() time.Time) *connLimiter {
	return &connLimiter{lim: lim, now: now, byIP: map[string]int{}, freed: make(chan struct{}, 1), warned: map[string]time.Time{}}
}

// waitAccept blocks while the broker holds max.connections, or until the
// creation rate allows the next accept; done ends the wait.
func (c *connLimiter) waitAccept(done <-chan struct{}) {
	for {
		c.mu.Lock()
		full := c.lim.Max > 0 && c.total >= c.lim.Max
		var wait time.Duration
		if !full && c.lim.CreationRate > 0 {
			now := c.now()
			if c.nextSlot.After(now) {
				wait = c.nextSlot.Sub(now)
			}
		}
		c.mu.Unlock()
		switch {
		case full:
			select {
			case <-c.freed:
			case <-done:
				return
			}
		case wait > 0:
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-done:
				t.Stop()
				return
			}
		default:
			return
		}
	}
}

// admit counts a new connection from addr, or reports (false, limit) when
// its address already holds its maximum.
func (c *connLimiter) admit(addr net.Addr) (ok bool, ip string, limit int) {
	ip = hostOf(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lim.CreationRate > 0 {
		slot := c.now()
		if c.nextSlot.After(slot) {
			slot = c.nextSlot
		}
		c.nextSlot = slot.Add(time.Second / time.Duration(c.lim.CreationRate))
	}
	if n := c.lim.perIP(ip); n >= 0 && c.byIP[ip] >= n {
		return false, ip, n
	}
	c.byIP[ip]++
	c.total++
	return true, ip, 0
}

// release uncounts a connection admitted from ip.
func (c *connLimiter) release(ip string) {
	c.mu.Lock()
	if c.byIP[ip]--; c.byIP[ip] <= 0 {
		delete(c.byIP, ip)
	}
	c.total--
	c.mu.Unlock()
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

// shouldLog rate-limits the refusal line to one a minute per address.
func (c *connLimiter) shouldLog(ip string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if t, ok := c.warned[ip]; ok && now.Sub(t) < time.Minute {
		return false
	}
	c.warned[ip] = now
	return true
}

func hostOf(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}
