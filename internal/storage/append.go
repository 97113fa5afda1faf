package storage

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/stratalog/strata/internal/record"
)

// Append writes one whole, validated v2 batch at the end of the log. The log
// takes the slice over: it rewrites the base offset, the partition leader
// epoch and, with LogAppendTime, the timestamp, in place. Batches of
// idempotent producers are checked against the producer's state first; a
// duplicate of one of its last five batches writes nothing and returns the
// original offsets with Duplicate set.
func (l *Log) Append(batch []byte, leaderEpoch int32) (AppendResult, error) {
	return l.append(batch, leaderEpoch, appendOpts{})
}

// AppendJournaled is Append for a log in journal mode (Options.Journal):
// the batch goes to the journal's buffer and the log's pending tail, not
// to the segment file, and the caller must call the journal's Sync before
// it acknowledges the batch (a produce request: once, after all its
// partitions). Without a journal it is Append.
func (l *Log) AppendJournaled(batch []byte, leaderEpoch int32) (AppendResult, error) {
	return l.append(batch, leaderEpoch, appendOpts{journal: true})
}

// AppendVerifiedJournaled is AppendVerified through the journal, as
// AppendJournaled.
func (l *Log) AppendVerifiedJournaled(batch []byte, leaderEpoch int32, guard uint64) (AppendResult, error) {
	return l.append(batch, leaderEpoch, appendOpts{verify: true, guard: guard, journal: true})
}

// appendOpts are the leader's transaction checks beyond Append's.
type appendOpts struct {
	// journal: the batch goes through the journal (AppendJournaled).
	journal bool
	verify  bool   // a transaction needs a verification guard (KIP-890 part 1)
	guard   uint64 // the guard the batch comes with
	// strictEpoch: a marker of transaction version 2 must carry an epoch
	// newer than the producer's (KIP-890 part 2).
	strictEpoch bool
}

// AppendMarker appends a transaction marker (record.BuildTxnMarker) written
// by WriteTxnMarkers for a transaction of transactionVersion. From version
// 2 (KIP-890 part 2) the coordinator bumps the producer's epoch when a
// transaction ends and writes its markers with the new epoch, so a marker
// whose epoch is not newer than the producer's is a stale one (a retry of
// an earlier transaction's marker, delayed past the start of the next) and
// is refused with ErrInvalidProducerEpoch; before version 2 only an older
// epoch is. The exception is the coordinator's resend of the marker that
// bumped the epoch (the producer's last batch here, no transaction started
// since): nothing is written and the result is that marker's offset with
// Duplicate set, so the caller answers once that marker is durable.
func (l *Log) AppendMarker(batch []byte, leaderEpoch int32, transactionVersion int8) (AppendResult, error) {
	return l.append(batch, leaderEpoch, appendOpts{strictEpoch: transactionVersion >= 2})
}

// AppendVerified is Append for a leader that verifies transactions with
// their coordinator (KIP-890 part 1): a transactional batch that would
// start a transaction of its producer here must come with the guard that
// StartTxnVerification returned, still pending (no marker for the producer
// since), or it is refused with ErrInvalidTxnState.
func (l *Log) AppendVerified(batch []byte, leaderEpoch int32, guard uint64) (AppendResult, error) {
	return l.append(batch, leaderEpoch, appendOpts{verify: true, guard: guard})
}

