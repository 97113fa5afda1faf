package network

import "sync"

// memPool is the broker-wide budget for bytes held by requests being read
// and served (Kafka's queued.max.request.bytes and its MemoryPool). A
// connection's reader takes a request's size from it before allocating the
// body and gives it back once the handler's Serve has returned (Kafka
// releases a request's buffer when its handler thread is done with it, not
// when a delayed response completes). While the pool is exhausted readers
// wait without reading, so their sockets apply TCP backpressure; nobody is
// disconnected. As Kafka's non-strict pool, a request is admitted whenever
// some budget is left even if it is larger than what is left, so one
// request larger than the whole budget still gets through alone.
type memPool struct {
	capacity int64 // <= 0: unbounded

	mu        sync.Mutex
	available int64
	waiting   int           // readers waiting for memory
	freed     chan struct{} // closed (and replaced) whenever bytes come back
}

func newMemPool(capacity int64) *memPool {
	return &memPool{capacity: capacity, available: capacity, freed: make(chan struct{})}
}

// acquire takes n bytes, waiting while nothing is left. It returns false
// if stop or kill is closed first.
func (p *memPool) acquire(n int64, stop, kill <-chan struct{}) bool {
	if p.capacity <= 0 {
		return true
	}
	for {
		p.mu.Lock()
		if p.available > 0 {
			p.available -= n
			p.mu.Unlock()
			return true
		}
		freed := p.freed
		p.waiting++
		p.mu.Unlock()
		var ok bool
		select {
		case <-freed:
			ok = true
		case <-stop:
		case <-kill:
		}
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		if !ok {
			return false
		}
	}
}

// release gives n bytes back.
func (p *memPool) release(n int64) {
	if p.capacity <= 0 || n == 0 {
		return
	}
	p.mu.Lock()
	p.available += n
	close(p.freed)
	p.freed = make(chan struct{})
	p.mu.Unlock()
}

// Waiting returns the number of readers waiting for memory.
func (p *memPool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// Available returns the bytes left in the pool (negative when an admitted
// request overdrew it; the capacity itself when unbounded).
func (p *memPool) Available() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.available
}
