package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/stratalog/strata/internal/record"
)

// Domain errors; internal/broker maps them to Kafka error codes.
var (
	ErrNotCoordinator       = errors.New("not the coordinator for this group")
	ErrLoadInProgress       = errors.New("group coordinator partition is loading")
	ErrInvalidGroupID       = errors.New("invalid group id")
	ErrUnknownMember        = errors.New("unknown member id")
	ErrMemberIDRequired     = errors.New("member id required")
	ErrIllegalGeneration    = errors.New("illegal generation")
	ErrRebalanceInProgress  = errors.New("rebalance in progress")
	ErrInconsistentProtocol = errors.New("inconsistent group protocol")
	ErrInvalidSessionTimout = errors.New("invalid session timeout")
	ErrFencedInstanceID     = errors.New("fenced instance id")
	ErrMetadataTooLarge     = errors.New("offset metadata too large")
	ErrGroupNotFound        = errors.New("group id not found")
	ErrNonEmptyGroup        = errors.New("group is not empty")
	ErrSubscribedToTopic    = errors.New("group is subscribed to the topic")
	ErrInvalidRequest       = errors.New("invalid request")
	ErrCoordinatorNotAvail  = errors.New("coordinator not available")
	ErrGroupMaxSize         = errors.New("group reached its maximum size")
	// ErrLogStorage is what a Log's Append wraps when the partition's
	// storage failed (a full disk, a failed fsync): the partition logged
	// it already, and the request answers NOT_COORDINATOR, as Kafka's
	// coordinators turn KAFKA_STORAGE_ERROR into, so that the client
	// retries.
	ErrLogStorage = errors.New("__consumer_offsets partition storage failed")
)

// Log is one __consumer_offsets partition as the coordinator sees it.
type Log interface {
	// Append writes a record batch and returns once it is durable as the
	// broker's fsync policy requires; a storage failure wraps
	// ErrLogStorage.
	Append(batch []byte) error
	// ForEachBatch calls fn for every batch of the log, in order.
	ForEachBatch(fn func(batch []byte) error) error
}

// Options configure a Coordinator. Zero durations take Kafka's defaults
// (except InitialRebalanceDelay, where zero means none).
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// NumPartitions is the partition count of __consumer_offsets.
	NumPartitions int32
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms.
	InitialRebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts
	// members may ask for (group.min/max.session.timeout.ms).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// MaxMetadataBytes is offset.metadata.max.bytes (4096).
	MaxMetadataBytes int
	// MaxMemberMetadataBytes bounds one member's protocol metadata in a
	// JoinGroup (summed over its protocols); more is ErrInvalidRequest.
	MaxMemberMetadataBytes int
	// MaxGroupSize is group.max.size (0: unbounded).
	MaxGroupSize int
	// OffsetsRetention is offsets.retention.minutes: committed offsets of
	// an empty group expire this long after the group became empty (or,
	// for groups without members ever, after the commit). <= 0 disables.
	OffsetsRetention time.Duration
}

// DefaultMaxMemberMetadataBytes is the default MaxMemberMetadataBytes, 1 MiB.
const DefaultMaxMemberMetadataBytes = 1 << 20

// Coordinator owns the groups of the __consumer_offsets partitions it has
// loaded.
//
// Locking: each loaded partition has its own mutex over its groups, so a
// partition whose appends wait (a follower that stopped fetching holds
// back its high watermark) stalls only the groups placed on it, never the
// others (DESIGN.md 7.4). c.mu guards only the map of partitions and is
// never held while a partition's mutex is taken or an append runs; no
// code holds two partitions' mutexes at once.
type Coordinator struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	parts map[int32]*partition
}

// partition is one loaded __consumer_offsets partition and its groups.
type partition struct {
	id  int32
	log Log

	tickPending atomic.Bool // a Tick waits for mu in a goroutine

	mu       sync.Mutex // guards everything below and the groups' state
	loading  bool
	unloaded bool // Unload or a reload replaced it; requests answer ErrNotCoordinator
	groups   map[string]*group
	// txnSeqs are the next sequence numbers of the transactional batches
	// this coordinator writes for producers (TxnOffsetCommit): the
	// partition's producer state checks them as any producer's, so each
	// write continues where the last one of the same producer and epoch
	// ended.
	txnSeqs map[txnSeqKey]txnSeq
	// early are the transaction markers that became durable while the
	// partition was loading, for Load to apply past its replay.
	early []txnMarker
}

func newPartition(p int32, log Log) *partition {
	return &partition{id: p, log: log, loading: true, groups: map[string]*group{}, txnSeqs: map[txnSeqKey]txnSeq{}}
}

