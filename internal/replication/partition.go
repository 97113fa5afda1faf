package replication

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/internal/storage"
)

// Partition is one hosted replica of a partition, the leader's or a
// follower's. It owns the partition rules (Kafka's Partition and
// LogValidator): what a produced batch must be, where reads stop (the high
// watermark for consumers, the log end for followers), the leader-epoch
// checks, and, on the leader, the ISR and the high watermark.
//
// The high watermark on the leader is the smallest log end offset in the
// ISR (the leader's own counting only what is durable when the broker
// fsyncs before acknowledging), and it does not move while the ISR is
// smaller than min.insync.replicas (KIP-966). While an ISR change is waiting for the
// controller, the larger of the two ISRs counts (KIP-497's maximal ISR), so
// the high watermark never moves past a replica that may still be in the
// committed ISR.
type Partition struct {
	Topic   string
	TopicID metadata.UUID
	Index   int32

	log    *storage.Log
	env    *env
	logger *slog.Logger

	// roleMu orders leader appends with role changes: an append holds it
	// shared from its leadership check until its batch is in the log, a
	// change of leader or epoch holds it exclusively (Kafka's
	// leaderIsrUpdateLock). Without it an append that checked leadership
	// and read the epoch before a change could land after it: as a
	// leader's batch in a follower's log, or with an epoch older than the
	// batches before it. Taken before mu, never while holding it.
	roleMu sync.RWMutex
	stats  partitionStats // metrics (stats.go)

	// The storage error state (faults.go): ioFailed is set while ioErr,
	// guarded by ioMu, is not nil.
	ioFailed atomic.Bool
	ioMu     sync.Mutex
	ioErr    error
	ioOp     string // what failed (severalOps if more than one kind)

	cfg         atomic.Pointer[config.Topic]
	hw          atomic.Int64
	leaderHW    atomic.Int64 // a follower's last word from the leader on its high watermark
	leaderEpoch atomic.Int32
	leader      atomic.Bool

	// fetchMu serialises what a follower does with fetch responses
	// (append, truncate, reset): one fetcher at a time, even while the
	// partition moves from one leader's fetcher to another's.
	fetchMu sync.Mutex

	mu sync.Mutex // guards everything below
	st state
	// followers is the leader's view of its followers, reset on every
	// leadership change: their log end offsets are unknown (-1) until they
	// fetch in the new epoch.
	followers map[int32]*follower
	// pending is the ISR of an AlterPartition in flight, nil when none;
	// after a refusal no new change is asked before retryAt.
	pending []int32
	retryAt time.Time
	// epochStart is the log end offset when this replica became leader in
	// the current epoch: a follower joins the ISR only once it has reached
	// it (Kafka's rule, so a new ISR member has everything of this epoch).
	epochStart int64
	waitCh     chan struct{}        // closed when the high watermark or log end moves; nil if nobody waits
	watchers   map[*Waiter]struct{} // long-polling fetches (waiter.go), rung with waitCh
}

// state is the partition's metadata as this replica knows it.
type state struct {
	leader         int32
	leaderEpoch    int32
	partitionEpoch int32
	replicas       []int32
	isr            []int32
}

// follower is the leader's record of one follower's progress.
type follower struct {
	leo           int64     // its log end offset, from its last fetch; -1 unknown
	lastFetch     time.Time // when it last fetched
	lastCaughtUp  time.Time // the last time it had everything the leader had
	prevLeaderLEO int64     // the leader's log end offset at its previous fetch
	prevFetch     time.Time
}

// env is what every partition of a Manager shares.
type env struct {
	nodeID      int32
	fsyncAlways bool
	now         func() time.Time
	lagMax      time.Duration
	ctrl        Controller
	logger      *slog.Logger
	// leaderQuota and followerQuota are the broker's replication
	// throttles (KIP-73): what this broker sends to, and fetches as,
	// out-of-sync throttled replicas.
	leaderQuota, followerQuota *quota
	// spawn runs an ISR change's round trip to the controller: go f() in
	// the server; tests queue it to run when the script says.
	spawn func(f func())
	// stats are the broker-wide counters (stats.go).
	stats brokerStats
	// logDir is the log directory's health (logdir.go); nil in tests
	// that do not look at it.
	logDir *LogDir
	// journal is the data dir's shared journal (log.journal.enable); nil
	// when off.
	journal *storage.Journal
}

