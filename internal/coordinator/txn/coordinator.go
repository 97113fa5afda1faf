package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/coordinator/runtime"
)

// Domain errors; internal/broker maps them to Kafka error codes.
var (
	ErrNotCoordinator          = runtime.ErrNotCoordinator
	ErrLoadInProgress          = runtime.ErrLoading
	ErrCoordinatorNotAvailable = runtime.ErrNotAvailable
	ErrInvalidRequest          = errors.New("invalid transaction request")
	ErrInvalidTimeout          = errors.New("invalid transaction timeout")
	ErrConcurrentTransactions  = errors.New("a transaction of this id is being completed")
	ErrProducerFenced          = errors.New("producer fenced by a newer epoch")
	ErrInvalidProducerIDMap    = errors.New("producer id does not match the transactional id")
	ErrInvalidTxnState         = errors.New("invalid transaction state for the request")
	ErrTransactionalIDNotFound = errors.New("transactional id not found")
	ErrTransactionAbortable    = errors.New("partition not in the transaction")
	// ErrPartitionGone is what a MarkerChannel reports for a partition
	// whose topic no longer exists: it needs no marker.
	ErrPartitionGone = errors.New("partition no longer exists")
	// ErrMarkerFenced is what a MarkerChannel reports when the partition
	// refused the marker for a newer coordinator epoch
	// (TRANSACTION_COORDINATOR_FENCED): this coordinator is stale and
	// stops sending it.
	ErrMarkerFenced = errors.New("marker fenced")
	// ErrMarkerStaleEpoch is what a MarkerChannel reports when the
	// partition refused the marker's producer epoch
	// (INVALID_PRODUCER_EPOCH). Before transaction version 2 it stops the
	// job, as in Kafka. From version 2 it is retried: the marker is
	// written only once a partition acknowledges it (durably), and a
	// partition acknowledges a resend of the marker it holds (KIP-890
	// part 2), so this answer can no longer mean "written already".
	ErrMarkerStaleEpoch = errors.New("marker refused for its producer epoch")
)

// errNeedProducerID asks the caller to allocate a producer id and retry.
var errNeedProducerID = errors.New("a new producer id is needed")

// Options configure a Coordinator. Zero values take Kafka's defaults.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// NumPartitions is transaction.state.log.num.partitions (50).
	NumPartitions int32
	// MaxTimeout is transaction.max.timeout.ms (15 minutes).
	MaxTimeout time.Duration
	// IDExpiration is transactional.id.expiration.ms (7 days).
	IDExpiration time.Duration
	// WriteTimeout bounds the wait for a record to become durable.
	WriteTimeout time.Duration
	// AllocateProducerID hands out a fresh producer id.
	AllocateProducerID func() (int64, error)
	// Markers writes commit and abort markers on partitions.
	Markers MarkerChannel
	// MarkerBackoff is the pause before markers that failed are resent
	// (Kafka retries at its request backoff, 100 ms).
	MarkerBackoff time.Duration
}

// Coordinator is the transaction coordinator of the __transaction_state
// partitions this node leads.
type Coordinator struct {
	opts   Options
	log    *slog.Logger
	rt     *runtime.Runtime[*shard]
	sender *markerSender
}

// shard is the state of one __transaction_state partition.
type shard struct {
	c     *Coordinator
	p     int32
	epoch int32
	txns  map[string]*txn
	// memos is set by an operation for the records it returns, and
	// consumed by their replay (see replay).
	memos map[string]memo
}

// Replay implements runtime.StateMachine.
func (s *shard) Replay(batch []byte) error {
	err := replay(s.txns, s.memos, batch)
	clear(s.memos)
	return err
}