// New returns a coordinator owning no partitions yet.
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
	if opts.MinSessionTimeout <= 0 {
		opts.MinSessionTimeout = 6 * time.Second
	}
	if opts.MaxSessionTimeout <= 0 {
		opts.MaxSessionTimeout = 30 * time.Minute
	}
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = 4096
	}
	if opts.MaxMemberMetadataBytes <= 0 {
		opts.MaxMemberMetadataBytes = DefaultMaxMemberMetadataBytes
	}
	return &Coordinator{
		opts:  opts,
		log:   opts.Logger.With("component", "group-coordinator"),
		parts: map[int32]*partition{},
	}
}

// PartitionFor is the __consumer_offsets partition of a group, as Kafka
// places it: abs(Java String.hashCode(groupID)) % numPartitions.
func PartitionFor(groupID string, numPartitions int32) int32 {
	var h int32
	for _, u := range utf16.Encode([]rune(groupID)) {
		h = 31*h + int32(u)
	}
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % numPartitions
}

// PartitionFor is the __consumer_offsets partition of a group.
func (c *Coordinator) PartitionFor(groupID string) int32 {
	return PartitionFor(groupID, c.opts.NumPartitions)
}

// BeginLoad takes ownership of a partition: until Load finishes, requests
// for its groups get ErrLoadInProgress instead of ErrNotCoordinator.
func (c *Coordinator) BeginLoad(p int32, log Log) {
	c.mu.Lock()
	old := c.parts[p]
	c.parts[p] = newPartition(p, log)
	c.mu.Unlock()
	c.retire(old)
}

// Load takes ownership of a partition (if BeginLoad did not already) and
// rebuilds its groups by replaying log.
func (c *Coordinator) Load(p int32, log Log) error {
	c.mu.Lock()
	part, old := c.parts[p], (*partition)(nil)
	if part == nil || part.log != log {
		old, part = part, newPartition(p, log)
		c.parts[p] = part
	}
	c.mu.Unlock()
	c.retire(old)
	groups := map[string]*group{}
	now := c.opts.Now()
	seqs := map[txnSeqKey]txnSeq{}
	replayed := int64(-1) // the last offset the replay read
	err := log.ForEachBatch(func(batch []byte) error {
		if h, err := record.ParseHeader(batch); err == nil {
			replayed = h.LastOffset()
		}
		noteTxnSeq(seqs, p, batch)
		return applyBatch(groups, p, batch, now)
	})
	if err != nil {
		c.mu.Lock()
		if c.parts[p] == part {
			delete(c.parts, p)
		}
		c.mu.Unlock()
		c.retire(part)
		return fmt.Errorf("load __consumer_offsets-%d: %w", p, err)
	}
	part.mu.Lock()
	defer part.mu.Unlock()
	if part.unloaded {
		return nil // unloaded meanwhile
	}
	now = c.opts.Now()
	for id, g := range groups {
		g.loaded(now)
		part.groups[id] = g
	}
	for k, v := range seqs {
		part.txnSeqs[k] = v
	}
	for _, m := range part.early {
		if m.offset > replayed {
			part.applyMarker(m.pid, m.commit)
		}
	}
	part.early = nil
	part.loading = false
	c.log.Debug("loaded group partition", "partition", p, "groups", len(groups))
	return nil
}

// Unload gives up a partition: its groups are dropped and their waiting
// requests answered with ErrNotCoordinator.
func (c *Coordinator) Unload(p int32) {
	c.mu.Lock()
	part := c.parts[p]
	delete(c.parts, p)
	c.mu.Unlock()
	c.retire(part)
}

// retire marks a partition no longer ours and answers its groups' waiting
// requests with ErrNotCoordinator. part may be nil.
func (c *Coordinator) retire(part *partition) {
	if part == nil {
		return
	}
	var fx effects
	part.mu.Lock()
	part.unloaded = true
	for _, g := range part.groups {
		g.failWaiters(&fx, ErrNotCoordinator)
	}
	part.groups = map[string]*group{}
	part.txnSeqs = map[txnSeqKey]txnSeq{}
	part.mu.Unlock()
	fx.run()
}

// partitions is a snapshot of the loaded partitions.
func (c *Coordinator) partitions() []*partition {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*partition, 0, len(c.parts))
	for _, p := range c.parts {
		out = append(out, p)
	}
	return out
}

// Run calls Tick every interval until ctx ends.
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

