package network

import (
	"context"
	"sync"
	"testing"
	"time"
)

// countingObserver records what the network reports.
type countingObserver struct {
	mu                sync.Mutex
	opened, closed    int
	read, done, sized int
	answered          int
	remote            []time.Duration
	keys              map[int16]int
}

func (o *countingObserver) ConnOpened() { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *countingObserver) ConnClosed() { o.mu.Lock(); o.closed++; o.mu.Unlock() }
func (o *countingObserver) RequestRead(key int16, size int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.read++
	o.sized += size
}
func (o *countingObserver) RequestDone(key int16, size int, t RequestTimes) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done++
	o.sized -= size
	if t.Answered {
		o.answered++
	}
	if t.Local < 0 || t.Remote < 0 || t.Send < 0 || t.Total() != t.Local+t.Remote+t.Send {
		panic("negative stage")
	}
	o.remote = append(o.remote, t.Remote)
	if o.keys == nil {
		o.keys = map[int16]int{}
	}
	o.keys[key]++
}

func (o *countingObserver) snapshot() countingObserver {
	o.mu.Lock()
	defer o.mu.Unlock()
	return countingObserver{opened: o.opened, closed: o.closed, read: o.read, done: o.done, sized: o.sized,
		answered: o.answered, remote: append([]time.Duration(nil), o.remote...)}
}

// TestObserverSeesEveryRequest: every request read is reported done once,
// with its API key and size; a request completed later from another
// goroutine has its wait in the remote stage; acks=0-style requests are
// done but not answered; connections are counted open and closed.
func TestObserverSeesEveryRequest(t *testing.T) {
	obs := &countingObserver{}
	release := make(chan struct{})
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		switch corrOf(req) {
		case 1:
			r.NoResponse()
		case 2:
			go func() {
				<-release
				r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte("late")}}})
			}()
		default:
			r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte("now")}}})
		}
	})
	_, addr := startTCP(t, Config{Observer: obs}, h)
	c := dial(t, addr)
	for i := range int32(4) {
		if _, err := c.Write(frame(i, []byte("abc"))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readResp(c); err != nil { // request 0
		t.Fatal(err)
	}
	// The reader reads request 3 only once Serve returned for request 2,
	// so request 2's wait for release starts before release.
	waitFor(t, "four requests read", func() bool { s := obs.snapshot(); return s.read == 4 })
	// Request 2 waits for release: it (and request 3, answered but queued
	// behind it) are in flight.
	if s := obs.snapshot(); s.done != 2 || s.sized != 22 {
		t.Fatalf("before release: done %d, in-flight bytes %d; want 2 and 22", s.done, s.sized)
	}
	close(release)
	for range 2 {
		if _, err := readResp(c); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "four requests done", func() bool { return obs.snapshot().done == 4 })
	s := obs.snapshot()
	if s.answered != 3 || s.sized != 0 || s.opened != 1 {
		t.Fatalf("answered %d (want 3), in-flight bytes %d (want 0), opened %d (want 1)", s.answered, s.sized, s.opened)
	}
	if s.remote[2] <= 0 {
		t.Fatalf("the late request's remote stage is %v, want > 0", s.remote[2])
	}
	obs.mu.Lock()
	if obs.keys[0] != 4 {
		t.Errorf("api key 0 seen %d times, want 4", obs.keys[0])
	}
	obs.mu.Unlock()
	c.Close()
	waitFor(t, "connection closed", func() bool { return obs.snapshot().closed == 1 })
}
