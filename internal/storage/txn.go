package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/stratalog/strata/internal/record"
)

// Transactions, the partition side (Kafka's ProducerStateManager,
// TransactionIndex and LogSegment.updateTxnIndex).
//
// A transactional batch (attribute bit 4) of a producer with no ongoing
// transaction on this partition starts one at the batch's base offset. A
// control batch (bits 4 and 5: a commit or abort marker written by
// WriteTxnMarkers) ends it. Until the marker is replicated (the high
// watermark passes it) the transaction still holds the last stable offset
// back: the LSO is the smallest first offset of the transactions that are
// ongoing or whose marker is at or above the high watermark, or the high
// watermark when there is none. An aborted transaction is recorded in the
// transaction index (.txnindex) of the segment its marker went to, which
// read_committed fetches consult to tell consumers what to skip.
//
// .txnindex entries are Kafka's, 34 bytes, big-endian: version int16 (0),
// producerId int64, firstOffset int64, lastOffset int64 (the marker's
// offset), lastStableOffset int64 (the first offset of the next ongoing
// transaction of another producer when the marker was written, or the
// marker's offset + 1). Index files are written by full flushes, as the
// offset indexes are; recovered segments (and any whose index fails its
// checks) have theirs rebuilt by replaying the producer state over them.

const (
	txnIndexSuffix = ".txnindex"
	txnEntrySize   = 34
)

// ErrInvalidTxnState: a non-transactional batch from a producer with an
// ongoing transaction, or a transactional batch that the transaction
// coordinator did not verify (KIP-890), as Kafka's InvalidTxnStateException.
var ErrInvalidTxnState = errors.New("storage: invalid transaction state")

// ErrCoordinatorFenced: a marker from a transaction coordinator with an
// older coordinator epoch than the last marker of the producer (Kafka's
// TransactionCoordinatorFencedException).
var ErrCoordinatorFenced = errors.New("storage: transaction coordinator fenced")

// AbortedTxn is one entry of a transaction index: an aborted transaction of
// ProducerID spanning FirstOffset to LastOffset (its marker).
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

func appendAbortedTxn(b []byte, t AbortedTxn) []byte {
	be := binary.BigEndian
	b = be.AppendUint16(b, 0)
	b = be.AppendUint64(b, uint64(t.ProducerID))
	b = be.AppendUint64(b, uint64(t.FirstOffset))
	b = be.AppendUint64(b, uint64(t.LastOffset))
	return be.AppendUint64(b, uint64(t.LastStableOffset))
}

// decodeTxnIndex parses a .txnindex file of the segment based at base whose
// batches end before next, checking every entry as Kafka's sanity check
// does (and more: the version and the offsets' order).
func decodeTxnIndex(b []byte, base, next int64) ([]AbortedTxn, error) {
	if len(b)%txnEntrySize != 0 {
		return nil, fmt.Errorf("transaction index size %d is not a multiple of %d", len(b), txnEntrySize)
	}
	be := binary.BigEndian
	var out []AbortedTxn
	for ; len(b) > 0; b = b[txnEntrySize:] {
		if v := be.Uint16(b); v != 0 {
			return nil, fmt.Errorf("transaction index entry version %d", v)
		}
		t := AbortedTxn{
			ProducerID:       int64(be.Uint64(b[2:])),
			FirstOffset:      int64(be.Uint64(b[10:])),
			LastOffset:       int64(be.Uint64(b[18:])),
			LastStableOffset: int64(be.Uint64(b[26:])),
		}
		if t.LastOffset < base || t.LastOffset >= next || t.FirstOffset > t.LastOffset {
			return nil, fmt.Errorf("transaction index entry %+v outside the segment [%d, %d)", t, base, next)
		}
		out = append(out, t)
	}
	return out, nil
}

// txnIndex is a segment's aborted transactions, in marker order. buf is
// their encoding; written how much of it the file has.
type txnIndex struct {
	entries []AbortedTxn
	buf     []byte
	written int
}

func (x *txnIndex) add(t AbortedTxn) {
	x.entries = append(x.entries, t)
	x.buf = appendAbortedTxn(x.buf, t)
}

func (x *txnIndex) reset() { *x = txnIndex{} }

// trim drops the entries whose marker is at or after end; the file is to
// be rewritten whole.
func (x *txnIndex) trim(end int64) {
	n := 0
	for n < len(x.entries) && x.entries[n].LastOffset < end {
		n++
	}
	x.entries = x.entries[:n:n]
	x.buf = x.buf[: n*txnEntrySize : n*txnEntrySize]
	x.written = 0
}

