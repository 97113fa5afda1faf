package storage

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/stratalog/strata/internal/record"
)

// loadSegments opens the segments at bases. After an unclean shutdown every
// segment from the one holding the recovery point on is recovered: scanned
// with CRC checks, truncated at the first torn or invalid batch (later
// segments are then dropped) and reindexed. Other segments keep their
// indexes if these pass a sanity check, else they are rebuilt by a scan in
// which any invalid batch is an ErrCorruptSegment. It reports whether any
// segment was recovered or rebuilt.
func (l *Log) loadSegments(bases []int64, clean bool) (bool, error) {
	now := l.now()
	recovered := false
	for i, base := range bases {
		s, err := openSegment(l.dir, base, now, false, l.opts.FDCache)
		if err != nil {
			return recovered, err
		}
		l.segs = append(l.segs, s)
		if i > 0 {
			if prev := l.segs[i-1]; base < prev.next {
				return recovered, fmt.Errorf("%w: segment %s starts at offset %d, inside the previous segment (which ends at %d)",
					ErrCorruptSegment, s.path(logSuffix), base, prev.next)
			}
		}
		last := i == len(bases)-1
		needRecovery := !clean && (last || bases[i+1] > l.recovery)
		if !needRecovery {
			err := l.loadIndexes(s, last)
			if err == nil {
				recovered = recovered || l.rebuilt
				if terr := s.loadTxnIndex(); terr != nil {
					l.logger.Warn("rebuilding transaction index", "segment", s.path(txnIndexSuffix), "reason", terr.Error())
					s.txnRebuild = true
				}
				continue
			}
			if !last || !errors.Is(err, ErrCorruptSegment) {
				return recovered, err
			}
			// The active segment of a cleanly closed log has a bad tail:
			// recover it rather than refuse to start.
			l.logger.Warn("active segment failed its checks after a clean shutdown; recovering it", "err", err)
		}
		recovered = true
		truncated, err := l.recoverSegment(s)
		if err != nil {
			return recovered, err
		}
		s.txnRebuild = true
		if !last && !truncated {
			s.finishTimeIndex()
		}
		if truncated && !last {
			for _, b := range bases[i+1:] {
				l.logger.Warn("deleting segment after a truncated one", "segment", fileName(b, logSuffix))
				for _, suf := range segmentSuffixes {
					if err := os.Remove(filepath.Join(l.dir, fileName(b, suf))); err != nil && !errors.Is(err, os.ErrNotExist) {
						return recovered, fmt.Errorf("delete segment after truncation: %w", err)
					}
				}
			}
			break
		}
	}
	return recovered, nil
}