// New returns a coordinator owning no partitions yet. Start runs its
// marker sender.
func New(opts Options) *Coordinator {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NumPartitions <= 0 {
		opts.NumPartitions = 50
	}
	if opts.MaxTimeout <= 0 {
		opts.MaxTimeout = 15 * time.Minute
	}
	if opts.IDExpiration <= 0 {
		opts.IDExpiration = 7 * 24 * time.Hour
	}
	if opts.MarkerBackoff <= 0 {
		opts.MarkerBackoff = 100 * time.Millisecond
	}
	c := &Coordinator{opts: opts, log: opts.Logger.With("component", "txn-coordinator")}
	c.rt = runtime.New[*shard](runtime.Options{Logger: opts.Logger, Now: opts.Now, WriteTimeout: opts.WriteTimeout, Name: "__transaction_state"})
	c.sender = newMarkerSender(c)
	return c
}

// Start runs the marker sender until ctx ends.
func (c *Coordinator) Start(ctx context.Context) {
	go c.sender.run(ctx)
}

// NumPartitions is the partition count of __transaction_state.
func (c *Coordinator) NumPartitions() int32 { return c.opts.NumPartitions }

// PartitionFor is the __transaction_state partition of a transactional id.
func (c *Coordinator) PartitionFor(id string) int32 {
	return runtime.PartitionFor(id, c.opts.NumPartitions)
}

// Load takes the leadership of partition p in leader epoch epoch (the
// coordinator epoch markers carry): its state is replayed from log, and
// the markers of every prepared transaction are (re)sent.
func (c *Coordinator) Load(p, epoch int32, log runtime.Log) {
	c.sender.drop(p)
	s := &shard{c: c, p: p, epoch: epoch, txns: map[string]*txn{}, memos: map[string]memo{}}
	c.rt.Load(p, epoch, log, s, s.resume, nil)
}

// Unload gives up partition p: its requests are answered NOT_COORDINATOR
// and its markers are no longer sent (the new leader resends them).
func (c *Coordinator) Unload(p int32) {
	c.rt.Unload(p)
	c.sender.drop(p)
}

// Close unloads every partition.
func (c *Coordinator) Close() {
	for _, p := range c.rt.Partitions() {
		c.Unload(p)
	}
}

// resume restarts the markers of the transactions found prepared at load.
func (s *shard) resume(*shard) runtime.Result {
	var jobs []markerJob
	for _, t := range s.txns {
		if t.prepared() {
			jobs = append(jobs, s.job(t))
		}
	}
	if len(jobs) == 0 {
		return runtime.Result{}
	}
	s.c.log.Info("resending markers of prepared transactions", "partition", s.p, "transactions", len(jobs))
	return runtime.Result{AfterDurable: func() { s.c.sender.add(jobs...) }}
}

func (s *shard) now() int64 { return s.c.opts.Now().UnixMilli() }

// write returns the result that writes t (with last epoch lastEpoch) and
// answers v, err.
func (s *shard) write(t *txn, v any, err error) runtime.Result {
	s.memos[t.id] = memo{t.lastEpoch, t.prevProducerID}
	return runtime.Result{Records: []runtime.Record{txnRecord(t)}, Value: v, Err: err}
}

// submit runs op on id's shard; an op that needs a producer id gets one
// allocated outside the shard and runs again.
func (c *Coordinator) submit(id string, op func(s *shard, newPID int64) runtime.Result, done runtime.Done) {
	p := c.PartitionFor(id)
	var attempt func(newPID int64)
	attempt = func(newPID int64) {
		c.rt.Submit(p, func(s *shard) runtime.Result { return op(s, newPID) }, func(v any, err error) {
			if errors.Is(err, errNeedProducerID) && newPID < 0 {
				// The allocation may ask the controller: not on the
				// shard's answering goroutine.
				go func() {
					pid, aerr := c.opts.AllocateProducerID()
					if aerr != nil {
						c.log.Error("allocate a producer id", "transactional_id", id, "err", aerr)
						done(nil, fmt.Errorf("%w: allocate a producer id: %v", ErrCoordinatorNotAvailable, aerr))
						return
					}
					attempt(pid)
				}()
				return
			}
			done(v, err)
		})
	}
	attempt(-1)
}

