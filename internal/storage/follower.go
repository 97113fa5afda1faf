package storage

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/stratalog/strata/internal/record"
)

// Replication primitives: what a follower needs besides Read (which a
// leader serves followers from with maxOffset = LogEndOffset).
//
//   - AppendAsFollower writes the leader's batches verbatim, keeping their
//     offsets (gaps included) and leader epochs.
//   - TruncateTo removes a divergent tail; TruncateFullyAndStartAt replaces
//     the whole log when the leader's log starts past this one's end.
//   - LatestEpoch and EndOffsetForEpoch (timestamps.go) answer and drive
//     OffsetForLeaderEpoch.
//   - SaveHighWatermark and HighWatermarkCheckpoint keep the high watermark
//     across restarts in replication-offset-checkpoint.
//
// Truncations take clean.mu (after asking a running cleaner pass to stop),
// then flushMu, then mu, so no flush, cleaner swap, retention or append runs
// while segments are cut or deleted.

// AppendAsFollower appends record batches exactly as the leader wrote them:
// the bytes are written verbatim, so base offsets, partition leader epochs
// and timestamps stay the leader's. batches holds one or more v2 batches, as
// a fetch response carries them; a trailing partial batch (a fetch response
// may end inside one) is ignored. Every whole batch is validated (header,
// length, CRC, record count against the last offset delta; empty batches and
// offset gaps, which compaction leaves, are accepted), and the first base
// offset must be at least the log end offset, each next one above the
// previous batch's last offset; otherwise nothing is appended and the error
// wraps ErrUnexpectedAppendOffset (or a record package error, or
// ErrRecordTooLarge for a batch larger than segment.bytes).
//
// Everything a leader append updates is updated: segments roll by the same
// rules (at the batch's base offset when an offset gap would not fit the
// relative offsets of a segment at the log end), the indexes, the log end
// offset, the leader epoch cache and its checkpoint (a batch's epoch newer
// than the latest starts at the batch's base offset), the producer state
// (recorded but not checked: the leader already did, as Kafka's follower),
// and the flush.messages count. Batches are written with one write per run
// that fits the active segment.
//
// The result's BaseOffset is the first appended batch's base offset and
// LastOffset the last appended batch's last offset; when no whole batch was
// given, BaseOffset is the log end offset and LastOffset one below it.
// LogAppendTime is -1 (timestamps are the leader's). If a write fails, the
// runs written before it stay appended and the result covers them.
//
// The caller serializes a follower's fetches with its truncations: batches
// fetched before a TruncateTo must not be appended after it (they would be
// accepted as if the leader's log had an offset gap).
func (l *Log) AppendAsFollower(batches []byte) (AppendResult, error) {
	if err := l.ensureLoaded(); err != nil {
		return AppendResult{}, err
	}
	hs, n, err := splitFollowerBatches(batches)
	if err != nil {
		return AppendResult{}, fmt.Errorf("storage: append as follower: %w", err)
	}
	l.mu.Lock()
	if err := l.writePendingLocked(); err != nil {
		l.mu.Unlock()
		return AppendResult{}, err
	}
	res, flushNow, err := l.appendFollowerLocked(batches[:n], hs)
	l.mu.Unlock()
	if err != nil {
		return res, err
	}
	if flushNow {
		if err := l.flush(false); err != nil {
			return res, err
		}
	}
	return res, nil
}

// splitFollowerBatches validates the whole batches at the start of b and
// returns their headers and total length; a trailing partial batch is left
// out.
func splitFollowerBatches(b []byte) ([]record.Header, int, error) {
	var hs []record.Header
	n := 0
	for len(b)-n >= record.LogOverhead {
		rest := b[n:]
		size, err := record.PeekSize(rest)
		if err != nil {
			return nil, 0, fmt.Errorf("batch at byte %d: %w", n, err)
		}
		if size > len(rest) {
			break // the partial batch a fetch response may end with
		}
		h, err := validateStored(rest[:size])
		if err != nil {
			return nil, 0, fmt.Errorf("batch at byte %d: %w", n, err)
		}
		if k := len(hs); k > 0 && h.BaseOffset <= hs[k-1].LastOffset() {
			return nil, 0, fmt.Errorf("%w: batch at byte %d has base offset %d, not above the previous batch's last offset %d",
				ErrUnexpectedAppendOffset, n, h.BaseOffset, hs[k-1].LastOffset())
		}
		hs = append(hs, h)
		n += size
	}
	return hs, n, nil
}