// loadIndexes reads a segment's index files and checks them; if they are
// missing or inconsistent they are rebuilt by a strict scan (but for the
// short active segment whose entries a deferred close left to the load:
// smallIndexTail). It also finds the segment's next offset by walking the
// headers after the last index entry, making the entries the files lack,
// and its timestamps.
func (l *Log) loadIndexes(s *segment, last bool) error {
	size := s.size.Load()
	f, err := s.file()
	if err != nil {
		return err
	}
	defer s.unpin()
	bad := func() error {
		ob, err := os.ReadFile(s.path(indexSuffix))
		if errors.Is(err, os.ErrNotExist) && (size <= int64(l.cfg.IndexIntervalBytes) || (last && size <= smallIndexTailBytes)) {
			// Too small to have had an entry, or an active segment whose
			// entries a deferred close left to this load (smallIndexTail):
			// the walk below makes them. A larger one missing its index is
			// rebuilt, with every batch's CRC checked.
			ob, err = nil, nil
		}
		if err != nil {
			return err
		}
		s.offIdx = offsetIndex{buf: ob, written: len(ob)}
		if err := s.offIdx.check(size); err != nil {
			return err
		}
		tb, err := os.ReadFile(s.path(timeIndexSuffix))
		if errors.Is(err, os.ErrNotExist) && (size == 0 || (last && size <= smallIndexTailBytes)) {
			tb, err = nil, nil // as the offset index's
		}
		if err != nil {
			return err
		}
		s.timeIdx = timeIndex{buf: tb, written: len(tb)}
		if len(tb)%timeEntrySize != 0 {
			return fmt.Errorf("time index size %d is not a multiple of %d", len(tb), timeEntrySize)
		}
		if n := s.timeIdx.entries(); n > 0 {
			ts, rel := s.timeIdx.entry(n - 1)
			s.maxTs, s.maxTsOffset = ts, s.base+int64(rel)
		}
		// Walk the headers after the last indexed batch to find the end
		// (and any larger timestamp the time index does not have yet),
		// making the index entries the files do not have as the appends
		// made them (track): a deferred close may leave a short tail of
		// them unwritten (smallIndexTail). They are written by the next
		// full flush (written stays at what the files hold).
		interval := int64(l.cfg.IndexIntervalBytes)
		pos := int64(0)
		if n := s.offIdx.entries(); n > 0 {
			rel, p := s.offIdx.entry(n - 1)
			h, err := readHeader(f, int64(p), make([]byte, record.HeaderSize))
			if err != nil || h.LastOffset() != s.base+int64(rel) {
				return fmt.Errorf("last offset index entry (%d, %d) does not match the batch there", rel, p)
			}
			pos = int64(p)
		}
		hr := headerReader{f: f}
		next := s.base
		for pos < size {
			h, err := hr.header(pos, size)
			if err != nil || pos+int64(h.Size()) > size || h.BaseOffset < next {
				return fmt.Errorf("%w: %s: invalid batch header at position %d", ErrCorruptSegment, s.path(logSuffix), pos)
			}
			if pos == 0 {
				s.firstBatchTs = h.MaxTimestamp
			}
			if h.MaxTimestamp > s.maxTs {
				s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.LastOffset()
			}
			if s.bytesSinceIndex > interval {
				s.offIdx.append(int32(h.LastOffset()-s.base), int32(pos))
				if s.maxTs >= 0 {
					s.timeIdx.maybeAppend(s.maxTs, int32(s.maxTsOffset-s.base))
				}
				s.bytesSinceIndex = 0
			}
			next = h.LastOffset() + 1
			s.bytesSinceIndex += int64(h.Size())
			pos += int64(h.Size())
		}
		s.next = next
		if err := s.timeIdx.check(next - 1 - s.base); err != nil {
			return err
		}
		if s.firstBatchTs < 0 && size > 0 {
			if h, err := hr.header(0, size); err == nil {
				s.firstBatchTs = h.MaxTimestamp
			}
		}
		return nil
	}()
	if bad == nil {
		return nil
	}
	if errors.Is(bad, ErrCorruptSegment) {
		return bad
	}
	l.logger.Info("rebuilding segment indexes", "segment", s.path(logSuffix), "reason", bad.Error())
	l.rebuilt = true
	end, scanErr := l.scanSegment(s)
	if scanErr != nil {
		return scanErr
	}
	if end != size {
		return fmt.Errorf("%w: %s: invalid batch at position %d", ErrCorruptSegment, s.path(logSuffix), end)
	}
	return nil
}

// scanSegment rebuilds a segment's indexes and statistics by reading every
// batch and checking its CRC. It returns the position after the last valid
// batch. I/O errors are returned as errors; invalid data just ends the scan.
func (l *Log) scanSegment(s *segment) (int64, error) {
	from := l.scanEpochs
	end, err := l.scanSegmentTo(s, s.size.Load())
	if err != nil || l.scanEpochs.cut < 0 {
		return end, err
	}
	// An earlier batch of the segment is the damaged one: scan again, up
	// to it, so that the segment's indexes and offsets end there.
	cut := l.scanEpochs.cut
	l.scanEpochs = from
	l.scanEpochs.cut = -1
	return l.scanSegmentTo(s, cut)
}

// A pidBatch is a batch with a producer id that Open's scan of a segment
// keeps for the producer state replay (segment.pidBatches): its header and,
// for a transaction marker, what the marker says.
type pidBatch struct {
	h      record.Header
	ci     controlInfo
	marker bool  // a control batch holding a transaction marker (ci)
	ctlErr error // a control batch that does not parse
}

// pidBatchesMax bounds the batches a segment keeps for the replay (about
// 100 bytes each); a segment with more is read again instead.
const pidBatchesMax = 1 << 16