func newPartition(e *env, topic string, id metadata.UUID, idx int32, log *storage.Log, cfg *config.Topic) *Partition {
	p := &Partition{Topic: topic, TopicID: id, Index: idx, log: log, env: e,
		logger: e.logger.With("partition", TopicPartition{topic, idx}.DirName())}
	p.cfg.Store(cfg)
	e.observeFsync(log)
	hw := log.HighWatermarkCheckpoint()
	if e.fsyncAlways {
		hw = min(hw, log.DurableOffset())
	}
	p.hw.Store(max(hw, log.LogStartOffset()))
	log.OnHighWatermark(p.hw.Load())
	p.leaderHW.Store(-1)
	p.st.leader = -1
	return p
}

// Config is the partition's effective topic configuration.
func (p *Partition) Config() *config.Topic { return p.cfg.Load() }

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// IsLeader reports whether this replica leads the partition.
func (p *Partition) IsLeader() bool { return p.leader.Load() }

// HighWatermark is the offset below which records are visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// LogStartOffset is the first offset of the log.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is the offset the next record will get.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// Size is the size of the log on disk in bytes.
func (p *Partition) Size() int64 { return p.log.Size() }

// OffsetLag is how far this replica's log end is behind the leader's high
// watermark, as the follower last heard it (0 on the leader): what
// DescribeLogDirs reports per replica.
func (p *Partition) OffsetLag() int64 {
	if p.leader.Load() {
		return 0
	}
	return max(0, p.leaderHW.Load()-p.log.LogEndOffset())
}

// ISR returns the in-sync replicas as this replica knows them (the
// committed ISR, from metadata or the controller's answer).
func (p *Partition) ISR() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.st.isr)
}

// sizes returns the numbers of replicas and of in-sync replicas.
func (p *Partition) sizes() (replicas, isr int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.st.replicas), len(p.st.isr)
}

// CheckLeaderEpoch compares a client's current leader epoch with ours
// (KIP-320); -1 skips the check.
func (p *Partition) CheckLeaderEpoch(epoch int32) error {
	if epoch < 0 {
		return nil
	}
	switch ours := p.leaderEpoch.Load(); {
	case epoch < ours:
		return fmt.Errorf("%w: request has leader epoch %d, the partition is at %d", ErrFencedLeaderEpoch, epoch, ours)
	case epoch > ours:
		return fmt.Errorf("%w: request has leader epoch %d, this replica knows %d", ErrUnknownLeaderEpoch, epoch, ours)
	}
	return nil
}

// checkLeader returns ErrNotLeader unless this replica leads, then checks
// the caller's epoch.
func (p *Partition) checkLeader(epoch int32) error {
	if !p.leader.Load() {
		return fmt.Errorf("%w: %s-%d", ErrNotLeader, p.Topic, p.Index)
	}
	return p.CheckLeaderEpoch(epoch)
}

// AppendResult is storage's: offsets the batch got.
type AppendResult = storage.AppendResult

// AppendAsLeader validates a produced batch as Kafka's LogValidator does and
// appends it with the current leader epoch. records must be exactly one
// record batch v2. With acks=all (-1), fewer in-sync replicas than
// min.insync.replicas refuses the batch before it is written.
func (p *Partition) AppendAsLeader(records []byte, acks int16) (AppendResult, error) {
	return p.appendAsLeader(records, acks, false, 0, false)
}

// AppendAsLeaderJournaled is AppendAsLeader for the produce path: with
// the shared journal on (log.journal.enable) the batch is only buffered
// in the journal, and the caller must call SyncJournal before it answers
// (once for all the partitions of a request). Without a journal, and for
// a partition with more than one replica, it is AppendAsLeader: its
// followers fetch the batch at once, and a read that reaches a journaled
// tail writes it to the segment, so the journal would only add a write.
func (p *Partition) AppendAsLeaderJournaled(records []byte, acks int16) (AppendResult, error) {
	return p.appendAsLeader(records, acks, false, 0, true)
}