// ProducerIDAndEpoch is a producer's id and epoch.
type ProducerIDAndEpoch struct {
	ProducerID int64
	Epoch      int16
}

// InitProducerID is InitProducerId for a transactional id. expected is the
// producer's current id and epoch (v3+, KIP-360), nil for a new producer.
// tv is the client's transaction version (2 for KIP-890 part 2 clients).
func (c *Coordinator) InitProducerID(id string, timeoutMs int32, expected *ProducerIDAndEpoch, done func(ProducerIDAndEpoch, error)) {
	fail := func(err error) { done(ProducerIDAndEpoch{NoProducerID, NoProducerEpoch}, err) }
	switch {
	case id == "":
		fail(fmt.Errorf("%w: empty transactional id", ErrInvalidRequest))
		return
	case timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.opts.MaxTimeout:
		fail(fmt.Errorf("%w: %d ms (transaction.max.timeout.ms is %d)", ErrInvalidTimeout, timeoutMs, c.opts.MaxTimeout.Milliseconds()))
		return
	}
	c.submit(id, func(s *shard, newPID int64) runtime.Result {
		return s.initProducerID(id, timeoutMs, expected, newPID)
	}, func(v any, err error) {
		if err != nil {
			fail(err)
			return
		}
		done(v.(ProducerIDAndEpoch), nil)
	})
}

// AddPartitions adds partitions to id's transaction (AddPartitionsToTxn,
// AddOffsetsToTxn). tv is the client's transaction version.
func (c *Coordinator) AddPartitions(id string, pid int64, epoch int16, parts []TopicPartition, tv int16, done func(error)) {
	if id == "" {
		done(fmt.Errorf("%w: empty transactional id", ErrInvalidRequest))
		return
	}
	c.submit(id, func(s *shard, _ int64) runtime.Result {
		return s.addPartitions(id, pid, epoch, parts, tv)
	}, func(_ any, err error) { done(err) })
}

// VerifyPartitions answers, per partition, whether it is in id's ongoing
// transaction of producer pid at epoch (KIP-890 part 1, AddPartitionsToTxn
// VerifyOnly): nil, or ErrTransactionAbortable when it is not. A
// transaction-wide error fails every partition.
func (c *Coordinator) VerifyPartitions(id string, pid int64, epoch int16, parts []TopicPartition, done func([]error, error)) {
	if id == "" {
		done(nil, fmt.Errorf("%w: empty transactional id", ErrInvalidRequest))
		return
	}
	c.submit(id, func(s *shard, _ int64) runtime.Result {
		return s.verify(id, pid, epoch, parts)
	}, func(v any, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		done(v.([]error), nil)
	})
}

// EndTxn commits or aborts id's transaction. tv is the client's transaction
// version: 2 (EndTxn v5) bumps the epoch and answers the producer id and
// epoch to use next (KIP-890 part 2).
func (c *Coordinator) EndTxn(id string, pid int64, epoch int16, commit bool, tv int16, done func(ProducerIDAndEpoch, error)) {
	fail := func(err error) { done(ProducerIDAndEpoch{NoProducerID, NoProducerEpoch}, err) }
	if id == "" {
		fail(fmt.Errorf("%w: empty transactional id", ErrInvalidRequest))
		return
	}
	c.submit(id, func(s *shard, newPID int64) runtime.Result {
		if tv >= 2 {
			return s.endTxnV2(id, pid, epoch, commit, newPID)
		}
		return s.endTxnV1(id, pid, epoch, commit)
	}, func(v any, err error) {
		if err != nil {
			fail(err)
			return
		}
		done(v.(ProducerIDAndEpoch), nil)
	})
}

// Description is one transaction as DescribeTransactions reports it.
type Description struct {
	TransactionalID string
	Err             error
	State           State
	TimeoutMs       int32
	StartMs         int64
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
}