// keepPIDBatch adds a valid scanned batch with a producer id to
// s.pidBatches.
func (s *segment) keepPIDBatch(h *record.Header, b []byte) {
	if !s.pidScanned {
		return
	}
	if len(s.pidBatches) >= pidBatchesMax {
		s.pidBatches, s.pidScanned = nil, false
		return
	}
	pb := pidBatch{h: *h}
	if h.IsControl() {
		pb.ci, pb.marker, pb.ctlErr = parseControl(b)
	}
	s.pidBatches = append(s.pidBatches, pb)
}

// scanSegmentTo is scanSegment over the segment's first size bytes.
func (l *Log) scanSegmentTo(s *segment, size int64) (int64, error) {
	s.resetIndexes()
	s.pidBatches, s.pidScanned = s.pidBatches[:0], true
	f, err := s.file()
	if err != nil {
		return 0, err
	}
	defer s.unpin()
	if l.scratch == nil {
		l.scratch = l.opts.ScanBuffers.get()
	}
	br := newBatchReader(f, 0, size, l.scratch)
	defer func() { l.scratch = br.buf }()
	for {
		b, pos, err := br.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTorn) {
			return pos, nil
		}
		if err != nil {
			return pos, err
		}
		h, err := validateStored(b)
		if err != nil || h.BaseOffset < s.next || h.LastOffset()-s.base > 1<<31-1 {
			l.logger.Warn("invalid batch in segment", "segment", s.path(logSuffix), "position", pos, "err", err)
			return pos, nil
		}
		if bad, at := l.scanEpochs.check(s, pos, h.PartitionLeaderEpoch); bad {
			l.logger.Warn("leader epochs out of order in segment: a partition leader epoch field (which the CRC does not cover) is damaged",
				"segment", s.path(logSuffix), "position", pos, "epoch", h.PartitionLeaderEpoch, "valid_bytes", at)
			return at, nil
		}
		s.track(&h, pos, l.cfg.IndexIntervalBytes)
		if h.HasProducerID() {
			s.keepPIDBatch(&h, b)
		}
		if l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
			l.logger.Debug("leader epoch from recovered batch", "epoch", h.PartitionLeaderEpoch, "start_offset", h.BaseOffset)
		}
	}
}

// recoverSegment scans a segment, truncates it after its last valid batch
// and rewrites its indexes. It reports whether anything was cut off.
func (l *Log) recoverSegment(s *segment) (bool, error) {
	size := s.size.Load()
	end, err := l.scanSegment(s)
	if err != nil {
		return false, err
	}
	if end == size {
		// The index files on disk are an earlier process's and are not
		// read again before the next full flush rewrites them (a crash
		// before it recovers this segment again): leave them to it
		// rather than unlink them now, which costs a restart after a
		// crash two unlinks per log (and their discards, on a file system
		// mounted with discard).
		s.staleIdx = true
		return false, nil
	}
	os.Remove(s.path(indexSuffix))
	os.Remove(s.path(timeIndexSuffix))
	l.logger.Warn("truncating torn or corrupt segment tail", "segment", s.path(logSuffix), "valid_bytes", end, "dropped_bytes", size-end)
	f, err := s.file()
	if err != nil {
		return false, err
	}
	defer s.unpin()
	if err := f.Truncate(end); err != nil {
		return false, fmt.Errorf("truncate %s: %w", s.path(logSuffix), err)
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("fsync %s: %w", s.path(logSuffix), err)
	}
	s.size.Store(end)
	s.syncedSize = end
	return true, nil
}