// SyncJournal writes what the journaled appends buffered (nil without a
// journal).
func (p *Partition) SyncJournal() error {
	if p.env.journal == nil {
		return nil
	}
	if err := p.env.journal.Sync(); err != nil {
		return p.noteLog("journal write", err)
	}
	return nil
}

func (p *Partition) appendAsLeader(records []byte, acks int16, verified bool, guard uint64, journaled bool) (res AppendResult, err error) {
	defer func(size int) { p.countAppend(size, res, err) }(len(records))
	if err := p.checkLeader(-1); err != nil {
		return AppendResult{}, err
	}
	cfg := p.Config()
	records, err = validateProduced(records, cfg, p.env.now)
	if err != nil {
		return AppendResult{}, err
	}
	replicas, isr := p.sizes()
	if acks == -1 && isr < int(cfg.MinInsyncReplicas) {
		return AppendResult{}, fmt.Errorf("%w: %d in-sync replicas, min.insync.replicas is %d", ErrNotEnoughReplicas, isr, cfg.MinInsyncReplicas)
	}
	journaled = journaled && replicas <= 1
	return p.append(records, verified, guard, journaled)
}

// Append appends an already validated batch as the leader (the group
// coordinator writes its own batches this way).
func (p *Partition) Append(batch []byte) (AppendResult, error) {
	return p.append(batch, false, 0, false)
}

func (p *Partition) append(batch []byte, verified bool, guard uint64, journaled bool) (AppendResult, error) {
	res, err := p.leaderAppend(func(epoch int32) (storage.AppendResult, error) {
		switch {
		case verified && journaled:
			return p.log.AppendVerifiedJournaled(batch, epoch, guard)
		case verified:
			return p.log.AppendVerified(batch, epoch, guard)
		case journaled:
			return p.log.AppendJournaled(batch, epoch)
		}
		return p.log.Append(batch, epoch)
	})
	if err != nil {
		return res, p.noteLog("append", err)
	}
	if res.Duplicate {
		return res, nil // the log end did not move
	}
	p.logWritten()
	p.mu.Lock()
	p.maybeAdvanceLocked()
	p.wakeLocked()
	p.mu.Unlock()
	return res, nil
}

// validateProduced applies the produce rules to one batch and returns the
// bytes to append (recompressed when the topic's compression.type asks).
// now is read only if the topic bounds its timestamps (by default it does
// not: a clock read per batch is a few per cent of the CPU at many
// partitions).
func validateProduced(records []byte, cfg *config.Topic, now func() time.Time) ([]byte, error) {
	// Like Kafka, max.message.bytes bounds the whole batch (its default,
	// 1048588, is 1 MiB plus the batch overhead).
	if len(records) > int(cfg.MaxMessageBytes) {
		return nil, fmt.Errorf("%w: batch of %d bytes exceeds max.message.bytes %d", ErrMessageTooLarge, len(records), cfg.MaxMessageBytes)
	}
	n, err := record.PeekSize(records)
	if err != nil {
		if len(records) > 16 && records[16] != 2 {
			return nil, fmt.Errorf("%w: magic %d", record.ErrMagic, records[16])
		}
		return nil, err
	}
	if n < len(records) {
		return nil, fmt.Errorf("%w: a produce request must carry exactly one record batch per partition", record.ErrInvalid)
	}
	if n > len(records) {
		return nil, fmt.Errorf("%w: batch length %d but only %d bytes sent", record.ErrCorrupt, n, len(records))
	}
	h, err := record.Validate(records)
	if err != nil {
		return nil, err
	}
	if h.IsControl() {
		return nil, fmt.Errorf("%w: clients may not write control batches", record.ErrInvalid)
	}
	if !cfg.LogAppendTime && (cfg.TimestampBeforeMaxMs < math.MaxInt64 || cfg.TimestampAfterMaxMs < math.MaxInt64) {
		now := now().UnixMilli()
		if (cfg.TimestampBeforeMaxMs < now && h.FirstTimestamp < now-cfg.TimestampBeforeMaxMs) ||
			(h.MaxTimestamp > now && h.MaxTimestamp-now > cfg.TimestampAfterMaxMs) {
			return nil, fmt.Errorf("%w: batch timestamps %d..%d are outside the topic's allowed range around %d", ErrInvalidTimestamp, h.FirstTimestamp, h.MaxTimestamp, now)
		}
	}
	// Every record is checked, compressed batches too (decompressed on the
	// way): a batch whose CRC is right but whose records are not must not
	// reach the log and its consumers.
	if err := record.ValidateRecords(records, cfg.CleanupCompact); err != nil {
		return nil, err
	}
	if ct := cfg.CompressionType; ct != "producer" {
		if want, _ := record.ParseCodec(ct); want != h.Codec() {
			if records, err = record.Recompress(nil, records, want); err != nil {
				return nil, fmt.Errorf("recompress to %s: %w", ct, err)
			}
		}
	}
	return records, nil
}

