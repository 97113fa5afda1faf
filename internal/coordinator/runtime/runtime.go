package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/stratalog/strata/internal/record"
)

// Errors the runtime answers operations with; callers map them to Kafka
// codes (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
// COORDINATOR_NOT_AVAILABLE).
var (
	ErrNotCoordinator = errors.New("not the coordinator for this partition")
	ErrLoading        = errors.New("coordinator partition is loading")
	ErrNotAvailable   = errors.New("coordinator write did not become durable")
)

// Record is one key and value written to a coordinator partition; a nil
// Value is a tombstone.
type Record struct{ Key, Value []byte }

// Log is one partition of a coordinator's internal topic, led by this node.
type Log interface {
	// Append appends batch as the leader and returns the offset of its
	// last record. It does not wait for replication.
	Append(batch []byte) (int64, error)
	// WaitDurable returns once every record up to offset is durable (the
	// high watermark is past it), or fails when the leadership is lost or
	// ctx ends first.
	WaitDurable(ctx context.Context, offset int64) error
	// ForEachBatch calls fn for every batch of the log, in order.
	ForEachBatch(fn func(batch []byte) error) error
	// EndOffset is the offset the next record will get.
	EndOffset() int64
}

// StateMachine is the state of one shard, rebuilt from and kept up to date
// with its partition's batches.
type StateMachine interface {
	// Replay applies one batch, at load time and after every write.
	Replay(batch []byte) error
}

// Result is what an operation returns: records to write (none for a
// read), the options of their batch (nil for a plain batch without a
// producer), and the value or error to answer with once the records and
// everything written before them are durable. The records are written even
// with an error (an operation may change state and still answer an error,
// as InitProducerId fencing an ongoing transaction does). AfterDurable, if
// set, runs once the records are durable, before the answer (it must not
// block).
type Result struct {
	Records      []Record
	Batch        *record.BatchOptions
	Value        any
	Err          error
	AfterDurable func()
}

// Op is an operation on a shard's state machine; it runs on the shard's
// goroutine and must not block.
type Op[S StateMachine] func(s S) Result

// Done receives an operation's answer.
type Done func(value any, err error)

// Options configure a Runtime.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// WriteTimeout bounds how long an answer waits for its records to
	// become durable (Kafka's offsets.commit.timeout.ms for coordinators).
	WriteTimeout time.Duration
	// Name names the internal topic in logs.
	Name string
	// RetryBackoff is the pause before a write whose answer gave up is
	// checked again for durability, when the log said at once that it is
	// not durable (an ISR below min.insync.replicas) rather than waiting
	// (100 ms, Kafka's retry.backoff.ms).
	RetryBackoff time.Duration
}

// Runtime runs the shards this node leads. Its mutex guards only the map
// of shards; operations take no lock shared between shards.
type Runtime[S StateMachine] struct {
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex
	shards map[int32]*shard[S]
}

// New returns a runtime with no shards.
func New[S StateMachine](opts Options) *Runtime[S] {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 100 * time.Millisecond
	}
	return &Runtime[S]{opts: opts, log: opts.Logger.With("component", "coordinator-runtime", "topic", opts.Name), shards: map[int32]*shard[S]{}}
}

type task[S StateMachine] struct {
	op   Op[S]
	done Done
}

type completion struct {
	offset int64 // -1: nothing to wait for
	value  any
	err    error
	done   Done
	after  func()
}

type shard[S StateMachine] struct {
	rt     *Runtime[S]
	p      int32
	epoch  int32
	log    Log
	sm     S
	ctx    context.Context
	cancel context.CancelFunc
	exited chan struct{}

	mu      sync.Mutex
	loaded  bool
	stopped bool
	queue   []task[S]
	wake    chan struct{}

	// Owned by the shard goroutine.
	lastWritten int64

	cmu     sync.Mutex
	pending []completion
	cwake   chan struct{}
}

// Load takes the leadership of partition p (in leader epoch epoch): a new
// shard replays log into sm on its own goroutine, then runs loaded (if
// not nil) as its first operation, answering done. Operations submitted
// meanwhile get ErrLoading. A shard already loaded for p is unloaded
// first.
func (r *Runtime[S]) Load(p, epoch int32, log Log, sm S, loaded Op[S], done Done) {
	r.Unload(p)
	ctx, cancel := context.WithCancel(context.Background())
	sh := &shard[S]{rt: r, p: p, epoch: epoch, log: log, sm: sm, ctx: ctx, cancel: cancel,
		exited: make(chan struct{}), wake: make(chan struct{}, 1), cwake: make(chan struct{}, 1), lastWritten: -1}
	r.mu.Lock()
	r.shards[p] = sh
	r.mu.Unlock()
	go sh.completions()
	go sh.run(loaded, done)
}

