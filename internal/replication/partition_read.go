package replication

import (
	"fmt"
	"slices"

	"github.com/stratalog/strata/internal/storage"
)

// The read side of a partition: consumer and follower fetches, the
// leader's divergence check, quotas, and the offset lookups.

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
	// Isolation is a consumer's: ReadCommitted reads stop at the last
	// stable offset and report the aborted transactions they cover.
	Isolation IsolationLevel
}

// FetchResult is what a read found. Release it once the regions are sent.
type FetchResult struct {
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	Records          storage.ReadResult
	// AbortedTxns are, for a read_committed read, the aborted transactions
	// that overlap the records returned (non-nil, possibly empty); nil
	// for other reads.
	AbortedTxns []AbortedTxn
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
	// part and follower say whose bytes-out counter Sent adds to.
	part     *Partition
	follower bool
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
	if p := r.part; p != nil && r.Records.Size > 0 {
		if r.follower {
			p.env.stats.replicationBytesOut.Add(r.Records.Size)
		} else {
			p.stats.bytesOut.Add(r.Records.Size)
			p.env.stats.bytesOut.Add(r.Records.Size)
		}
	}
}

// Read serves a fetch: consumers read up to the high watermark, followers up
// to the log end; only the leader serves either. A follower's fetch also
// reports its progress (its fetch offset is its log end offset).
func (p *Partition) Read(fp FetchParams) (res FetchResult, err error) {
	defer func() {
		if err != nil {
			p.stats.fetchFailures.Add(1)
			p.env.stats.fetchFailures.Add(1)
		}
	}()
	if err := p.checkLeader(fp.CurrentLeaderEpoch); err != nil {
		return FetchResult{}, err
	}
	res = FetchResult{LogStartOffset: p.log.LogStartOffset(), part: p, follower: fp.ReplicaID >= 0}
	maxOffset := p.hw.Load()
	committed := fp.ReplicaID < 0 && fp.Isolation == ReadCommitted
	if committed {
		maxOffset = p.log.LastStableOffset(maxOffset)
		res.AbortedTxns = []AbortedTxn{}
	}
	if fp.ReplicaID >= 0 {
		if d, epoch, end := p.diverging(fp); d {
			res.Diverging, res.DivergingEpoch, res.DivergingEndOffset = true, epoch, end
			res.HighWatermark = p.hw.Load()
			res.LastStableOffset = p.log.LastStableOffset(res.HighWatermark)
			return res, nil
		}
		maxOffset = p.log.LogEndOffset()
		if fp.Offset <= maxOffset {
			// A fetch offset past our log end (a follower without epochs
			// to compare) is out of range below and says nothing of its
			// progress.
			p.followerFetched(fp.ReplicaID, fp.Offset)
		}
		if p.leaderThrottled() {
			res.quota = p.env.leaderQuota
			res.Throttled = !p.inISR(fp.ReplicaID) && res.quota.exceeded()
		}
	}
	// Read after the follower's progress moved it: the follower learns
	// its new high watermark in this response. (A consumer's records stop
	// at the bound read above, at or below these.)
	res.HighWatermark = p.hw.Load()
	res.LastStableOffset = p.log.LastStableOffset(res.HighWatermark)
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
	if committed && rr.Size > 0 {
		res.AbortedTxns = p.log.AbortedTxns(fp.Offset, rr.End)
	}
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

// OffsetForTimestamp is the first offset with a timestamp at or after ts
// below the high watermark, or for ReadCommitted below the last stable
// offset (ListOffsets).
func (p *Partition) OffsetForTimestamp(ts int64, isolation IsolationLevel) (offset, timestamp int64, found bool, err error) {
	limit := p.hw.Load()
	if isolation == ReadCommitted {
		limit = p.LastStableOffset()
	}
	off, t, ok, err := p.log.OffsetForTimestamp(ts)
	if err != nil || !ok || off >= limit {
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