// loadProducerState loads the newest valid snapshot at or below the log end
// and replays the batches after it (from the log start when there is none).
// Snapshots past the log end are deleted. Segments whose transaction index
// is to be rebuilt (txnRebuild) get it from the replay, which then starts
// at or below the first of them; it reports whether it rebuilt any.
func (l *Log) loadProducerState() (bool, error) {
	leo := l.leo.Load()
	rebuildFrom := int64(math.MaxInt64)
	for _, s := range l.segs {
		if s.txnRebuild {
			rebuildFrom = s.base
			break
		}
	}
	var offs []int64
	var err error
	if l.openSnapsListed {
		offs = l.openSnaps
		slices.Sort(offs)
		l.openSnaps, l.openSnapsListed = nil, false
	} else if offs, err = listSnapshots(l.dir); err != nil {
		return false, err
	}
	from := int64(-1)
	l.snaps.set(offs)
	drop := func(off int64, name string) { // from the directory and the list
		err := os.Remove(name)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			l.snaps.known = false
			return
		}
		if j, found := slices.BinarySearch(l.snaps.offs, off); found {
			l.snaps.offs = slices.Delete(l.snaps.offs, j, j+1)
		}
	}
	for i := len(offs) - 1; i >= 0; i-- {
		name := filepath.Join(l.dir, fileName(offs[i], snapshotSuffix))
		if offs[i] > leo {
			drop(offs[i], name)
			continue
		}
		if offs[i] > rebuildFrom {
			continue
		}
		b, err := ReadSmallFile(name)
		if err == nil {
			var p producerState
			if p, err = decodeSnapshot(b, offs[i]); err == nil {
				l.producers = p
				from = offs[i]
				break
			}
		}
		l.logger.Warn("ignoring producer snapshot", "file", name, "err", err)
		drop(offs[i], name)
	}
	nowMs := l.nowMs()
	if from < l.logStart {
		if from >= 0 {
			l.logger.Info("producer snapshot is below the log start; replaying", "snapshot", from)
			l.producers = newProducerState()
		}
		from = l.segs[0].base
	}
	rebuilt := false
	var buf, hbuf []byte
	var pins pinSet
	defer pins.release()
	replay := func(s *segment, h *record.Header, ci *controlInfo) {
		c := l.producers.update(h, ci, nowMs, -1)
		if s.txnRebuild {
			l.completeTxn(s, c)
		}
	}
	for i := l.segmentFor(from); i < len(l.segs); i++ {
		s := l.segs[i]
		if s.txnRebuild {
			s.txn.reset()
		}
		if s.pidScanned {
			// Open scanned this segment whole: replay what it kept.
			for k := range s.pidBatches {
				pb := &s.pidBatches[k]
				if pb.h.LastOffset() < from {
					continue
				}
				var ci *controlInfo
				if pb.ctlErr != nil {
					l.logger.Warn("control batch does not parse", "segment", s.path(logSuffix), "offset", pb.h.BaseOffset, "err", pb.ctlErr)
				} else if pb.marker {
					ci = &pb.ci
				}
				replay(s, &pb.h, ci)
			}
		} else if err := l.replaySegmentFile(s, from, &pins, &buf, &hbuf, replay); err != nil {
			return false, err
		}
		if s.txnRebuild {
			s.txnRebuild = false
			rebuilt = true
			if err := os.Remove(s.path(txnIndexSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return false, fmt.Errorf("remove stale transaction index: %w", err)
			}
		}
	}
	for _, s := range l.segs {
		s.pidBatches, s.pidScanned = nil, false
	}
	l.producers.prune(l.logStart, nowMs, l.cfg.ProducerIDExpiryMs)
	l.noteTxns()
	return rebuilt, nil
}

// replaySegmentFile reads the batch headers of s from the one holding
// from on and replays those with a producer id (a control batch is read
// whole, for its marker).
func (l *Log) replaySegmentFile(s *segment, from int64, pins *pinSet, buf, hbuf *[]byte, replay func(*segment, *record.Header, *controlInfo)) error {
	f, err := pins.file(s)
	if err != nil {
		return err
	}
	pos, size := int64(0), s.size.Load()
	if from > s.base {
		pos = s.offIdx.lookup(from - s.base)
	}
	hr := headerReader{f: f, buf: *hbuf}
	defer func() { *hbuf = hr.buf }()
	for pos < size {
		h, err := hr.header(pos, size)
		if err != nil {
			return fmt.Errorf("%w: %s at %d: %w", ErrCorruptSegment, s.path(logSuffix), pos, err)
		}
		if h.LastOffset() >= from && h.HasProducerID() {
			var ci *controlInfo
			if h.IsControl() {
				*buf = slices.Grow((*buf)[:0], h.Size())[:h.Size()]
				if _, err := f.ReadAt(*buf, pos); err != nil {
					return fmt.Errorf("%w: %s at %d: %w", ErrCorruptSegment, s.path(logSuffix), pos, err)
				}
				if c, marker, err := parseControl(*buf); err == nil && marker {
					ci = &c
				} else if err != nil {
					l.logger.Warn("control batch does not parse", "segment", s.path(logSuffix), "offset", h.BaseOffset, "err", err)
				}
			}
			replay(s, &h, ci)
		}
		pos += int64(h.Size())
	}
	return nil
}