// loadTxnIndex reads the segment's .txnindex (a missing file is an empty
// index, as in Kafka). It reports an error when the file fails its checks.
func (s *segment) loadTxnIndex() error {
	s.txn.reset()
	b, err := os.ReadFile(s.path(txnIndexSuffix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := decodeTxnIndex(b, s.base, s.next)
	if err != nil {
		return err
	}
	s.txn = txnIndex{entries: entries, buf: b, written: len(b)}
	return nil
}

// controlInfo is what a control batch's marker says.
type controlInfo struct {
	commit           bool
	coordinatorEpoch int32
}

// parseControl reads a control batch's record (record.ParseTxnMarker).
func parseControl(batch []byte) (controlInfo, bool, error) {
	m, marker, err := record.ParseTxnMarker(batch)
	return controlInfo{commit: m.Commit, coordinatorEpoch: m.CoordinatorEpoch}, marker, err
}

// BuildTxnMarker is record.BuildTxnMarker.
func BuildTxnMarker(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, timestamp int64) []byte {
	return record.BuildTxnMarker(producerID, producerEpoch, coordinatorEpoch, commit, timestamp)
}

// noteTxns records that the producer state holds transactions; mu held
// (write).
func (l *Log) noteTxns() {
	if len(l.producers.txns) > 0 {
		l.txnsSeen.Store(true)
	}
}

// completeTxn records what a marker completed: an aborted transaction goes
// to the transaction index of s (the marker's segment); mu held.
func (l *Log) completeTxn(s *segment, c *completedTxn) {
	if c == nil || !c.aborted {
		return
	}
	s.txn.add(AbortedTxn{ProducerID: c.pid, FirstOffset: c.first, LastOffset: c.last, LastStableOffset: l.producers.lastStableFor(c)})
}

// LastStableOffset is the partition's last stable offset given its high
// watermark: the first offset of the earliest transaction that is ongoing
// or whose marker is not below hw (at least the log start offset), else
// hw. Completed transactions whose marker is below hw are forgotten.
func (l *Log) LastStableOffset(hw int64) int64 {
	if !l.txnsSeen.Load() {
		return hw
	}
	l.mu.RLock()
	lso, prune := l.producers.firstUnstable(hw)
	if lso >= 0 && lso < l.logStart {
		// DeleteRecords moved the log start into the transaction: what
		// is left of it starts there (Kafka bounds its first unstable
		// offset the same way).
		lso = l.logStart
	}
	l.mu.RUnlock()
	if prune {
		l.mu.Lock()
		l.producers.pruneReplicated(hw)
		l.mu.Unlock()
	}
	if lso < 0 || lso > hw {
		return hw
	}
	return lso
}

// OnHighWatermark tells the log its partition's high watermark: completed
// transactions whose marker is below it stop holding the last stable offset
// back and are forgotten, and the cleaner cleans below it only.
func (l *Log) OnHighWatermark(hw int64) {
	l.cleanHW.Store(hw)
	l.LastStableOffset(hw)
}

// AbortedTxns returns the aborted transactions that overlap [from, upper):
// those whose marker is at or after from and whose first offset is below
// upper, as Kafka's collectAbortedTransactions finds them, from the index
// of the segment holding from onwards until an entry's last stable offset
// reaches upper.
func (l *Log) AbortedTxns(from, upper int64) []AbortedTxn {
	_ = l.ensureLoaded() // a failed load leaves the log failed and empty
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := []AbortedTxn{}
	for i := l.segmentFor(from); i < len(l.segs); i++ {
		for _, t := range l.segs[i].txn.entries {
			if t.LastOffset >= from && t.FirstOffset < upper {
				out = append(out, t)
			}
			if t.LastStableOffset >= upper {
				return out
			}
		}
	}
	return out
}

// ProducerInfo describes one active producer (DescribeProducers).
type ProducerInfo struct {
	ProducerID            int64
	ProducerEpoch         int16
	LastSequence          int32 // -1 if none
	LastTimestamp         int64 // -1 if none
	CoordinatorEpoch      int32 // -1 if none
	CurrentTxnStartOffset int64 // -1 if none
}

// ActiveProducers lists the producers the log remembers, by id.
func (l *Log) ActiveProducers() []ProducerInfo {
	_ = l.ensureLoaded() // a failed load leaves the log failed and empty
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.producers.list()
}

// StartTxnVerification reports whether a transactional batch of producer
// pid at epoch needs the coordinator's word that the partition is in its
// transaction (KIP-890 part 1): it does unless the producer has a
// transaction ongoing here at that epoch. When it does, it returns a guard
// to pass to AppendVerified; a marker for the producer meanwhile
// invalidates the guard, so a verification cannot let a late batch start a
// transaction that has ended.
func (l *Log) StartTxnVerification(pid int64, epoch int16) (guard uint64, needed bool) {
	_ = l.ensureLoaded() // a failed load leaves the log failed and empty
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.producers.m[pid]; e != nil && e.txnFirst >= 0 && e.epoch == epoch {
		return 0, false
	}
	return l.producers.newGuard(pid, l.nowMs()), true
}