// Sync returns once offset is durable per the fsync policy; on the leader
// the high watermark may move with it.
func (p *Partition) Sync(offset int64) error {
	if !p.env.fsyncAlways {
		return nil
	}
	if err := p.log.Sync(offset); err != nil {
		return p.noteLog("fsync", err)
	}
	p.mu.Lock()
	p.maybeAdvanceLocked()
	p.mu.Unlock()
	return nil
}

// Wait returns a channel closed the next time the high watermark or the log
// end moves, or the partition changes role.
func (p *Partition) Wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitCh == nil {
		p.waitCh = make(chan struct{})
	}
	return p.waitCh
}

// wakeLocked releases waiters and rings watchers; mu held.
func (p *Partition) wakeLocked() {
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	for w := range p.watchers {
		w.ring()
	}
}

// leaderAppend runs write (an append to the log with the given leader
// epoch) while this replica is the leader and cannot stop being it.
func (p *Partition) leaderAppend(write func(epoch int32) (storage.AppendResult, error)) (storage.AppendResult, error) {
	p.roleMu.RLock()
	defer p.roleMu.RUnlock()
	if !p.leader.Load() {
		return storage.AppendResult{}, fmt.Errorf("%w: %s-%d", ErrNotLeader, p.Topic, p.Index)
	}
	return write(p.leaderEpoch.Load())
}

// becomeLeader makes this replica the leader in st's epoch. Follower
// progress starts unknown: the high watermark waits for every ISR member
// to fetch in the new epoch.
func (p *Partition) becomeLeader(st state) {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader.Load() && st.leaderEpoch == p.st.leaderEpoch {
		p.updateStateLocked(st)
		return
	}
	p.logger.Debug("became leader", "leader_epoch", st.leaderEpoch, "isr", st.isr, "log_end", p.log.LogEndOffset(), "high_watermark", p.hw.Load())
	p.st = st
	p.followers = map[int32]*follower{}
	p.pending = nil
	p.retryAt = time.Time{}
	p.epochStart = p.log.LogEndOffset()
	p.leaderEpoch.Store(st.leaderEpoch)
	p.leader.Store(true)
	p.maybeAdvanceLocked()
	p.wakeLocked()
}

// becomeFollower makes this replica a follower (of st.leader, or of nobody
// while the partition has no leader). It reports whether the leader or
// epoch changed, so the fetcher should (re)start.
func (p *Partition) becomeFollower(st state) bool {
	p.roleMu.Lock()
	defer p.roleMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() && st.leaderEpoch == p.st.leaderEpoch && st.leader == p.st.leader {
		p.updateStateLocked(st)
		return false
	}
	if p.leader.Load() {
		p.logger.Debug("became follower", "leader", st.leader, "leader_epoch", st.leaderEpoch, "log_end", p.log.LogEndOffset())
	}
	p.st = st
	p.followers = nil
	p.pending = nil
	p.leaderEpoch.Store(st.leaderEpoch)
	p.leader.Store(false)
	p.wakeLocked()
	return true
}

// updateStateLocked takes a newer partition epoch of the same leader epoch
// (an ISR or replica change); mu held.
func (p *Partition) updateStateLocked(st state) {
	if st.partitionEpoch <= p.st.partitionEpoch && slices.Equal(st.replicas, p.st.replicas) {
		return
	}
	p.st.isr, p.st.replicas, p.st.partitionEpoch = st.isr, st.replicas, st.partitionEpoch
	p.maybeAdvanceLocked()
}
