package replication

import (
	"fmt"

	"github.com/stratalog/strata/internal/storage"
)

// Transactions on the partition (Kafka's Partition and UnifiedLog parts of
// KIP-98 and KIP-890): transactional batches are appended through
// AppendAsLeader (AppendAsLeaderVerified when the broker verifies them with
// the transaction coordinator), markers through AppendTxnMarker, and
// read_committed reads stop at the last stable offset (partition_read.go).
// The storage log keeps the producer state, the ongoing transactions and
// the aborted transaction index, on the leader and on followers alike.

// AbortedTxn is an aborted transaction a read_committed fetch reports.
type AbortedTxn = storage.AbortedTxn

// ProducerInfo describes an active producer (DescribeProducers).
type ProducerInfo = storage.ProducerInfo

// IsolationLevel is a fetch's or ListOffsets' isolation level.
type IsolationLevel int8

// Isolation levels, as the protocol numbers them.
const (
	ReadUncommitted IsolationLevel = 0
	ReadCommitted   IsolationLevel = 1
)

// LastStableOffset is the offset below which every transaction is decided
// and replicated: the first offset of the earliest transaction still
// ongoing (or whose marker is not below the high watermark), else the high
// watermark.
func (p *Partition) LastStableOffset() int64 { return p.log.LastStableOffset(p.hw.Load()) }

// ActiveProducers lists the producers the partition remembers.
func (p *Partition) ActiveProducers() []ProducerInfo { return p.log.ActiveProducers() }

// StartTxnVerification reports whether a transactional batch of the
// producer at epoch must be verified with its transaction coordinator
// before it is appended (KIP-890 part 1: it would start a transaction on
// this partition); if so, the guard goes to AppendAsLeaderVerified.
func (p *Partition) StartTxnVerification(producerID int64, epoch int16) (guard uint64, needed bool) {
	return p.log.StartTxnVerification(producerID, epoch)
}

// AppendAsLeaderVerified is AppendAsLeader for a broker that verifies
// transactions: a transactional batch that would start a transaction must
// carry the guard of a verification that no marker has overtaken, or it
// fails with ErrInvalidTxnState.
func (p *Partition) AppendAsLeaderVerified(records []byte, acks int16, guard uint64) (AppendResult, error) {
	return p.appendAsLeader(records, acks, true, guard, false)
}

// AppendTxnMarker writes a commit or abort marker for the producer as the
// leader (WriteTxnMarkers). Kafka appends markers with acks=all: with fewer
// in-sync replicas than min.insync.replicas nothing is written
// (ErrNotEnoughReplicas), and the caller answers once Sync and
// WaitReplicated say the marker is durable and in the ISR, as for an
// acks=all produce. A marker with an older producer epoch than the
// producer's is ErrInvalidProducerEpoch, one with an older coordinator
// epoch than its last marker's ErrCoordinatorFenced; a newer producer epoch
// becomes the producer's (KIP-890 part 2: markers carry the epoch the
// coordinator bumped when the transaction ended).
func (p *Partition) AppendTxnMarker(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool) (AppendResult, error) {
	return p.AppendTxnMarkerVersion(producerID, producerEpoch, coordinatorEpoch, commit, 0)
}

// AppendTxnMarkerVersion is AppendTxnMarker for a transaction of
// transactionVersion (WriteTxnMarkers v2): from version 2 the marker's
// epoch must be newer than the producer's (storage.Log.AppendMarker), so a
// stale marker cannot end the producer's next transaction. A resend of the
// version 2 marker already in the log (same epoch, no transaction of the
// producer since) writes nothing and returns that marker's offset with
// Duplicate set: the caller waits for it to be durable (Sync,
// WaitReplicated) before answering, so the coordinator never takes a
// marker a new leader could still lose for written.
func (p *Partition) AppendTxnMarkerVersion(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, transactionVersion int8) (AppendResult, error) {
	if err := p.checkLeader(-1); err != nil {
		return AppendResult{}, err
	}
	cfg := p.Config()
	if _, n := p.sizes(); n < int(cfg.MinInsyncReplicas) {
		return AppendResult{}, fmt.Errorf("%w: %d in-sync replicas, min.insync.replicas is %d", ErrNotEnoughReplicas, n, cfg.MinInsyncReplicas)
	}
	marker := storage.BuildTxnMarker(producerID, producerEpoch, coordinatorEpoch, commit, p.env.now().UnixMilli())
	res, err := p.leaderAppend(func(epoch int32) (storage.AppendResult, error) {
		return p.log.AppendMarker(marker, epoch, transactionVersion)
	})
	if err != nil {
		return res, p.noteLog("append transaction marker", err)
	}
	if res.Duplicate {
		// The coordinator resent a transaction version 2 marker this
		// log already holds (its first answer was lost or came before
		// the marker was replicated): res is that marker, and the
		// caller answers once it is durable, as for the first send.
		return res, nil
	}
	p.logWritten()
	p.mu.Lock()
	p.maybeAdvanceLocked()
	p.wakeLocked()
	p.mu.Unlock()
	return res, nil
}