// appendFollowerLocked writes the batches b described by hs; mu held. It
// reports whether flush.messages is reached.
func (l *Log) appendFollowerLocked(b []byte, hs []record.Header) (AppendResult, bool, error) {
	if err := l.errClosedOrFailed(); err != nil {
		return AppendResult{}, false, err
	}
	leo := l.leo.Load()
	res := AppendResult{BaseOffset: leo, LastOffset: leo - 1, LogAppendTime: -1, LogStartOffset: l.logStart}
	if len(hs) == 0 {
		return res, false, nil
	}
	if err := l.ensureAppendable(); err != nil {
		return res, false, err
	}
	if hs[0].BaseOffset < leo {
		return res, false, fmt.Errorf("%w: batch base offset %d is below the log end offset %d", ErrUnexpectedAppendOffset, hs[0].BaseOffset, leo)
	}
	cfg := &l.cfg
	for i := range hs {
		if size := hs[i].Size(); int64(size) > cfg.SegmentBytes || size > math.MaxInt32 {
			return res, false, fmt.Errorf("%w: batch at offset %d has %d bytes, segment.bytes is %d", ErrRecordTooLarge, hs[i].BaseOffset, size, cfg.SegmentBytes)
		}
	}

	nowMs := l.nowMs()
	epochsChanged := false
	var err error
	for i := 0; i < len(hs); {
		if err = l.maybeRollFollower(&hs[i], nowMs); err != nil {
			break
		}
		// The run: the batches from i on that fit the active segment.
		s := l.active()
		pos := s.size.Load()
		firstTs := s.firstBatchTs
		if pos == 0 {
			firstTs = hs[i].MaxTimestamp
		}
		end := pos + int64(hs[i].Size())
		j := i + 1
		for j < len(hs) && !l.rollDue(s, end, firstTs, j-i, &hs[j], nowMs) {
			end += int64(hs[j].Size())
			j++
		}
		run := b[:end-pos]
		start := pos
		if n, werr := s.writeAt(l.io, run, pos); werr != nil {
			// Cut off whatever part was written so the file stays whole batches.
			if l.cutBack(s, pos, werr) && pos == 0 && s.base > l.leo.Load() {
				// A segment rolled at a gap stays empty: the log ends at its
				// base, as it will after a restart.
				l.leo.Store(s.base)
			}
			err = fmt.Errorf("%w: append as follower to %s: wrote %d of %d bytes: %w", ErrIO, s.path(logSuffix), n, len(run), werr)
			break
		}
		for k := i; k < j; k++ {
			h := &hs[k]
			s.track(h, pos, cfg.IndexIntervalBytes)
			if h.HasProducerID() {
				var ci *controlInfo
				if h.IsControl() {
					// Validated by splitFollowerBatches; a control record
					// that does not parse is not a marker.
					if c, marker, cerr := parseControl(run[pos-start : pos-start+int64(h.Size())]); cerr == nil && marker {
						ci = &c
					} else if cerr != nil {
						l.logger.Warn("replicated control batch does not parse", "offset", h.BaseOffset, "err", cerr)
					}
				}
				l.completeTxn(s, l.producers.update(h, ci, nowMs, cfg.ProducerIDExpiryMs))
				l.noteTxns()
			}
			pos += int64(h.Size())
			if l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
				epochsChanged = true
			}
			l.unflushed += int64(h.NumRecords)
		}
		s.size.Store(pos)
		l.leo.Store(hs[j-1].LastOffset() + 1)
		l.directEnd = l.leo.Load()
		if i == 0 {
			res.BaseOffset = hs[0].BaseOffset
		}
		res.LastOffset = hs[j-1].LastOffset()
		b = b[len(run):]
		i = j
	}
	if epochsChanged || l.epochsDirty {
		l.writeEpochs()
	}
	res.LogStartOffset = l.logStart
	return res, l.unflushed >= cfg.FlushMessages, err
}