// Tick fires every timeout due at Options.Now: expired sessions, rebalance
// and initial-delay deadlines, sync deadlines, offsets retention. Each
// partition is ticked under its own lock. A partition busy with a write
// (whose append waits for replication) is ticked by a goroutine of its
// own once the write is done, so that it holds up no other partition.
func (c *Coordinator) Tick() {
	for _, part := range c.partitions() {
		if part.mu.TryLock() {
			c.tickLocked(part)
			continue
		}
		if part.tickPending.CompareAndSwap(false, true) {
			go func() {
				part.mu.Lock()
				part.tickPending.Store(false)
				c.tickLocked(part)
			}()
		}
	}
}

// tickLocked ticks a partition whose mutex the caller holds, and unlocks it.
func (c *Coordinator) tickLocked(part *partition) {
	var fx effects
	if !part.loading && !part.unloaded {
		now := c.opts.Now()
		for id, g := range part.groups {
			c.tickGroup(&fx, part, g, now)
			if g.state == StateDead {
				delete(part.groups, id)
			}
		}
	}
	part.mu.Unlock()
	fx.run()
}

// Close answers every waiting request with ErrNotCoordinator.
func (c *Coordinator) Close() {
	c.mu.Lock()
	parts := c.parts
	c.parts = map[int32]*partition{}
	c.mu.Unlock()
	for _, part := range parts {
		c.retire(part)
	}
}

// effects collects callbacks to run once the lock is released.
type effects struct{ calls []func() }

func (fx *effects) add(f func()) { fx.calls = append(fx.calls, f) }

func (fx *effects) run() {
	for _, f := range fx.calls {
		f()
	}
}

// enter checks that the coordinator owns groupID's partition and returns
// the group (nil if it does not exist) with the partition's mutex held:
// the caller unlocks part.mu. On error nothing is held.
func (c *Coordinator) enter(groupID string) (*group, *partition, error) {
	if groupID == "" {
		return nil, nil, ErrInvalidGroupID
	}
	p := c.PartitionFor(groupID)
	c.mu.Lock()
	part := c.parts[p]
	c.mu.Unlock()
	if part == nil {
		return nil, nil, ErrNotCoordinator
	}
	part.mu.Lock()
	switch {
	case part.unloaded:
		part.mu.Unlock()
		return nil, nil, ErrNotCoordinator
	case part.loading:
		part.mu.Unlock()
		return nil, nil, ErrLoadInProgress
	}
	return part.groups[groupID], part, nil
}

// newGroup creates an empty group. Callers hold part.mu.
func (c *Coordinator) newGroup(part *partition, id string) *group {
	g := newGroup(id, part.id, c.opts.Now())
	part.groups[id] = g
	return g
}

// write appends records to the group's partition and applies them to
// memory with the replay code. Callers hold part.mu.
func (c *Coordinator) write(part *partition, g *group, recs []kv) error {
	return c.writeTxn(part, g, recs, -1, -1)
}

// writeTxn is write, as a transactional batch of producer pid (at epoch)
// when pid >= 0: the offsets stay pending until the transaction's marker.
func (c *Coordinator) writeTxn(part *partition, g *group, recs []kv, pid int64, epoch int16) error {
	if len(recs) == 0 {
		return nil
	}
	now := c.opts.Now()
	k := txnSeqKey{g.partition, pid}
	seq := int32(0)
	if cur, ok := part.txnSeqs[k]; ok && cur.epoch == epoch {
		seq = cur.next
	}
	batch, err := buildBatch(recs, now.UnixMilli(), pid, epoch, seq)
	if err != nil {
		return err
	}
	if err := part.log.Append(batch); err != nil {
		if errors.Is(err, ErrLogStorage) {
			c.log.Debug("append to __consumer_offsets", "partition", g.partition, "group", g.id, "err", err)
			return fmt.Errorf("%w: append: %v", ErrNotCoordinator, err)
		}
		c.log.Error("append to __consumer_offsets", "partition", g.partition, "group", g.id, "err", err)
		return fmt.Errorf("%w: append: %v", ErrCoordinatorNotAvail, err)
	}
	if pid >= 0 {
		part.txnSeqs[k] = txnSeq{epoch, seq + int32(len(recs))}
	}
	groups := map[string]*group{g.id: g}
	for _, r := range recs {
		if err := applyRecord(groups, g.partition, r.key, r.value, now.UnixMilli(), now, pid); err != nil {
			return fmt.Errorf("apply own record: %w", err)
		}
	}
	if groups[g.id] == nil {
		g.state = StateDead
		delete(part.groups, g.id)
	}
	return nil
}

// NumPartitions is the partition count of __consumer_offsets the
// coordinator places groups by.
func (c *Coordinator) NumPartitions() int32 { return c.opts.NumPartitions }