// epochScan checks the partition leader epoch of the batches Open scans.
// The field sits before the CRC's range, so a damaged one passes the CRC
// check (Kafka's recovery does not look at it). Epochs never decrease
// along a log (a leader appends under its role lock, a follower copies its
// leader's log), and every epoch a batch carries is in the leader epoch
// checkpoint, written and fsynced right after the first batch of a new
// epoch is appended; only the newest epoch may be missing from it (a crash
// between that append and the checkpoint). So a batch whose epoch is lower
// than an earlier batch's is damaged, or the earlier batch is if it
// carried an epoch the checkpoint does not know: the scan then stops at
// that earlier batch.
type epochScan struct {
	known map[int32]bool // the checkpoint's epochs, as Open read it (empty: no checkpoint, nothing is suspect)
	max   int32          // the highest epoch scanned so far (-1: none)
	// suspect is the first batch, in the segment being scanned, of an
	// epoch above max that the checkpoint does not know.
	suspectSeg *segment
	suspectPos int64
	// cut is where scanSegment must end the segment instead (the suspect
	// batch), -1 if nowhere earlier than the batch found bad.
	cut int64
}

// check looks at the batch at pos of s with epoch e; bad reports damage,
// and at is then where the segment's valid part ends (or, with cut set,
// where the scan stops before scanSegment cuts it shorter).
func (c *epochScan) check(s *segment, pos int64, e int32) (bad bool, at int64) {
	if e < 0 {
		return false, 0
	}
	if e < c.max {
		if c.suspectSeg == s && len(c.known) > 0 {
			c.cut = c.suspectPos
		}
		return true, pos
	}
	if e > c.max {
		c.max = e
		c.suspectSeg = nil
		if !c.known[e] {
			c.suspectSeg, c.suspectPos = s, pos
		}
	}
	return false, 0
}

// RecoveryUnsynced reports whether Open recovered the log without making
// what it recovered durable (Options.DeferRecoverySync): the caller must
// SyncFS the file system holding it, or call SyncRecovered, before using
// the log.
func (l *Log) RecoveryUnsynced() bool { return l.recoveryUnsynced.Load() }

// SyncRecovered makes durable, with fsyncs of this log's files, what a
// recovery deferred by Options.DeferRecoverySync left in the page cache:
// every segment file, the index files, the directory. It is what a caller
// that cannot SyncFS does instead. A failure fails the log (as a failed
// fsync of an append does): nothing in it since the last good fsync can be
// trusted until it is reopened and recovered again.
func (l *Log) SyncRecovered() error {
	if !l.recoveryUnsynced.Load() {
		return nil
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.RLock()
	segs := slices.Clone(l.segs)
	for _, s := range segs {
		s.acquire()
	}
	l.mu.RUnlock()
	defer func() {
		for _, s := range segs {
			s.release()
		}
	}()
	syncPath := func(name string) error {
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	}
	for _, s := range segs {
		if err := s.withFile(l.io.sync); err != nil {
			return l.failFsync(s, err)
		}
		for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			if err := syncPath(s.path(suf)); err != nil {
				return l.failFsync(s, err)
			}
		}
	}
	l.mu.RLock()
	l.dirUnsynced.Store(true) // the directory and its parent (load set it too)
	err := l.syncCreated()
	l.durable.Store(l.leo.Load()) // with what a journal replay appended
	l.mu.RUnlock()
	if err != nil {
		return l.failFsync(segs[len(segs)-1], err)
	}
	l.recoveryUnsynced.Store(false)
	return nil
}

// RecoverySynced tells the log that what its deferred recovery wrote is
// durable: the caller ran SyncFS over its file system after Open, which
// covers its directory and leader epoch checkpoint too.
func (l *Log) RecoverySynced() {
	l.mu.RLock()
	l.dirUnsynced.Store(false)
	l.epochsUnsynced.Store(false)
	l.durable.Store(l.leo.Load()) // with what a journal replay appended
	l.mu.RUnlock()
	l.recoveryUnsynced.Store(false)
}