// maybeRollFollower rolls before the follower batch h when the leader rules
// say so, or when h's offsets do not fit relative to the (empty) active
// segment's base. The new segment starts at the log end offset, or at h's
// base offset when h would not fit a segment starting at the log end.
func (l *Log) maybeRollFollower(h *record.Header, nowMs int64) error {
	s := l.active()
	size := s.size.Load()
	if !l.rollDue(s, size, s.firstBatchTs, 0, h, nowMs) && (size > 0 || h.LastOffset()-s.base <= math.MaxInt32) {
		return nil
	}
	base := l.leo.Load()
	if h.LastOffset()-base > math.MaxInt32 {
		base = h.BaseOffset
	}
	return l.rollAt(base)
}

// lockForTruncation stops a running cleaner pass and takes clean.mu,
// flushMu and mu, in that order. The returned function releases them.
func (l *Log) lockForTruncation() func() {
	l.clean.abort.Add(1)
	l.clean.mu.Lock()
	l.clean.abort.Add(-1)
	l.flushMu.Lock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		l.flushMu.Unlock()
		l.clean.mu.Unlock()
	}
}

// journalBarrier, before a truncation changes the log (locks of
// lockForTruncation held): the journaled tail goes to the segment, and
// the journal records that the log's earlier frames must not be replayed
// (they may hold the offsets the truncation removes, which a replay would
// otherwise put back).
func (l *Log) journalBarrier() error {
	if l.opts.Journal == nil {
		return nil
	}
	if err := l.writePendingLocked(); err != nil {
		return err
	}
	return l.opts.Journal.barrier(l)
}