// Describe describes transactional ids (each answered on its own shard).
func (c *Coordinator) Describe(ids []string) []Description {
	out := make([]Description, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		out[i].TransactionalID = id
		if id == "" {
			out[i].Err = fmt.Errorf("%w: empty transactional id", ErrInvalidRequest)
			continue
		}
		wg.Add(1)
		c.rt.Submit(c.PartitionFor(id), func(s *shard) runtime.Result {
			t := s.txns[id]
			if t == nil {
				return runtime.Result{Err: fmt.Errorf("%w: %q", ErrTransactionalIDNotFound, id)}
			}
			return runtime.Result{Value: Description{TransactionalID: id, State: t.state, TimeoutMs: t.timeoutMs, StartMs: t.startMs,
				ProducerID: t.producerID, ProducerEpoch: t.epoch, Partitions: t.sortedPartitions()}}
		}, func(v any, err error) {
			defer wg.Done()
			if err != nil {
				out[i].Err = err
				return
			}
			out[i] = v.(Description)
		})
	}
	wg.Wait()
	return out
}

// Listed is one transaction as ListTransactions reports it.
type Listed struct {
	TransactionalID string
	ProducerID      int64
	State           State
}

// ListFilter selects transactions: by state and producer id (empty: any),
// running for longer than MinDuration (0: any; KIP-994).
type ListFilter struct {
	States      []State
	ProducerIDs []int64
	MinDuration time.Duration
}

// List lists the transactions of every loaded partition. It fails with
// ErrLoadInProgress while a partition is loading, as Kafka does.
func (c *Coordinator) List(f ListFilter) ([]Listed, error) {
	var (
		mu   sync.Mutex
		out  []Listed
		ferr error
		wg   sync.WaitGroup
	)
	now := c.opts.Now().UnixMilli()
	for _, p := range c.rt.Partitions() {
		wg.Add(1)
		c.rt.Submit(p, func(s *shard) runtime.Result {
			var l []Listed
			for _, t := range s.txns {
				if f.match(t, now) {
					l = append(l, Listed{t.id, t.producerID, t.state})
				}
			}
			return runtime.Result{Value: l}
		}, func(v any, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrNotCoordinator):
				// Unloaded meanwhile: no longer ours to list.
			case err != nil:
				ferr = err
			default:
				out = append(out, v.([]Listed)...)
			}
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, ferr
}

func (f ListFilter) match(t *txn, now int64) bool {
	if len(f.States) > 0 {
		ok := false
		for _, s := range f.States {
			ok = ok || s == t.state
		}
		if !ok {
			return false
		}
	}
	if len(f.ProducerIDs) > 0 {
		ok := false
		for _, id := range f.ProducerIDs {
			ok = ok || id == t.producerID
		}
		if !ok {
			return false
		}
	}
	if f.MinDuration > 0 && (t.startMs < 0 || t.completed() || now-t.startMs < f.MinDuration.Milliseconds()) {
		return false
	}
	return true
}

// Tick aborts transactions past their timeout (with an epoch bump that
// fences their producer) and expires transactional ids idle for
// transactional.id.expiration.ms, on every loaded partition. It does not
// wait for the writes.
func (c *Coordinator) Tick() {
	for _, p := range c.rt.Partitions() {
		c.rt.Submit(p, func(s *shard) runtime.Result { return s.expire() }, func(_ any, err error) {
			if err != nil && !errors.Is(err, ErrNotCoordinator) && !errors.Is(err, ErrLoadInProgress) {
				c.log.Warn("abort timed-out transactions", "partition", p, "err", err)
			}
		})
	}
}

// Run calls Tick every interval until ctx ends (Kafka's
// transaction.abort.timed.out.transaction.cleanup.interval.ms).
func (c *Coordinator) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Tick()
		}
	}
}
