package replication

// A Waiter is one long-polling fetch's doorbell (Kafka's delayed-fetch
// purgatory, reduced to what a fetch needs): the fetch watches every
// partition it reads, and the first of them whose high watermark or log end
// moves, or whose role changes, rings it. Ringing never blocks and rings
// coalesce, so a partition that moves between the fetch's read and its wait
// leaves the bell rung rather than lost. A fetch waits on one channel
// however many partitions it reads, and stops watching when it answers.
type Waiter struct {
	c chan struct{}
}

// NewWaiter returns a Waiter that has not been rung.
func NewWaiter() *Waiter { return &Waiter{c: make(chan struct{}, 1)} }

// C receives once after one or more rings.
func (w *Waiter) C() <-chan struct{} { return w.c }

func (w *Waiter) ring() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Watch makes w ring whenever the partition moves, until Unwatch.
func (p *Partition) Watch(w *Waiter) {
	p.mu.Lock()
	if p.watchers == nil {
		p.watchers = make(map[*Waiter]struct{})
	}
	p.watchers[w] = struct{}{}
	p.mu.Unlock()
}

// Unwatch stops Watch.
func (p *Partition) Unwatch(w *Waiter) {
	p.mu.Lock()
	delete(p.watchers, w)
	p.mu.Unlock()
}