// TruncateTo removes every record at or above offset, as a follower does
// with a tail that diverged from its leader; offset at or past the log end
// changes nothing. A batch holding offset (base < offset <= last) is removed
// whole, so the log end afterwards is the end of the last batch kept: at
// most offset (less after an offset gap), but never below the log start
// (when the batch cut holds the log start, the log continues empty there).
// An offset below the log start is ErrOffsetOutOfRange: use
// TruncateFullyAndStartAt.
//
// Segments based at or above offset are deleted (the first segment is
// emptied rather than deleted), the one holding offset is cut at the batch
// boundary and its indexes trimmed, the leader epoch cache and its
// checkpoint lose the epochs starting at or after the new end, the producer
// state is rebuilt from the newest producer snapshot at or below the new
// end plus a replay of the batches after it (snapshots above the new end
// are deleted; without a snapshot the replay starts at the log start), and
// the recovery point, durable offset and cleaner checkpoint are pulled down
// to the new end. A running cleaner pass is stopped first (without effect)
// and waited for.
//
// Concurrent readers are safe: a ReadResult (and ForEachBatch and the
// timestamp lookups) keeps reading the bytes it found, because deleted
// segments stay open until released and a segment that some reader holds
// is not cut in place: its kept part is copied to a new file that replaces
// it, and the old file stays readable until the last reader releases it.
// Appends wait for the truncation and continue at the new end.
func (l *Log) TruncateTo(offset int64) error {
	if err := l.ensureLoaded(); err != nil {
		return err
	}
	unlock := l.lockForTruncation()
	defer unlock()
	if err := l.errClosedOrFailed(); err != nil {
		return err
	}
	leo := l.leo.Load()
	if offset >= leo {
		return nil
	}
	if err := l.ensureWritable(); err != nil {
		return err
	}
	if err := l.journalBarrier(); err != nil {
		return fmt.Errorf("storage: truncate to %d: %w", offset, err)
	}
	if offset < l.logStart {
		return fmt.Errorf("storage: truncate to %d: %w: below the log start %d (truncate fully instead)", offset, ErrOffsetOutOfRange, l.logStart)
	}
	// The segment that keeps data: the last based below offset (or the
	// first, which TruncateTo empties but keeps).
	k := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= offset })-1, 0)
	s := l.segs[k]
	hdr := make([]byte, record.HeaderSize)
	cut, size := s.size.Load(), s.size.Load()
	if offset < s.next {
		pos := int64(0)
		if offset > s.base {
			pos = s.offIdx.lookup(offset - s.base)
		}
		var bpos int64
		var found bool
		err := s.withFile(func(f *os.File) (err error) {
			bpos, _, found, err = findBatch(f, pos, size, offset, hdr)
			return err
		})
		if err != nil {
			return fmt.Errorf("storage: truncate to %d: %w: %s: %w", offset, ErrCorruptSegment, s.path(logSuffix), err)
		}
		if found {
			cut = bpos
		}
	}
	l.logger.Info("truncating log", "offset", offset, "log_end", leo, "segments_deleted", len(l.segs)-k-1, "segment", fileName(s.base, logSuffix), "position", cut)

	// From here a crash leaves a partly truncated log. Pull the recovery
	// point down first, so the next Open rescans whatever is left of the
	// tail (and finds its epochs again) instead of trusting it.
	if err := l.lowerRecoveryPoint(offset); err != nil {
		return err
	}
	// Errors from here on are collected: the in-memory state is always
	// brought in line with the segments that are left.
	var errs []error
	if k+1 < len(l.segs) {
		doomed := l.segs[k+1:]
		l.segs = slices.Clone(l.segs[:k+1])
		for _, d := range doomed {
			if err := d.markDeleted(); err != nil {
				errs = append(errs, err)
			}
			d.release()
		}
		// The renames must not come back after a machine crash once new
		// data overlaps the deleted offsets.
		if err := syncDir(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if cut < size {
		if err := l.cutSegment(k, cut, hdr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.afterTruncation(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: truncate to %d: %w", offset, err)
	}
	return nil
}

// lowerRecoveryPoint moves the recovery point (and its checkpoint) down to
// off if it is above; flushMu held.
func (l *Log) lowerRecoveryPoint(off int64) error {
	if l.recovery <= off {
		return nil
	}
	if err := writeOffsetCheckpoint(l.dir, recoveryCheckpointFile, off); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	l.recovery = off
	return nil
}

// afterTruncation brings the state that refers to offsets up to date with
// the new active segment's end, in memory first, then in the checkpoints;
// clean.mu, flushMu and mu held. State it cannot rebuild fails the log.
func (l *Log) afterTruncation() error {
	var errs []error
	if end := l.active().next; end < l.logStart {
		// The batch cut held the log start (DeleteRecords moved it inside
		// a batch, or into an offset gap): what is left lies below the log
		// start. Continue empty at the log start, as the next Open would,
		// without the producer snapshots above the data.
		err := removeSnapshotsAbove(l.dir, end)
		l.snaps.removedAbove(end, err)
		if err != nil {
			errs = append(errs, err)
		}
		s, err := l.newSegment(l.logStart, true)
		if err != nil {
			l.failed = fmt.Errorf("%w: truncation left the log end %d below the log start %d: %w", ErrIO, end, l.logStart, err)
			l.logger.Error("log failed", "err", l.failed)
			return l.failed
		}
		s.onClose = l.reportCloseError
		l.active().finishTimeIndex()
		l.segs = append(l.segs, s)
	}
	leo := l.active().next
	l.leo.Store(leo)
	if l.durable.Load() > leo {
		l.durable.Store(leo)
	}
	l.truncGen++
	epochsChanged := l.epochs.truncateFromEnd(leo)
	l.producers = newProducerState()
	if _, err := l.loadProducerState(); err != nil {
		l.failed = fmt.Errorf("rebuild producer state after truncation: %w", err)
		l.logger.Error("log failed", "err", l.failed)
		errs = append(errs, l.failed)
	}
	l.loadCleanerCheckpoint()
	cleanerChanged := l.clean.firstDirty > leo
	if cleanerChanged {
		l.clean.firstDirty = leo
	}

	if err := l.lowerRecoveryPoint(leo); err != nil {
		errs = append(errs, err)
	}
	if epochsChanged {
		if err := l.writeEpochsDurably(true); err != nil {
			errs = append(errs, err)
		}
	}
	if cleanerChanged {
		cp := fmt.Appendf(nil, "1\n%d %d\n", leo, l.clean.nextHorizon)
		if err := writeFileAtomic(l.dir, cleanerCheckpointFile, cp, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeSnapshotsAbove deletes the producer snapshots above off.
func removeSnapshotsAbove(dir string, off int64) error {
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	for _, o := range offs {
		if o <= off {
			continue
		}
		if err := os.Remove(filepath.Join(dir, fileName(o, snapshotSuffix))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove producer snapshot: %w", err)
		}
	}
	return nil
}

// cutSegment removes the batches of l.segs[k] from position cut (a batch
// boundary) on; flushMu and mu held. A segment no reader holds is truncated
// in place; otherwise the kept part is copied to a new file that is renamed
// over it, so readers keep the old bytes. The log file is fsynced and the
// index files are removed, to be rewritten whole by the next flush.
func (l *Log) cutSegment(k int, cut int64, hdr []byte) error {
	s := l.segs[k]
	var errs []error
	if s.refs.Load() > 1 {
		ns, err := copySegmentPrefix(s, cut)
		if ns == nil {
			return err // nothing changed
		}
		errs = append(errs, err)
		ns.onClose = l.reportCloseError
		l.adopt(ns)
		l.segs[k] = ns
		s.release() // not deleted: its name now belongs to ns
		s = ns
	} else {
		f, err := s.file()
		if err != nil {
			return fmt.Errorf("%w: truncate %s: %w", ErrIO, s.path(logSuffix), err)
		}
		defer s.unpin()
		if err := f.Truncate(cut); err != nil {
			return fmt.Errorf("%w: truncate %s: %w", ErrIO, s.path(logSuffix), err)
		}
		s.size.Store(cut)
		s.syncedSize = min(s.syncedSize, cut)
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("fsync %s: %w", s.path(logSuffix), err))
		} else {
			s.syncedSize = cut
		}
	}
	if err := s.trimTo(cut, hdr); err != nil {
		l.failed = fmt.Errorf("%w: %s: reindexing after truncation: %w", ErrCorruptSegment, s.path(logSuffix), err)
		l.logger.Error("log failed", "err", l.failed)
		return errors.Join(append(errs, l.failed)...)
	}
	if cut == 0 {
		s.created = l.now()
	}
	s.txn.trim(s.next)
	for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
		if err := os.Remove(s.path(suf)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove stale index: %w", err))
		}
	}
	return errors.Join(errs...)
}

// copySegmentPrefix writes the first cut bytes of s to a new file that
// replaces s's log file, and returns the new segment with s's in-memory
// indexes (to be trimmed by the caller). Once the new file has replaced the
// old one the segment is returned, even with an error (a failed directory
// fsync); a nil segment means nothing changed.
func copySegmentPrefix(s *segment, cut int64) (*segment, error) {
	tmp := s.path(logSuffix + tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("copy kept part of %s: %w", s.path(logSuffix), err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("copy kept part of %s: %w", s.path(logSuffix), err)
	}
	src, err := s.file()
	if err != nil {
		return fail(err)
	}
	n, err := io.Copy(f, io.NewSectionReader(src, 0, cut))
	s.unpin()
	if err != nil || n != cut {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, s.path(logSuffix)); err != nil {
		return fail(err)
	}
	ns := &segment{
		dir: s.dir, base: s.base, f: f, next: s.next,
		offIdx:       offsetIndex{buf: slices.Clone(s.offIdx.buf)},
		timeIdx:      timeIndex{buf: slices.Clone(s.timeIdx.buf)},
		txn:          txnIndex{entries: slices.Clone(s.txn.entries), buf: slices.Clone(s.txn.buf)},
		firstBatchTs: s.firstBatchTs,
		created:      s.created,
		syncedSize:   cut,
	}
	ns.size.Store(cut)
	ns.refs.Store(1)
	if err := syncDir(s.dir); err != nil {
		return ns, fmt.Errorf("copy kept part of %s: %w", s.path(logSuffix), err)
	}
	return ns, nil
}

// trimTo drops the index entries and statistics of the batches at or after
// position cut, which the log file no longer has, and recomputes the
// segment's end, largest timestamp and bytes since the last index entry
// from the entries kept and the headers after the last offset index entry
// (as Kafka's LogSegment.truncateTo). The indexes are marked unwritten.
// mu held.
func (s *segment) trimTo(cut int64, hdr []byte) error {
	n := sort.Search(s.offIdx.entries(), func(i int) bool {
		_, p := s.offIdx.entry(i)
		return int64(p) >= cut
	})
	s.offIdx = offsetIndex{buf: slices.Clone(s.offIdx.buf[:n*offsetEntrySize])}
	pos := int64(0)
	if n > 0 {
		_, p := s.offIdx.entry(n - 1)
		pos = int64(p)
	}
	// The headers from the last indexed batch to the cut.
	f, err := s.file()
	if err != nil {
		return err
	}
	defer s.unpin()
	next, bytesSince := s.base, int64(0)
	scanTs, scanTsOffset := int64(-1), int64(-1)
	for pos < cut {
		h, err := readHeader(f, pos, hdr)
		if err != nil {
			return err
		}
		if h.MaxTimestamp > scanTs {
			scanTs, scanTsOffset = h.MaxTimestamp, h.LastOffset()
		}
		next = h.LastOffset() + 1
		bytesSince += int64(h.Size())
		pos += int64(h.Size())
	}
	if pos != cut {
		return fmt.Errorf("batch boundary expected at position %d, found %d", cut, pos)
	}
	// Time index entries name the batch holding the largest timestamp so
	// far; keep those of batches kept. The last one kept covers every batch
	// up to the last offset index entry.
	m := sort.Search(s.timeIdx.entries(), func(i int) bool {
		_, rel := s.timeIdx.entry(i)
		return s.base+int64(rel) >= next
	})
	s.timeIdx = timeIndex{buf: slices.Clone(s.timeIdx.buf[:m*timeEntrySize])}
	s.maxTs, s.maxTsOffset = -1, -1
	if m > 0 {
		ts, rel := s.timeIdx.entry(m - 1)
		s.maxTs, s.maxTsOffset = ts, s.base+int64(rel)
	}
	if scanTs > s.maxTs {
		s.maxTs, s.maxTsOffset = scanTs, scanTsOffset
	}
	s.next = next
	s.bytesSinceIndex = bytesSince
	if cut == 0 {
		s.firstBatchTs = -1
	}
	return nil
}

// TruncateFullyAndStartAt deletes every segment and starts an empty log at
// offset, which becomes the log start and end offset: what a follower does
// when the offset it needs is below the leader's log start. The leader epoch
// cache and the producer state are cleared (their checkpoint and snapshots
// removed), and the log start, recovery point and cleaner checkpoints are
// set to offset. Readers holding deleted segments keep reading them until
// they release them. A running cleaner pass is stopped first.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
	if err := l.ensureLoaded(); err != nil {
		return err
	}
	unlock := l.lockForTruncation()
	defer unlock()
	if err := l.errClosedOrFailed(); err != nil {
		return err
	}
	if offset < 0 {
		return fmt.Errorf("storage: truncate fully and start at %d: %w", offset, ErrOffsetOutOfRange)
	}
	if err := l.ensureWritable(); err != nil {
		return err
	}
	if err := l.journalBarrier(); err != nil {
		return fmt.Errorf("storage: truncate fully: %w", err)
	}
	l.logger.Info("truncating log fully", "new_start", offset, "log_start", l.logStart, "log_end", l.leo.Load())
	// The recovery point first: a crash midway rescans what is left.
	if err := l.lowerRecoveryPoint(min(offset, l.segs[0].base)); err != nil {
		return err
	}
	var errs []error
	doomed := l.segs
	l.segs = nil
	for _, d := range doomed {
		if err := d.markDeleted(); err != nil {
			errs = append(errs, err)
		}
		d.release()
	}
	if err := syncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	s, err := l.newSegment(offset, true)
	if err != nil {
		// No segment at all: the log cannot go on.
		l.failed = fmt.Errorf("%w: truncate fully: %w", ErrIO, err)
		l.logger.Error("log failed", "err", l.failed)
		return fmt.Errorf("storage: truncate fully and start at %d: %w", offset, errors.Join(append(errs, err)...))
	}
	s.onClose = l.reportCloseError
	l.segs = []*segment{s}
	l.leo.Store(offset)
	l.durable.Store(offset)
	l.truncGen++
	l.logStart = offset
	l.epochs = epochCache{}
	l.producers = newProducerState()
	l.loadCleanerCheckpoint()
	l.clean.firstDirty, l.clean.nextHorizon = offset, 0

	if err := writeOffsetCheckpoint(l.dir, logStartCheckpointFile, offset); err != nil {
		errs = append(errs, err)
	}
	l.raiseRecoveryFloor(offset)
	if err := writeOffsetCheckpoint(l.dir, recoveryCheckpointFile, offset); err != nil {
		errs = append(errs, err)
	} else {
		l.recovery = offset
	}
	if err := l.writeEpochsDurably(true); err != nil {
		errs = append(errs, err)
	}
	rerr := removeSnapshotsAbove(l.dir, -1)
	l.snaps.removedAbove(-1, rerr)
	if rerr != nil {
		errs = append(errs, rerr)
	}
	if err := writeFileAtomic(l.dir, cleanerCheckpointFile, fmt.Appendf(nil, "1\n%d 0\n", offset), true); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("storage: truncate fully and start at %d: %w", offset, err)
	}
	return nil
}

// LatestEpoch returns the latest leader epoch in the leader epoch cache,
// the epoch of the newest batch that started one (truncations drop the
// epochs whose batches they removed), or (-1, false) when the cache is
// empty. A replica becoming follower sends it in OffsetForLeaderEpoch.
func (l *Log) LatestEpoch() (epoch int32, ok bool) {
	_ = l.ensureLoaded() // a failed load leaves the log failed and empty
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.epochs.latest()
	if !ok {
		return -1, false
	}
	return e.epoch, true
}

// SaveHighWatermark records the partition's high watermark in
// replication-offset-checkpoint ("0\n<offset>\n"), replaced atomically by a
// rename. It does not fsync (the replication layer calls it often): after a
// machine crash the file may hold an earlier value, or be unreadable, in
// which case Open ignores it. Concurrent calls are serialized.
func (l *Log) SaveHighWatermark(hw int64) error {
	l.hwMu.Lock()
	defer l.hwMu.Unlock()
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if hw == l.hw.Load() {
		return nil // the checkpoint says so already
	}
	l.mu.Lock()
	var err error
	if l.noDir {
		err = l.createOnDisk()
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: save high watermark: create log %s: %w", l.dir, err)
	}
	data := strconv.AppendInt([]byte("0\n"), hw, 10)
	data = append(data, '\n')
	prev := l.hwFileLen
	l.hwFileLen = -1 // unknown until the write below succeeds
	if err := overwriteSmallFile(l.dir, replicationCheckpointFile, data, prev); err != nil {
		return fmt.Errorf("storage: save high watermark: %w", err)
	}
	l.hwFileLen = len(data)
	l.hw.Store(hw)
	return nil
}

// overwriteSmallFile replaces the content of dir/name, a file of less than
// a sector, in place with one write (and a truncation if it got shorter
// than prevLen, the length of its content as last written by this process,
// or 0 or less if unknown), or creates it if it does not exist yet. It does
// not fsync. A process crash sees the old or the new
// content (the write is one copy into one page); a machine crash may leave
// either or, in theory, an unreadable file, which readers of unsynced
// checkpoints must tolerate anyway. Cheaper than a new file and a rename
// (no inode, no directory change), which matters for the high watermarks
// of thousands of partitions, checkpointed every few seconds: a growing
// offset never needs the truncation (issue 14).
func overwriteSmallFile(dir, name string, data []byte, prevLen int) error {
	path := filepath.Join(dir, name)
	// A new file is created in place as well: a process crash between the
	// create and the write leaves it empty, which a reader takes as
	// unreadable, as it would take no file.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%w: open %s: %w", ErrIO, name, err)
	}
	_, werr := f.WriteAt(data, 0)
	if werr == nil && (prevLen <= 0 || len(data) < prevLen) {
		werr = f.Truncate(int64(len(data)))
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrIO, name, err)
	}
	return nil
}

// HighWatermarkCheckpoint returns the high watermark last saved by
// SaveHighWatermark (or read from replication-offset-checkpoint at Open; 0
// when there was none), kept between the log start and end offsets, as
// Kafka bounds a high watermark it loads.
func (l *Log) HighWatermarkCheckpoint() int64 {
	l.mu.RLock()
	start := l.logStart
	l.mu.RUnlock()
	return min(max(l.hw.Load(), start), l.leo.Load())
}

// loadHighWatermark reads replication-offset-checkpoint at Open, unless
// the caller gave it (Options.HighWatermarkGiven).
func (l *Log) loadHighWatermark() {
	if l.opts.HighWatermarkGiven {
		l.hw.Store(l.opts.HighWatermark)
		return
	}
	hw, err := readOffsetCheckpoint(l.dir, replicationCheckpointFile, 0)
	if err != nil {
		l.logger.Warn("ignoring unreadable high watermark checkpoint", "err", err)
		hw = 0
	}
	l.hw.Store(hw)
}
