package replication

import (
	"context"
	"fmt"
	"log/slog"
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
	waitCh     chan struct{} // closed when the high watermark or log end moves; nil if nobody waits
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
}

func newPartition(e *env, topic string, id metadata.UUID, idx int32, log *storage.Log, cfg *config.Topic) *Partition {
	p := &Partition{Topic: topic, TopicID: id, Index: idx, log: log, env: e,
		logger: e.logger.With("partition", TopicPartition{topic, idx}.DirName())}
	p.cfg.Store(cfg)
	hw := log.HighWatermarkCheckpoint()
	if e.fsyncAlways {
		hw = min(hw, log.DurableOffset())
	}
	p.hw.Store(max(hw, log.LogStartOffset()))
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

func (p *Partition) isrSize() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.st.isr)
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
	if err := p.checkLeader(-1); err != nil {
		return AppendResult{}, err
	}
	cfg := p.Config()
	records, err := validateProduced(records, cfg, p.env.now().UnixMilli())
	if err != nil {
		return AppendResult{}, err
	}
	if acks == -1 {
		if n := p.isrSize(); n < int(cfg.MinInsyncReplicas) {
			return AppendResult{}, fmt.Errorf("%w: %d in-sync replicas, min.insync.replicas is %d", ErrNotEnoughReplicas, n, cfg.MinInsyncReplicas)
		}
	}
	return p.Append(records)
}

// Append appends an already validated batch as the leader (the group
// coordinator writes its own batches this way).
func (p *Partition) Append(batch []byte) (AppendResult, error) {
	if !p.leader.Load() {
		return AppendResult{}, fmt.Errorf("%w: %s-%d", ErrNotLeader, p.Topic, p.Index)
	}
	res, err := p.log.Append(batch, p.leaderEpoch.Load())
	if err != nil || res.Duplicate {
		return res, err
	}
	p.mu.Lock()
	p.maybeAdvanceLocked()
	p.wakeLocked()
	p.mu.Unlock()
	return res, nil
}

// validateProduced applies the produce rules to one batch and returns the
// bytes to append (recompressed when the topic's compression.type asks).
func validateProduced(records []byte, cfg *config.Topic, now int64) ([]byte, error) {
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
	if h.IsTransactional() {
		return nil, fmt.Errorf("%w: transactions are not supported yet", ErrTransactionsUnsupported)
	}
	if !cfg.LogAppendTime {
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
		return err
	}
	p.mu.Lock()
	p.maybeAdvanceLocked()
	p.mu.Unlock()
	return nil
}

