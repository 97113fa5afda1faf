package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf16"
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
type Coordinator struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	parts map[int32]*partition
	// txnSeqs are the next sequence numbers of the transactional batches
	// this coordinator writes for producers (TxnOffsetCommit), per
	// partition: the partition's producer state checks them as any
	// producer's, so each write continues where the last one of the same
	// producer and epoch ended.
	txnSeqs map[txnSeqKey]txnSeq
	groups  map[string]*group
}

type partition struct {
	log     Log
	loading bool
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
		opts:    opts,
		log:     opts.Logger.With("component", "group-coordinator"),
		parts:   map[int32]*partition{},
		groups:  map[string]*group{},
		txnSeqs: map[txnSeqKey]txnSeq{},
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
	c.parts[p] = &partition{log: log, loading: true}
	c.mu.Unlock()
}

// Load takes ownership of a partition (if BeginLoad did not already) and
// rebuilds its groups by replaying log.
func (c *Coordinator) Load(p int32, log Log) error {
	c.mu.Lock()
	if cur := c.parts[p]; cur == nil || cur.log != log {
		c.parts[p] = &partition{log: log, loading: true}
	}
	c.mu.Unlock()
	groups := map[string]*group{}
	now := c.opts.Now()
	seqs := map[txnSeqKey]txnSeq{}
	err := log.ForEachBatch(func(batch []byte) error {
		noteTxnSeq(seqs, p, batch)
		return applyBatch(groups, p, batch, now)
	})
	if err != nil {
		c.mu.Lock()
		delete(c.parts, p)
		c.mu.Unlock()
		return fmt.Errorf("load __consumer_offsets-%d: %w", p, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.parts[p]; cur == nil || cur.log != log {
		return nil // unloaded meanwhile
	}
	now = c.opts.Now()
	for id, g := range groups {
		g.loaded(now)
		c.groups[id] = g
	}
	for k, v := range seqs {
		c.txnSeqs[k] = v
	}
	c.parts[p].loading = false
	c.log.Debug("loaded group partition", "partition", p, "groups", len(groups))
	return nil
}

// Unload gives up a partition: its groups are dropped and their waiting
// requests answered with ErrNotCoordinator.
func (c *Coordinator) Unload(p int32) {
	var fx effects
	c.mu.Lock()
	delete(c.parts, p)
	for k := range c.txnSeqs {
		if k.partition == p {
			delete(c.txnSeqs, k)
		}
	}
	for id, g := range c.groups {
		if g.partition == p {
			g.failWaiters(&fx, ErrNotCoordinator)
			delete(c.groups, id)
		}
	}
	c.mu.Unlock()
	fx.run()
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
// and initial-delay deadlines, sync deadlines, offsets retention.
func (c *Coordinator) Tick() {
	var fx effects
	c.mu.Lock()
	now := c.opts.Now()
	for id, g := range c.groups {
		c.tickGroup(&fx, g, now)
		if g.state == StateDead {
			delete(c.groups, id)
		}
	}
	c.mu.Unlock()
	fx.run()
}

// Close answers every waiting request with ErrNotCoordinator.
func (c *Coordinator) Close() {
	var fx effects
	c.mu.Lock()
	for _, g := range c.groups {
		g.failWaiters(&fx, ErrNotCoordinator)
	}
	c.parts = map[int32]*partition{}
	c.groups = map[string]*group{}
	c.mu.Unlock()
	fx.run()
}

// effects collects callbacks to run once the lock is released.
type effects struct{ calls []func() }

func (fx *effects) add(f func()) { fx.calls = append(fx.calls, f) }

func (fx *effects) run() {
	for _, f := range fx.calls {
		f()
	}
}

// lookup checks that the coordinator owns groupID's partition and returns
// the group (nil if it does not exist). Callers hold c.mu.
func (c *Coordinator) lookup(groupID string) (*group, *partition, error) {
	if groupID == "" {
		return nil, nil, ErrInvalidGroupID
	}
	p := c.PartitionFor(groupID)
	part := c.parts[p]
	switch {
	case part == nil:
		return nil, nil, ErrNotCoordinator
	case part.loading:
		return nil, nil, ErrLoadInProgress
	}
	return c.groups[groupID], part, nil
}

// newGroup creates an empty group. Callers hold c.mu.
func (c *Coordinator) newGroup(id string) *group {
	g := newGroup(id, c.PartitionFor(id), c.opts.Now())
	c.groups[id] = g
	return g
}

// write appends records to the group's partition and applies them to
// memory with the replay code. Callers hold c.mu.
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
	if cur, ok := c.txnSeqs[k]; ok && cur.epoch == epoch {
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
		c.txnSeqs[k] = txnSeq{epoch, seq + int32(len(recs))}
	}
	groups := map[string]*group{g.id: g}
	for _, r := range recs {
		if err := applyRecord(groups, g.partition, r.key, r.value, now.UnixMilli(), now, pid); err != nil {
			return fmt.Errorf("apply own record: %w", err)
		}
	}
	if groups[g.id] == nil {
		g.state = StateDead
		delete(c.groups, g.id)
	}
	return nil
}

// NumPartitions is the partition count of __consumer_offsets the
// coordinator places groups by.
func (c *Coordinator) NumPartitions() int32 { return c.opts.NumPartitions }