// Unload gives up partition p: queued and waiting operations are answered
// ErrNotCoordinator. It returns once the shard's goroutine stopped, so no
// operation of the old shard runs after it.
func (r *Runtime[S]) Unload(p int32) {
	r.mu.Lock()
	sh := r.shards[p]
	delete(r.shards, p)
	r.mu.Unlock()
	if sh != nil {
		sh.stop()
	}
}

// Close unloads every shard.
func (r *Runtime[S]) Close() {
	r.mu.Lock()
	shards := r.shards
	r.shards = map[int32]*shard[S]{}
	r.mu.Unlock()
	for _, sh := range shards {
		sh.stop()
	}
}

// Epoch is the leader epoch partition p was loaded in, and whether this
// node runs its shard.
func (r *Runtime[S]) Epoch(p int32) (int32, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	sh := r.shards[p]
	if sh == nil {
		return 0, false
	}
	return sh.epoch, true
}

// Partitions lists the partitions whose shards run here, loaded or not.
func (r *Runtime[S]) Partitions() []int32 {
	r.mu.RLock()
	out := make([]int32, 0, len(r.shards))
	for p := range r.shards {
		out = append(out, p)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Submit runs op on partition p's shard and answers done (never on the
// caller's goroutine when the shard exists).
func (r *Runtime[S]) Submit(p int32, op Op[S], done Done) {
	r.mu.RLock()
	sh := r.shards[p]
	r.mu.RUnlock()
	if sh == nil {
		done(nil, ErrNotCoordinator)
		return
	}
	sh.mu.Lock()
	switch {
	case sh.stopped:
		sh.mu.Unlock()
		done(nil, ErrNotCoordinator)
		return
	case !sh.loaded:
		sh.mu.Unlock()
		done(nil, ErrLoading)
		return
	}
	sh.queue = append(sh.queue, task[S]{op, done})
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// Call is Submit waiting for the answer.
func (r *Runtime[S]) Call(p int32, op Op[S]) (any, error) {
	type answer struct {
		v   any
		err error
	}
	ch := make(chan answer, 1)
	r.Submit(p, op, func(v any, err error) { ch <- answer{v, err} })
	a := <-ch
	return a.v, a.err
}

func (sh *shard[S]) stop() {
	sh.mu.Lock()
	sh.stopped = true
	queue := sh.queue
	sh.queue = nil
	sh.mu.Unlock()
	sh.cancel()
	<-sh.exited
	for _, t := range queue {
		t.done(nil, ErrNotCoordinator)
	}
}

// run loads the shard, then runs operations until the shard stops.
func (sh *shard[S]) run(loaded Op[S], done Done) {
	defer close(sh.exited)
	start := time.Now()
	err := sh.log.ForEachBatch(func(batch []byte) error {
		if sh.ctx.Err() != nil {
			return sh.ctx.Err()
		}
		return sh.sm.Replay(batch)
	})
	if err != nil {
		if sh.ctx.Err() == nil {
			sh.rt.log.Error("load coordinator partition; it stays unavailable", "partition", sh.p, "err", err)
		}
		if done != nil {
			done(nil, fmt.Errorf("%w: load partition %d: %v", ErrNotAvailable, sh.p, err))
		}
		return
	}
	sh.lastWritten = sh.log.EndOffset() - 1
	sh.rt.log.Info("loaded coordinator partition", "partition", sh.p, "epoch", sh.epoch, "end_offset", sh.lastWritten+1, "took", time.Since(start))
	sh.mu.Lock()
	sh.loaded = true
	sh.mu.Unlock()
	if loaded != nil {
		sh.exec(task[S]{loaded, done})
	}
	for {
		select {
		case <-sh.ctx.Done():
			return
		case <-sh.wake:
		}
		for {
			sh.mu.Lock()
			if len(sh.queue) == 0 || sh.stopped {
				sh.mu.Unlock()
				break
			}
			t := sh.queue[0]
			sh.queue = sh.queue[1:]
			sh.mu.Unlock()
			sh.exec(t)
		}
	}
}

// exec runs one operation: write, replay, and queue its answer behind
// everything written so far.
func (sh *shard[S]) exec(t task[S]) {
	res := t.op(sh.sm)
	if len(res.Records) > 0 {
		if err := sh.write(res); err != nil {
			res = Result{Err: err}
		}
	}
	if t.done == nil && res.AfterDurable == nil {
		return
	}
	sh.cmu.Lock()
	sh.pending = append(sh.pending, completion{offset: sh.lastWritten, value: res.Value, err: res.Err, done: t.done, after: res.AfterDurable})
	sh.cmu.Unlock()
	select {
	case sh.cwake <- struct{}{}:
	default:
	}
}

func (sh *shard[S]) write(res Result) error {
	opts := record.NewBatchOptions(record.CodecNone)
	if res.Batch != nil {
		opts = *res.Batch
	}
	rs := make([]record.Record, len(res.Records))
	for i, r := range res.Records {
		rs[i] = record.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
	}
	batch, err := record.Build(nil, opts, sh.rt.opts.Now().UnixMilli(), rs)
	if err != nil {
		return fmt.Errorf("build coordinator batch: %w", err)
	}
	last, err := sh.log.Append(batch)
	if err != nil {
		sh.rt.log.Warn("append to coordinator partition", "partition", sh.p, "err", err)
		if errors.Is(err, ErrNotCoordinator) {
			return fmt.Errorf("append to partition %d: %w", sh.p, err)
		}
		// Still the leader, but the append was refused (fewer in-sync
		// replicas than min.insync.replicas): retriable, as Kafka maps
		// NOT_ENOUGH_REPLICAS to COORDINATOR_NOT_AVAILABLE. Answering
		// NOT_COORDINATOR would tell callers that another node owns the
		// partition, and they would stop retrying (the marker sender
		// dropped the Complete record of a transaction that way).
		return fmt.Errorf("%w: append to partition %d: %v", ErrNotAvailable, sh.p, err)
	}
	sh.lastWritten = last
	if err := sh.sm.Replay(batch); err != nil {
		// The state machine refused its own record: a bug. The log has
		// it, so the next load will meet it too; say so loudly.
		sh.rt.log.Error("replay of an own coordinator record failed", "partition", sh.p, "offset", last, "err", err)
		return fmt.Errorf("%w: replay own record: %v", ErrNotAvailable, err)
	}
	return nil
}

// completions answers operations in order, each once the high watermark
// has passed the records written up to it.
func (sh *shard[S]) completions() {
	for {
		sh.cmu.Lock()
		if len(sh.pending) == 0 {
			sh.cmu.Unlock()
			select {
			case <-sh.exited:
				// Answer what arrived before the goroutine stopped.
				sh.cmu.Lock()
				rest := sh.pending
				sh.pending = nil
				sh.cmu.Unlock()
				for _, c := range rest {
					c.answer(nil, ErrNotCoordinator)
				}
				return
			case <-sh.cwake:
			}
			continue
		}
		c := sh.pending[0]
		sh.pending = sh.pending[1:]
		sh.cmu.Unlock()
		if c.offset >= 0 {
			ctx, cancel := context.WithTimeout(sh.ctx, sh.rt.opts.WriteTimeout)
			err := sh.log.WaitDurable(ctx, c.offset)
			cancel()
			if err != nil {
				if sh.ctx.Err() != nil || errors.Is(err, ErrNotCoordinator) {
					err = ErrNotCoordinator
				} else {
					sh.rt.log.Warn("coordinator write not durable in time", "partition", sh.p, "offset", c.offset, "err", err)
					err = fmt.Errorf("%w: %v", ErrNotAvailable, err)
					if c.after != nil {
						// The state already holds the records: if they
						// become durable later (the ISR shrank, say),
						// their side effects must still run.
						go sh.lateDurable(c.offset, c.after)
					}
				}
				c.answer(nil, err)
				continue
			}
		}
		if c.after != nil {
			c.after()
		}
		c.answer(c.value, c.err)
	}
}

// lateDurable runs after once offset is durable, unless the shard stops
// (or the leadership goes) first. A log that fails the wait at once
// without losing the leadership (its ISR is below min.insync.replicas:
// NOT_ENOUGH_REPLICAS_AFTER_APPEND) is asked again after RetryBackoff, for
// as long as the shard runs: giving up there lost the markers of the
// transactions a new coordinator found prepared at load, so their
// partitions never got them (the chaos harness's hanging transaction,
// RELIABILITY.md "Findings").
func (sh *shard[S]) lateDurable(offset int64, after func()) {
	for {
		err := sh.log.WaitDurable(sh.ctx, offset)
		if err == nil {
			break
		}
		if sh.ctx.Err() != nil || errors.Is(err, ErrNotCoordinator) {
			return
		}
		t := time.NewTimer(sh.rt.opts.RetryBackoff)
		select {
		case <-sh.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	sh.rt.log.Info("coordinator write durable after its answer timed out; running its effects", "partition", sh.p, "offset", offset)
	after()
}

func (c completion) answer(v any, err error) {
	if c.done != nil {
		c.done(v, err)
	}
}

// PartitionFor is the partition of key among n, as Kafka places groups and
// transactional ids: abs(Java String.hashCode(key)) % n.
func PartitionFor(key string, n int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(key)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}
