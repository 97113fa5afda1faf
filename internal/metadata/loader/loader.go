package loader

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

// Publisher receives metadata changes on the loader's goroutine, in log
// order: d.Image is the newest image, d.Prev the one it saw last (the
// empty image the first time). A publisher that takes long delays the
// publishers after it, never the quorum.
type Publisher interface {
	Publish(d *Delta)
}

// PublisherFunc is a function as a Publisher.
type PublisherFunc func(d *Delta)

// Publish calls f.
func (f PublisherFunc) Publish(d *Delta) { f(d) }

// Options configure a Loader.
type Options struct {
	Logger *slog.Logger
}

// Loader is the metadata quorum's state machine (Apply, Snapshot,
// Restore): it keeps the image of the committed log and publishes each
// change to its publishers on its own goroutine (Start).
type Loader struct {
	log *slog.Logger

	image atomic.Pointer[metadata.Image]

	mu       sync.Mutex       // serialises Apply and Restore; guards below
	changed  chan struct{}    // closed and replaced at each new image
	rejected map[uint64]error // entries the image skipped, for their proposer
	subs     []*sub
	wake     chan struct{}
	stop     chan struct{}
	done     chan struct{}
	started  bool
	stopped  bool
}

// sub is a registered publisher and the delta it has not seen yet.
type sub struct {
	p       Publisher
	pending *Delta
}

// New returns a loader with the empty image.
func New(opts Options) *Loader {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Loader{log: opts.Logger.With("component", "metadata-loader"), changed: make(chan struct{}),
		rejected: map[uint64]error{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	l.image.Store(metadata.Empty())
	return l
}

// Image returns the newest image.
func (l *Loader) Image() *metadata.Image { return l.image.Load() }

// Apply applies a committed entry (the quorum calls it in log order). An
// entry the image rejects is skipped with an error log on every node alike
// (Rejected gives the proposer the reason); it never stops the node.
func (l *Loader) Apply(index uint64, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.image.Load()
	if int64(index) <= prev.Offset {
		return nil // already in the image (a snapshot covered it)
	}
	recs, err := metadata.DecodeEntry(data)
	var next *metadata.Image
	if err == nil {
		next, err = prev.Apply(int64(index), recs)
	}
	if err != nil {
		l.log.Error("metadata entry rejected", "index", index, "err", err)
		l.rejected[index] = err
		skipped := *prev
		skipped.Offset = int64(index)
		l.publishLocked(Step(prev, &skipped, nil))
		return nil
	}
	l.publishLocked(Step(prev, next, recs))
	return nil
}

// ApplyRecords applies recs committed at offset (a log replayed without a
// quorum: controller.New's local log).
func (l *Loader) ApplyRecords(offset int64, recs []metadata.Record) error {
	data, err := metadata.EncodeEntry(recs)
	if err != nil {
		return err
	}
	return l.Apply(uint64(offset), data)
}

// Snapshot encodes the current image for the quorum's log compaction.
func (l *Loader) Snapshot() ([]byte, error) {
	return metadata.EncodeEntry(l.image.Load().Records())
}

// Restore replaces the image by a snapshot taken at index.
func (l *Loader) Restore(data []byte, index uint64) error {
	var recs []metadata.Record
	if len(data) > 0 { // the quorum's bootstrap snapshot has no data
		var err error
		if recs, err = metadata.DecodeEntry(data); err != nil {
			return fmt.Errorf("restore metadata snapshot: %w", err)
		}
	}
	next, err := metadata.Empty().Apply(int64(index), recs)
	if err != nil {
		return fmt.Errorf("restore metadata snapshot: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publishLocked(Diff(l.image.Load(), next))
	return nil
}

// Rejected returns (once) why the image skipped the entry at index, nil
// if it applied it.
func (l *Loader) Rejected(index uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.rejected[index]
	delete(l.rejected, index)
	return err
}

// publishLocked stores d.Image, adds d to every publisher's pending delta
// and wakes the loader's goroutine. mu held.
func (l *Loader) publishLocked(d *Delta) {
	l.image.Store(d.Image)
	for _, s := range l.subs {
		if s.pending == nil {
			s.pending = d.clone()
		} else {
			s.pending.absorb(d)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.signal()
}

func (l *Loader) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Register adds a publisher. Its first delta runs from the empty image to
// the current one (none while the image is empty), then it follows every
// change.
func (l *Loader) Register(p Publisher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &sub{p: p}
	if img := l.image.Load(); img.Offset >= 0 {
		s.pending = Diff(metadata.Empty(), img)
	}
	l.subs = append(l.subs, s)
	l.signal()
}

// Start runs the publishing goroutine until Close. Changes before Start
// wait for it (merged); calls after the first do nothing.
func (l *Loader) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.stopped {
		return
	}
	l.started = true
	go l.run()
}

func (l *Loader) run() {
	defer close(l.done)
	for {
		select {
		case <-l.stop:
			return
		case <-l.wake:
		}
		for {
			// One round: every publisher with news, in registration
			// order; what arrives meanwhile is merged for the next round.
			type job struct {
				p Publisher
				d *Delta
			}
			var jobs []job
			l.mu.Lock()
			for _, s := range l.subs {
				if s.pending != nil {
					jobs = append(jobs, job{s.p, s.pending})
					s.pending = nil
				}
			}
			l.mu.Unlock()
			if len(jobs) == 0 {
				break
			}
			for _, j := range jobs {
				select {
				case <-l.stop:
					return
				default:
				}
				j.p.Publish(j.d)
			}
		}
	}
}

// Close stops publishing and waits for a publisher in progress; Apply
// still keeps the image afterwards.
func (l *Loader) Close() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	started := l.started
	close(l.stop)
	l.mu.Unlock()
	if started {
		<-l.done
	}
}

// WaitFor waits until cond holds for the current image or timeout passes,
// and reports whether it held.
func (l *Loader) WaitFor(cond func(*metadata.Image) bool, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		l.mu.Lock()
		ch := l.changed
		l.mu.Unlock()
		if cond(l.image.Load()) {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return cond(l.image.Load())
		}
	}
}