func (l *Log) append(batch []byte, leaderEpoch int32, o appendOpts) (AppendResult, error) {
	if err := l.ensureLoaded(); err != nil {
		return AppendResult{}, err
	}
	h, err := record.ParseHeader(batch)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append: %w", err)
	}
	if h.Size() != len(batch) {
		return AppendResult{}, fmt.Errorf("storage: append: %w: batch length field says %d bytes, have %d", record.ErrCorrupt, h.Size(), len(batch))
	}

	var ci *controlInfo
	if h.IsControl() {
		c, marker, err := parseControl(batch)
		if err != nil {
			return AppendResult{}, fmt.Errorf("storage: append: %w", err)
		}
		if marker {
			ci = &c
		}
	}
	l.mu.Lock()
	res, flushNow, err := l.appendLocked(batch, &h, ci, leaderEpoch, o)
	l.mu.Unlock()
	if err != nil || res.Duplicate {
		return res, err
	}
	if flushNow {
		if err := l.flush(false); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (l *Log) appendLocked(batch []byte, h *record.Header, ci *controlInfo, leaderEpoch int32, o appendOpts) (AppendResult, bool, error) {
	if err := l.errClosedOrFailed(); err != nil {
		return AppendResult{}, false, err
	}
	if err := l.ensureAppendable(); err != nil {
		return AppendResult{}, false, err
	}
	cfg := &l.cfg
	if int64(len(batch)) > cfg.SegmentBytes || len(batch) > math.MaxInt32 {
		return AppendResult{}, false, fmt.Errorf("%w: %d bytes, segment.bytes is %d", ErrRecordTooLarge, len(batch), cfg.SegmentBytes)
	}
	nowMs := l.nowMs()
	if h.HasProducerID() {
		dup, err := l.producers.check(h, ci, o, nowMs, cfg.ProducerIDExpiryMs)
		if err != nil {
			return AppendResult{}, false, err
		}
		if dup != nil {
			res := AppendResult{BaseOffset: dup.firstOffset, LastOffset: dup.lastOffset, LogAppendTime: -1, LogStartOffset: l.logStart, Duplicate: true}
			if l.pendBytes > 0 {
				// The original may be in the pending tail: its frame
				// must be written before the duplicate is answered (the
				// caller's journal write), or, if the journal failed or
				// the caller writes no journal, the tail itself.
				if o.journal && l.journalOK() {
					res.Journaled = true
				} else if err := l.writePendingLocked(); err != nil {
					return AppendResult{}, false, err
				}
			}
			if cfg.LogAppendTime {
				res.LogAppendTime = dup.timestamp
			}
			return res, false, nil
		}
	}

	base := l.leo.Load()
	record.SetBaseOffset(batch, base)
	record.SetPartitionLeaderEpoch(batch, leaderEpoch)
	h.BaseOffset, h.PartitionLeaderEpoch = base, leaderEpoch
	res := AppendResult{BaseOffset: base, LastOffset: h.LastOffset(), LogAppendTime: -1}
	if cfg.LogAppendTime {
		record.SetLogAppendTime(batch, nowMs)
		h.MaxTimestamp = nowMs
		h.Attributes |= record.AttrTimestampType
		res.LogAppendTime = nowMs
	}

	// Through the journal unless: the batch is large (one pwrite either
	// way, so it goes to the segment directly, after the tail), the
	// tails of other logs hold the memory the journal allows them, or a
	// journal write failed.
	journal := o.journal && l.journalOK() && len(batch) < journalDirectBytes &&
		(l.pendBytes > 0 || l.opts.Journal.room())
	if !journal {
		// A direct write goes after the journaled tail.
		if err := l.writePendingLocked(); err != nil {
			return AppendResult{}, false, err
		}
	}
	if err := l.maybeRoll(h, nowMs); err != nil {
		return AppendResult{}, false, err
	}
	s := l.active()
	pos := s.size.Load() + l.pendBytes
	if journal {
		if err := l.addPendingLocked(batch, base); err != nil {
			return AppendResult{}, false, err
		}
		res.Journaled = true
	} else if n, err := s.writeAt(l.io, batch, pos); err != nil {
		// Cut off whatever part was written so the file stays whole batches.
		l.cutBack(s, pos, err)
		return AppendResult{}, false, fmt.Errorf("%w: append to %s: wrote %d of %d bytes: %w", ErrIO, s.path(logSuffix), n, len(batch), err)
	}
	s.track(h, pos, cfg.IndexIntervalBytes)
	if !journal {
		s.size.Store(pos + int64(len(batch)))
		l.directEnd = h.LastOffset() + 1
	}
	l.leo.Store(h.LastOffset() + 1)

	last, had := l.epochs.latest()
	if l.epochs.assign(leaderEpoch, base) || l.epochsDirty {
		l.epochsChanged(last, had)
	}
	if h.HasProducerID() {
		l.completeTxn(s, l.producers.update(h, ci, nowMs, cfg.ProducerIDExpiryMs))
		l.noteTxns()
	}
	l.unflushed += int64(h.NumRecords)
	res.LogStartOffset = l.logStart
	if journal && l.pendBytes >= journalWriteBytes {
		// The batch is journaled whatever this write does: a failure
		// leaves the tail pending, and what needs it reports the error.
		_ = l.writePendingLocked()
	}
	return res, l.unflushed >= cfg.FlushMessages, nil
}

// maybeRoll starts a new segment if the batch described by h does not fit
// the active one (see rollDue).
func (l *Log) maybeRoll(h *record.Header, nowMs int64) error {
	s := l.active()
	if !l.rollDue(s, s.size.Load()+l.pendBytes, s.firstBatchTs, 0, h, nowMs) {
		return nil
	}
	if err := l.writePendingLocked(); err != nil {
		return err
	}
	return l.roll()
}

// rollDue reports whether the batch described by h must go to a new segment
// rather than s, by Kafka's rules: size, age (segment.ms, measured from the
// first batch's timestamp, or the segment's creation without one), a full
// index, or an offset that no longer fits a relative offset. size and
// firstBatchTs describe s as it would be when the batch is written, and
// newEntries bounds the index entries added to it meanwhile (a follower
// writes several batches with one write). An empty segment never rolls.
func (l *Log) rollDue(s *segment, size, firstBatchTs int64, newEntries int, h *record.Header, nowMs int64) bool {
	if size == 0 {
		return false
	}
	cfg := &l.cfg
	batchSize := int64(h.Size())
	waited := nowMs - s.created.UnixMilli()
	if firstBatchTs >= 0 {
		waited = h.MaxTimestamp - firstBatchTs
	}
	segMs := cfg.SegmentMs
	if cfg.Compact && cfg.MaxCompactionLagMs > 0 && cfg.MaxCompactionLagMs < segMs {
		segMs = cfg.MaxCompactionLagMs // as Kafka: dirty data must become cleanable in time
	}
	return size+batchSize > cfg.SegmentBytes ||
		size+batchSize > math.MaxInt32 ||
		(segMs >= 0 && waited > segMs) ||
		s.offIdx.entries()+newEntries >= int(cfg.SegmentIndexBytes)/offsetEntrySize ||
		s.timeIdx.entries()+newEntries >= int(cfg.SegmentIndexBytes)/timeEntrySize ||
		h.LastOffset()-s.base > math.MaxInt32
}

// roll starts a new active segment at the log end offset; mu held. It
// writes a producer snapshot there and queues a background flush of the
// finished segment.
func (l *Log) roll() error { return l.rollAt(l.leo.Load()) }

// rollAt is roll with the new segment based at base, which is the log end
// offset or, for a follower append after an offset gap, the base offset of
// the batch about to be written; mu held.
func (l *Log) rollAt(base int64) error {
	// A new segment file must not reach the disk before the directory
	// changes the appends left unsynced: a clean shutdown marker that came
	// back would otherwise describe only the old active segment.
	if err := l.syncCreated(); err != nil {
		return fmt.Errorf("%w: roll to a new segment at %d: %w", ErrIO, base, err)
	}
	old := l.active()
	old.finishTimeIndex()
	s, err := l.newSegment(base, true)
	if err != nil {
		return fmt.Errorf("%w: roll to a new segment at %d: %w", ErrIO, base, err)
	}
	s.onClose = l.reportCloseError
	l.segs = append(l.segs, s)
	l.logger.Debug("rolled segment", "base_offset", base)
	if err := l.producers.writeSnapshot(l.dir, base, base, snapshotRenamed, &l.snaps); err != nil {
		l.logger.Warn("writing producer snapshot failed", "err", err)
	}
	if l.rollFlush.CompareAndSwap(false, true) {
		l.bg.Add(1)
		go func() {
			defer l.bg.Done()
			if err := l.flush(true); err != nil {
				// A failed fsync fails the log, and the next append
				// reports it; a failed index write costs a rebuild.
				l.logger.Warn("flushing rolled segment failed", "err", err)
			}
		}()
	}
	return nil
}

// epochsChanged handles a change of the leader epoch cache by an append
// (last, when had, was its latest entry before it).
//
// Recovery relies on the checkpoint knowing every epoch but the newest
// (epochScan), and the checkpoint holds epochs below the recovery point
// that only it knows, so writeEpochs replaces it durably: a temporary
// file, an fsync, a rename, a directory fsync. After a restart every
// partition's first write starts a new epoch, and at 100,000 partitions
// those fsyncs were 36 % of the first writes (issue 14). So a change that
// only adds epochs at or above the recovery floor, the earlier ones
// untouched, leaves the checkpoint alone and writes the whole cache to
// the tail file instead, in place, without fsync; the next full flush
// writes the checkpoint durably and removes the tail (writeEpochsDurably)
// before the recovery point moves past the new epochs. A process crash
// keeps the tail (the page cache survives it), so Open knows every epoch
// as before. A machine crash may lose or tear it; the checkpoint, not
// touched, still has every epoch below the recovery point, recovery finds
// the new ones in the batches, and only a damaged epoch field in a batch
// after two new epochs would then cut more than that batch.
func (l *Log) epochsChanged(last epochEntry, had bool) {
	n, floor := len(l.epochs.entries), l.recoveryFloor.Load()
	if !l.epochsDirty && had && n >= 2 && l.epochs.entries[0].startOffset < floor {
		if i := slices.Index(l.epochs.entries, last); i >= 0 && i < n-1 && l.epochs.entries[i+1].startOffset >= floor {
			// Only the entries after last (which was not dropped) are new.
			l.epochTail.Store(true)
			if err := overwriteSmallFile(l.dir, epochTailFile, l.epochs.encode(), 0); err == nil {
				l.epochsPending.Store(true)
				return
			}
			// The durable write below reports a persistent failure.
		}
	}
	l.writeEpochs()
}

// writeEpochsDurably replaces the leader epoch checkpoint with the cache
// (fsynced with fsync), removing the tail file first: after a truncation
// of the cache a tail left behind would extend the shorter checkpoint
// with epochs the log no longer has. (A crash between the two leaves new
// epochs to recovery's scan, as a machine crash may.) mu held (for
// reading at least, by flushes).
func (l *Log) writeEpochsDurably(fsync bool) error {
	if err := l.removeEpochTail(); err != nil {
		return err
	}
	if err := writeFileAtomicIO(l.io, l.dir, epochCheckpointFile, l.epochs.encode(), fsync); err != nil {
		return err
	}
	l.epochsPending.Store(false)
	return nil
}

// removeEpochTail removes the tail file if there may be one.
func (l *Log) removeEpochTail() error {
	if !l.epochTail.Load() {
		return nil
	}
	if err := os.Remove(filepath.Join(l.dir, epochTailFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: remove %s: %w", ErrIO, epochTailFile, err)
	}
	l.epochTail.Store(false)
	return nil
}

// writeEpochs writes the leader epoch checkpoint after the cache changed;
// if that fails (a full disk), the next append tries again. mu held.
//
// While every epoch in the cache starts at or above the recovery point
// (recoveryFloor: a log never flushed, whose first write this is, above
// all) the file is written without fsyncs: after a machine crash recovery
// scans every batch from the recovery point and finds those epochs again
// in the batches, so a checkpoint lost or torn by the crash loses nothing
// (Open ignores an unreadable one). The next flush fsyncs it (syncCreated)
// before it moves the recovery point past them. Otherwise the file holds
// epochs that only it knows, and is replaced durably, as before.
func (l *Log) writeEpochs() {
	fsync := true
	if first, ok := l.epochs.first(); !ok || first.startOffset >= l.recoveryFloor.Load() {
		fsync = false
	}
	write := func() error {
		if !fsync {
			// Every epoch in it is rebuilt from the batches if the file
			// is lost or torn (by a process crash between the truncation
			// and the write, too: Open ignores an unreadable checkpoint),
			// so no temporary file and rename either.
			return overwriteSmallFile(l.dir, epochCheckpointFile, l.epochs.encode(), 0)
		}
		return l.writeEpochsDurably(true)
	}
	if err := write(); err != nil {
		if !l.epochsDirty {
			l.logger.Warn("writing leader epoch checkpoint failed; retrying with the next append", "err", err)
		}
		l.epochsDirty = true
		return
	}
	l.epochsDirty = false
	if !fsync {
		l.epochsUnsynced.Store(true)
	} else {
		l.epochsUnsynced.Store(false)
	}
}
