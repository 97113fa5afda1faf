package network

import (
	"net"
	"sync"
	"testing"
	"time"
)

// roundTrip sends one request on c and waits for its answer.
func roundTrip(t *testing.T, c net.Conn, corr int32) {
	t.Helper()
	if _, err := c.Write(frame(corr, nil)); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readResp(c); err != nil {
		t.Fatalf("connection %d got no answer: %v", corr, err)
	}
}

// The third connection from one address is closed at once when the limit is
// two; an override raises it for that address; a closed connection frees
// its place.
func TestMaxConnectionsPerIP(t *testing.T) {
	s, addr := startTCP(t, Config{Limits: ConnLimits{PerIP: 2}}, echoHandler)
	a, b := dial(t, addr), dial(t, addr)
	roundTrip(t, a, 1)
	roundTrip(t, b, 2)
	c := dial(t, addr)
	expectClosed(t, c)
	roundTrip(t, a, 3) // the others are untouched
	a.Close()
	waitFor(t, "the closed connection to be released", func() bool { return s.NumConns() == 1 })
	d := dial(t, addr)
	roundTrip(t, d, 4)

	_, addr2 := startTCP(t, Config{Limits: ConnLimits{PerIP: 1, PerIPOverrides: map[string]int{"127.0.0.1": 3}}}, echoHandler)
	for i := range 3 {
		roundTrip(t, dial(t, addr2), int32(i))
	}
	expectClosed(t, dial(t, addr2))
}

// At max.connections the broker stops accepting: a new client waits in the
// backlog (its connect succeeds, its request is not served) until another
// connection closes.
func TestMaxConnectionsWaitsInsteadOfRefusing(t *testing.T) {
	s, addr := startTCP(t, Config{Limits: ConnLimits{Max: 1}}, echoHandler)
	a := dial(t, addr)
	roundTrip(t, a, 1)
	b := dial(t, addr) // in the kernel's backlog
	if _, err := b.Write(frame(2, nil)); err != nil {
		t.Fatal(err)
	}
	_ = b.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := readResp(b); err == nil {
		t.Fatal("a connection beyond max.connections was served")
	}
	if n := s.NumConns(); n != 1 {
		t.Fatalf("%d connections accepted, want 1", n)
	}
	a.Close()
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readResp(b); err != nil {
		t.Fatalf("the waiting connection was not served once a place freed: %v", err)
	}
}

// The creation rate spaces accepts: with a rate of 10/s, the limiter hands
// out slots 100 ms apart on its clock.
func TestConnectionCreationRate(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	l := newConnLimiter(ConnLimits{CreationRate: 10}, clock)
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	for i := range 3 {
		if ok, _, _ := l.admit(addr); !ok {
			t.Fatalf("connection %d refused", i)
		}
	}
	if want := now.Add(300 * time.Millisecond); !l.nextSlot.Equal(want) {
		t.Fatalf("next accept at %v, want %v", l.nextSlot, want)
	}
	done := make(chan struct{})
	waited := make(chan struct{})
	go func() { l.waitAccept(done); close(waited) }()
	select {
	case <-waited:
		t.Fatal("accepted before its slot")
	case <-time.After(50 * time.Millisecond):
	}
	mu.Lock()
	now = now.Add(300 * time.Millisecond)
	mu.Unlock()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the slot came")
	}
	close(done)
}

// The inter-broker listener is exempt from max.connections.
func TestUnthrottledListenerIgnoresMaxConnections(t *testing.T) {
	_, addr := startListener(t, Config{Limits: ConnLimits{Max: 1}}, Listener{Name: "BROKER", Protocol: "PLAINTEXT", Unthrottled: true}, echoHandler)
	for i := range 3 {
		roundTrip(t, dial(t, addr), int32(i))
	}
}
