package storage

import (
	"math"
	"sort"

	"github.com/stratalog/strata/internal/record"
)

// Transactions in the log cleaner, as Kafka's CleanedTransactionMetadata.
//
// The cleaner never cleans at or above the first unstable offset (the first
// offset of a transaction not yet stable) nor above the high watermark the
// partition last reported (Log.OnHighWatermark). Within the cleanable
// range, walking the batches in offset order with the aborted transactions
// of the range (from the transaction indexes, by first offset):
//
//   - a transactional data batch of a producer whose aborted transaction
//     has begun (its first offset reached) is aborted data: its keys are not
//     mapped, and it is removed (kept as an empty batch when it is the last
//     batch of a live producer, as other emptied batches are);
//   - an abort marker is kept while this pass saw data of its transaction
//     (the data goes now, the marker at a later pass), and then its
//     transaction index entry goes to the cleaned segment; a commit marker is
//     kept while this pass saw data of its transaction;
//   - a marker whose transaction has no data left gets a delete horizon
//     (now + delete.retention.ms, set as for tombstones) and is removed by
//     the first pass after it, so that a consumer that read the data before
//     it was cleaned still sees the marker.
type txnCleanState struct {
	aborted         []AbortedTxn // not yet begun, ascending first offset
	ongoingAborted  map[int64]*abortedSeen
	ongoingCommited map[int64]bool
	index           *txnIndex // the cleaned segment's index, or nil while mapping
}

type abortedSeen struct {
	txn      AbortedTxn
	observed bool
}

func newTxnCleanState(aborted []AbortedTxn, index *txnIndex) *txnCleanState {
	sort.SliceStable(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	return &txnCleanState{aborted: aborted, ongoingAborted: map[int64]*abortedSeen{}, ongoingCommited: map[int64]bool{}, index: index}
}

func (t *txnCleanState) consumeUpTo(offset int64) {
	for len(t.aborted) > 0 && t.aborted[0].FirstOffset <= offset {
		a := t.aborted[0]
		t.aborted = t.aborted[1:]
		if _, ok := t.ongoingAborted[a.ProducerID]; !ok {
			t.ongoingAborted[a.ProducerID] = &abortedSeen{txn: a}
		}
	}
}

// onBatch reports whether the data batch h is aborted data.
func (t *txnCleanState) onBatch(h *record.Header) bool {
	t.consumeUpTo(h.LastOffset())
	if !h.IsTransactional() {
		return false
	}
	if a := t.ongoingAborted[h.ProducerID]; a != nil {
		a.observed = true
		return true
	}
	t.ongoingCommited[h.ProducerID] = true
	return false
}

// onControl reports whether the control batch h (whose marker is ci, nil
// for other control records) may be discarded: no data of its transaction
// is left (subject to its delete horizon).
func (t *txnCleanState) onControl(h *record.Header, ci *controlInfo) bool {
	t.consumeUpTo(h.LastOffset())
	if ci == nil {
		return false
	}
	pid := h.ProducerID
	if !ci.commit {
		a := t.ongoingAborted[pid]
		delete(t.ongoingAborted, pid)
		if a != nil && a.observed {
			if t.index != nil {
				t.index.add(a.txn)
			}
			return false
		}
		return true
	}
	seen := t.ongoingCommited[pid]
	delete(t.ongoingCommited, pid)
	return !seen
}

// filterControl appends what remains of the control batch b: dropped once
// its transaction has no data left and its delete horizon has passed;
// given a horizon when its transaction has no data left; kept otherwise.
func (c *cleanPass) filterControl(dst, b []byte, h *record.Header) ([]byte, error) {
	ci, marker, err := parseControl(b)
	if err != nil {
		return dst, err
	}
	var cip *controlInfo
	if marker {
		cip = &ci
	}
	if !c.txn.onControl(h, cip) || c.protect[h.BaseOffset] {
		// A producer's last marker stays: a replay of the producer state
		// must see its transaction end.
		return append(dst, b...), nil
	}
	hasHorizon := h.Attributes&record.AttrDeleteHorizon != 0
	if hasHorizon && c.nowMs >= h.FirstTimestamp {
		c.stats.RecordsRemoved += int64(h.NumRecords)
		c.stats.BatchesRemoved++
		return dst, nil
	}
	if hasHorizon {
		c.noteHorizon(h.FirstTimestamp)
		return append(dst, b...), nil
	}
	hz := c.nowMs + c.cfg.DeleteRetentionMs
	if c.cfg.DeleteRetentionMs > math.MaxInt64-c.nowMs {
		hz = math.MaxInt64
	}
	c.recs, c.hdrs, c.arena = c.recs[:0], c.hdrs[:0], c.arena[:0]
	if err := record.ForEach(b, func(r *record.Record) error { c.keep(r); return nil }); err != nil {
		return dst, err
	}
	for i := range c.recs {
		c.recs[i].TimestampDelta += h.FirstTimestamp - hz
	}
	c.noteHorizon(hz)
	return c.rebuild(dst, h, hz, c.recs, true)
}