// WaitReplicated waits until the high watermark passes offset: every
// in-sync replica has the record (acks=all). It fails if this replica stops
// leading or ctx ends first, and with ErrNotEnoughReplicasAfterAppend if the
// ISR shrank below min.insync.replicas meanwhile.
func (p *Partition) WaitReplicated(ctx context.Context, offset int64) error {
	for {
		ch := p.Wait()
		if p.hw.Load() > offset {
			break
		}
		if !p.leader.Load() {
			return fmt.Errorf("%w: leadership moved before offset %d was replicated", ErrNotLeader, offset)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: offset %d not replicated to the ISR %v in time (high watermark %d)", ErrReplicationTimeout, offset, p.ISR(), p.hw.Load())
		}
	}
	if n, minISR := p.isrSize(), p.Config().MinInsyncReplicas; n < int(minISR) {
		return fmt.Errorf("%w: %d in-sync replicas, min.insync.replicas is %d", ErrNotEnoughReplicasAfterAppend, n, minISR)
	}
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

// wakeLocked releases waiters; mu held.
func (p *Partition) wakeLocked() {
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
}

func (p *Partition) wakeAll() {
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}

// setHWLocked moves the high watermark forward and wakes waiters; mu held.
// The manager checkpoints it periodically and at close.
func (p *Partition) setHWLocked(hw int64) bool {
	if hw <= p.hw.Load() {
		return false
	}
	p.hw.Store(hw)
	p.wakeLocked()
	return true
}

// maybeAdvanceLocked recomputes the leader's high watermark; mu held.
func (p *Partition) maybeAdvanceLocked() {
	if !p.leader.Load() {
		return
	}
	isr := p.maximalISRLocked()
	if len(isr) < int(p.Config().MinInsyncReplicas) {
		// KIP-966: below min.insync.replicas the high watermark stands
		// still, so that the eligible leader replicas (which left the ISR
		// while it was this small) hold everything below it.
		return
	}
	hw := p.log.LogEndOffset()
	if p.env.fsyncAlways {
		hw = p.log.DurableOffset()
	}
	for _, id := range isr {
		if id == p.env.nodeID {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			return // an ISR member has not fetched in this epoch yet
		}
		hw = min(hw, f.leo)
	}
	p.setHWLocked(hw)
}

// maximalISRLocked is the committed ISR, with the members of a pending
// expansion added; mu held.
func (p *Partition) maximalISRLocked() []int32 {
	if p.pending == nil {
		return p.st.isr
	}
	out := slices.Clone(p.st.isr)
	for _, id := range p.pending {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// FetchParams is one partition of a fetch.
type FetchParams struct {
	Offset             int64
	MaxBytes           int
	MinOneBatch        bool  // the first batch whole even past MaxBytes (KIP-74)
	CurrentLeaderEpoch int32 // -1 skips the check
	// ReplicaID is the fetching follower's node id, -1 for a consumer.
	ReplicaID int32
	// LastFetchedEpoch is the epoch of the follower's last batch (-1 if
	// none): the leader checks it against its own epochs, so a follower
	// learns where its log diverges in the fetch itself.
	LastFetchedEpoch int32
}

// FetchResult is what a read found. Release it once the regions are sent.
type FetchResult struct {
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	Records          storage.ReadResult
	// Diverging is set for a follower whose log diverges from the
	// leader's: truncate to DivergingEndOffset and fetch again.
	Diverging          bool
	DivergingEpoch     int32
	DivergingEndOffset int64
	// Throttled is set when the leader's replication throttle held the
	// records back: the follower is out of sync, the replica is in
	// leader.replication.throttled.replicas and the leader is over
	// leader.replication.throttled.rate.
	Throttled bool
	// quota is the leader's throttle when this read is of a throttled
	// replica for a follower: its bytes count once sent.
	quota *quota
}

// Release returns the file references of the read.
func (r *FetchResult) Release() { r.Records.Release() }

// Sent tells the leader's replication throttle that the read's records
// went out (call it once, when the response is sent; reads that are
// re-done while a fetch waits do not count). Only follower reads of
// leader-throttled replicas count, in sync or not, as Kafka counts them.
func (r *FetchResult) Sent() {
	if r.quota != nil {
		r.quota.record(r.Records.Size)
	}
}

// Read serves a fetch: consumers read up to the high watermark, followers up
// to the log end; only the leader serves either. A follower's fetch also
// reports its progress (its fetch offset is its log end offset).
func (p *Partition) Read(fp FetchParams) (FetchResult, error) {
	if err := p.checkLeader(fp.CurrentLeaderEpoch); err != nil {
		return FetchResult{}, err
	}
	res := FetchResult{LogStartOffset: p.log.LogStartOffset()}
	maxOffset := p.hw.Load()
	if fp.ReplicaID >= 0 {
		if d, epoch, end := p.diverging(fp); d {
			res.Diverging, res.DivergingEpoch, res.DivergingEndOffset = true, epoch, end
			res.HighWatermark, res.LastStableOffset = p.hw.Load(), p.hw.Load()
			return res, nil
		}
		p.followerFetched(fp.ReplicaID, fp.Offset)
		maxOffset = p.log.LogEndOffset()
		if p.leaderThrottled() {
			res.quota = p.env.leaderQuota
			res.Throttled = !p.inISR(fp.ReplicaID) && res.quota.exceeded()
		}
	}
	hw := p.hw.Load()
	res.HighWatermark, res.LastStableOffset = hw, hw
	if fp.Offset >= maxOffset {
		if fp.Offset > p.log.LogEndOffset() {
			return res, fmt.Errorf("%w: fetch offset %d is past the log end %d", storage.ErrOffsetOutOfRange, fp.Offset, p.log.LogEndOffset())
		}
		return res, nil
	}
	if res.Throttled {
		// Kafka's shouldLeaderThrottle: the follower's progress is
		// recorded above, it gets no records this time.
		return res, nil
	}
	if fp.MaxBytes <= 0 && !fp.MinOneBatch {
		return res, nil
	}
	rr, err := p.log.Read(fp.Offset, maxOffset, fp.MaxBytes, fp.MinOneBatch)
	if err != nil {
		return res, err
	}
	res.Records = rr
	return res, nil
}

// leaderThrottled reports whether this replica, as leader, is in the
// topic's leader.replication.throttled.replicas.
func (p *Partition) leaderThrottled() bool {
	return p.env.leaderQuota != nil && p.Config().LeaderThrottledReplicas.Has(p.Index, p.env.nodeID)
}

// followerThrottled reports whether this replica, as follower, is in the
// topic's follower.replication.throttled.replicas.
func (p *Partition) followerThrottled() bool {
	return p.env.followerQuota != nil && p.Config().FollowerThrottledReplicas.Has(p.Index, p.env.nodeID)
}

// followerInSync is a follower's own view of being in sync, as Kafka's
// fetcher judges it for throttling: it has heard the leader's high
// watermark and its log reaches it. Replicas in sync are never throttled.
func (p *Partition) followerInSync() bool {
	hw := p.leaderHW.Load()
	return hw >= 0 && p.log.LogEndOffset() >= hw
}

// inISR reports whether id is in the committed ISR (the leader's test for
// throttling: in-sync replicas are never throttled).
func (p *Partition) inISR(id int32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.st.isr, id)
}

// diverging checks a follower's last fetched epoch against the leader's
// epochs (the truncation protocol of KIP-595 that Kafka's replica fetcher
// uses): if the leader's log ends that epoch before the follower's fetch
// offset, or does not know the epoch, the follower must truncate.
func (p *Partition) diverging(fp FetchParams) (bool, int32, int64) {
	if fp.LastFetchedEpoch < 0 {
		return false, 0, 0
	}
	epoch, end := p.log.EndOffsetForEpoch(fp.LastFetchedEpoch, p.leaderEpoch.Load())
	if epoch == fp.LastFetchedEpoch && end >= fp.Offset {
		return false, 0, 0
	}
	if epoch < 0 {
		// No epoch of ours at or below the follower's: everything it has
		// from before our log start diverges.
		end = p.log.LogStartOffset()
	}
	return true, epoch, end
}

// followerFetched records a follower's fetch at offset (its log end), and
// moves the high watermark or proposes adding it to the ISR.
func (p *Partition) followerFetched(id int32, offset int64) {
	now := p.env.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() || !slices.Contains(p.st.replicas, id) {
		return
	}
	f := p.followers[id]
	if f == nil {
		f = &follower{leo: -1, prevLeaderLEO: -1}
		p.followers[id] = f
	}
	leo := p.log.LogEndOffset()
	// Kafka's caught-up rule: a fetch at the leader's log end is caught up
	// now; one at the log end the leader had at the previous fetch was
	// caught up then.
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case f.prevLeaderLEO >= 0 && offset >= f.prevLeaderLEO && f.prevFetch.After(f.lastCaughtUp):
		f.lastCaughtUp = f.prevFetch
	}
	f.prevLeaderLEO, f.prevFetch = leo, now
	f.leo, f.lastFetch = offset, now
	p.maybeAdvanceLocked()
	if !slices.Contains(p.st.isr, id) && p.pending == nil && !now.Before(p.retryAt) &&
		offset >= p.hw.Load() && offset >= p.epochStart {
		p.proposeLocked(append(slices.Clone(p.st.isr), id), "caught up")
	}
}

// maybeShrinkISR drops followers that have not caught up for
// replica.lag.time.max.ms from the ISR (through the controller). The
// manager calls it periodically.
func (p *Partition) maybeShrinkISR() {
	now := p.env.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() || p.pending != nil || now.Before(p.retryAt) {
		return
	}
	var keep, out []int32
	for _, id := range p.st.isr {
		f := p.followers[id]
		if id != p.env.nodeID && (f == nil || now.Sub(f.lastCaughtUp) > p.env.lagMax) {
			out = append(out, id)
			continue
		}
		keep = append(keep, id)
	}
	if len(out) == 0 {
		return
	}
	p.proposeLocked(keep, fmt.Sprintf("replicas %v not caught up within %s", out, p.env.lagMax))
}

// proposeLocked sends an ISR change to the controller in the background;
// mu held. One change is in flight at a time.
func (p *Partition) proposeLocked(isr []int32, why string) {
	if p.env.ctrl == nil {
		return
	}
	slices.Sort(isr)
	p.pending = isr
	req := ISRChange{TopicID: p.TopicID, Topic: p.Topic, Partition: p.Index,
		LeaderEpoch: p.st.leaderEpoch, PartitionEpoch: p.st.partitionEpoch, ISR: isr}
	p.logger.Info("proposing ISR change", "from", p.st.isr, "to", isr, "why", why, "leader_epoch", req.LeaderEpoch, "partition_epoch", req.PartitionEpoch)
	p.env.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := p.env.ctrl.AlterPartition(ctx, req)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.pending = nil
		if err != nil {
			// A broker just restarted is fenced until its first
			// heartbeat; a leader that just lost leadership hears
			// about it from the image: retry a little later.
			p.retryAt = p.env.now().Add(isrRetryBackoff)
			p.logger.Warn("ISR change refused; retrying", "to", isr, "after", isrRetryBackoff, "err", err)
			return
		}
		if got.LeaderEpoch == p.st.leaderEpoch && got.PartitionEpoch > p.st.partitionEpoch {
			p.st.isr, p.st.partitionEpoch = got.ISR, got.PartitionEpoch
		}
		p.maybeAdvanceLocked()
		p.wakeLocked()
	})
}

// isrRetryBackoff is how long a leader waits after a refused ISR change
// before it asks again.
const isrRetryBackoff = 500 * time.Millisecond

// becomeLeader makes this replica the leader in st's epoch. Follower
// progress starts unknown: the high watermark waits for every ISR member
// to fetch in the new epoch.
func (p *Partition) becomeLeader(st state) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader.Load() && st.leaderEpoch == p.st.leaderEpoch {
		p.updateStateLocked(st)
		return
	}
	p.logger.Info("became leader", "leader_epoch", st.leaderEpoch, "isr", st.isr, "log_end", p.log.LogEndOffset(), "high_watermark", p.hw.Load())
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() && st.leaderEpoch == p.st.leaderEpoch && st.leader == p.st.leader {
		p.updateStateLocked(st)
		return false
	}
	if p.leader.Load() {
		p.logger.Info("became follower", "leader", st.leader, "leader_epoch", st.leaderEpoch, "log_end", p.log.LogEndOffset())
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

// appendAsFollower appends what the leader sent and takes its high
// watermark (never past our own log end).
func (p *Partition) appendAsFollower(batches []byte, leaderHW int64) error {
	if len(batches) > 0 {
		if _, err := p.log.AppendAsFollower(batches); err != nil {
			return err
		}
		if p.env.fsyncAlways {
			if err := p.log.Sync(p.log.LogEndOffset() - 1); err != nil {
				return err
			}
		}
	}
	p.leaderHW.Store(leaderHW)
	p.mu.Lock()
	defer p.mu.Unlock()
	hw := min(leaderHW, p.log.LogEndOffset())
	if !p.setHWLocked(hw) && len(batches) > 0 {
		p.wakeLocked()
	}
	return nil
}

// truncateTo cuts a follower's log at offset, on the leader's word.
func (p *Partition) truncateTo(offset int64) error {
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	p.logger.Info("truncating diverging log", "from", p.log.LogEndOffset(), "to", offset)
	if err := p.log.TruncateTo(offset); err != nil {
		return err
	}
	p.mu.Lock()
	if hw := p.hw.Load(); hw > offset {
		// Only data above the high watermark can diverge; an HW above
		// the new end came from a checkpoint of a log that was ahead.
		p.hw.Store(offset)
	}
	p.mu.Unlock()
	return nil
}

// resetTo empties a follower's log to start at offset (its fetch offset
// fell below the leader's log start).
func (p *Partition) resetTo(offset int64) error {
	p.logger.Info("log is behind the leader's log start; starting over", "log_end", p.log.LogEndOffset(), "leader_log_start", offset)
	if err := p.log.TruncateFullyAndStartAt(offset); err != nil {
		return err
	}
	p.mu.Lock()
	p.hw.Store(offset)
	p.mu.Unlock()
	return nil
}

// fetchState is what the follower's next fetch asks for.
func (p *Partition) fetchState() (offset int64, lastEpoch, leaderEpoch int32, logStart int64) {
	e, ok := p.log.LatestEpoch()
	if !ok {
		e = -1
	}
	return p.log.LogEndOffset(), e, p.leaderEpoch.Load(), p.log.LogStartOffset()
}

// localEndOffsetForEpoch is where this replica's log ends epoch.
func (p *Partition) localEndOffsetForEpoch(epoch int32) int64 {
	e, end := p.log.EndOffsetForEpoch(epoch, -1)
	if e < 0 {
		return p.log.LogStartOffset()
	}
	return end
}

// checkpointHW saves the high watermark so a restarted broker serves
// consumers at once.
func (p *Partition) checkpointHW() error { return p.log.SaveHighWatermark(p.hw.Load()) }

// OffsetForTimestamp is the first offset with a timestamp at or after ts
// below the high watermark (ListOffsets).
func (p *Partition) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	off, t, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil || !ok || off >= p.hw.Load() {
		return -1, -1, false, err
	}
	return off, t, true, nil
}

// MaxTimestamp is the offset and timestamp of the record with the largest
// timestamp (KIP-734).
func (p *Partition) MaxTimestamp() (offset, timestamp int64, err error) { return p.log.MaxTimestamp() }

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch at or
// below epoch and where it ends (KIP-101/279).
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.log.EndOffsetForEpoch(epoch, p.leaderEpoch.Load())
}

// DeleteRecordsBefore moves the log start offset forward; -1 means the high
// watermark, and offsets past it are out of range.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	if err := p.checkLeader(-1); err != nil {
		return -1, err
	}
	hw := p.hw.Load()
	switch {
	case offset == -1:
		offset = hw
	case offset < 0 || offset > hw:
		return -1, fmt.Errorf("%w: offset %d, high watermark %d", storage.ErrOffsetOutOfRange, offset, hw)
	}
	return p.log.DeleteRecordsBefore(offset)
}

// ForEachBatch calls fn with every batch from offset on (the group
// coordinator replays __consumer_offsets with it).
func (p *Partition) ForEachBatch(from int64, fn func(batch []byte) error) error {
	return p.log.ForEachBatch(from, fn)
}
