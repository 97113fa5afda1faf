package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// Positions of v2 batch header fields the cleaner patches (Kafka's layout).
const (
	hdrCRC             = 17
	hdrAttributes      = 21
	hdrLastOffsetDelta = 23
	hdrMaxTimestamp    = 35
	hdrNumRecords      = 57
)

// cleanedWriteChunk is how much cleaned output is buffered per write.
const cleanedWriteChunk = 1 << 20

// cleanGroup rewrites group (adjacent non-active segments) into one cleaned
// segment and swaps it in. It returns false, having changed nothing, when
// the log closed, the group is no longer part of the log or a truncation
// is waiting.
func (l *Log) cleanGroup(c *cleanPass, group []*segment) (bool, error) {
	base := group[0].base
	path := func(suf string) string { return filepath.Join(l.dir, fileName(base, suf)) }
	f, err := os.OpenFile(path(logSuffix+cleanedSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, fmt.Errorf("storage: clean: %w: %w", ErrIO, err)
	}
	ns := &segment{dir: l.dir, base: base, f: f, next: base, maxTs: -1, maxTsOffset: -1, firstBatchTs: -1, created: time.UnixMilli(c.nowMs)}
	ns.refs.Store(1)
	committed := false
	defer func() {
		if committed {
			return
		}
		f.Close()
		for _, suf := range segmentSuffixes {
			os.Remove(path(suf + cleanedSuffix))
			os.Remove(path(suf + swapSuffix))
		}
	}()

	c.txn = newTxnCleanState(l.AbortedTxns(base, group[len(group)-1].next), &ns.txn)
	var pos int64
	var mtime time.Time
	out := c.out[:0]
	write := func() error {
		if len(out) == 0 {
			return nil
		}
		c.throttle.Wait(len(out))
		if _, err := l.io.writeAt(f, out, pos); err != nil {
			return fmt.Errorf("storage: clean: %w: write %s: %w", ErrIO, f.Name(), err)
		}
		c.stats.BytesWritten += int64(len(out))
		pos += int64(len(out))
		out = out[:0]
		return nil
	}
	var pins pinSet
	defer pins.release()
	for _, s := range group {
		if l.isClosed() {
			return false, nil
		}
		sf, err := pins.file(s)
		if err != nil {
			return false, fmt.Errorf("storage: clean: %w", err)
		}
		if fi, err := sf.Stat(); err == nil && fi.ModTime().After(mtime) {
			mtime = fi.ModTime()
		}
		br := newBatchReader(sf, 0, s.size.Load(), c.readBuf)
		for {
			b, bpos, err := br.next()
			if errors.Is(err, io.EOF) {
				break
			}
			var h record.Header
			if err == nil {
				h, err = validateStored(b)
			}
			if err != nil {
				return false, fmt.Errorf("%w: clean %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), bpos, err)
			}
			if l.clean.abort.Load() > 0 {
				return false, nil
			}
			c.throttle.Wait(len(b))
			c.stats.BytesRead += int64(len(b))
			start := len(out)
			if out, err = c.filterBatch(out, b, &h); err != nil {
				return false, fmt.Errorf("%w: clean %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), bpos, err)
			}
			if len(out) > start {
				nh, err := record.ParseHeader(out[start:])
				if err != nil {
					return false, fmt.Errorf("storage: clean: rebuilt batch: %w", err)
				}
				ns.track(&nh, pos+int64(start), c.cfg.IndexIntervalBytes)
			}
			if len(out) >= cleanedWriteChunk {
				if err := write(); err != nil {
					return false, err
				}
			}
		}
		c.readBuf = br.buf
	}
	if err := write(); err != nil {
		return false, err
	}
	c.out = out
	ns.size.Store(pos)
	ns.syncedSize = pos
	ns.finishTimeIndex()
	if err := l.io.sync(f); err != nil {
		return false, fmt.Errorf("storage: clean: %w: fsync %s: %w", ErrIO, f.Name(), err)
	}
	if err := writeSynced(path(indexSuffix+cleanedSuffix), ns.offIdx.buf); err != nil {
		return false, err
	}
	if err := writeSynced(path(timeIndexSuffix+cleanedSuffix), ns.timeIdx.buf); err != nil {
		return false, err
	}
	if len(ns.txn.buf) > 0 {
		if err := writeSynced(path(txnIndexSuffix+cleanedSuffix), ns.txn.buf); err != nil {
			return false, err
		}
	}
	ns.offIdx.written, ns.timeIdx.written, ns.txn.written = len(ns.offIdx.buf), len(ns.timeIdx.buf), len(ns.txn.buf)
	if !mtime.IsZero() {
		// Keep the old files' age for time retention of record-less data.
		os.Chtimes(f.Name(), mtime, mtime)
	}
	return l.swapIn(ns, group, &committed)
}

// swapIn commits the cleaned files of ns and replaces group with it. It
// holds flushMu throughout, so neither retention nor a flush runs on the
// segments meanwhile, and mu only to switch the segment list.
func (l *Log) swapIn(ns *segment, group []*segment, committed *bool) (bool, error) {
	base := ns.base
	path := func(suf string) string { return filepath.Join(l.dir, fileName(base, suf)) }
	crash := func(step string) bool {
		if l.clean.crashAt != nil && l.clean.crashAt(step) {
			*committed = true // leave the files
			return true
		}
		return false
	}
	if crash("cleaned") {
		return false, errSimulatedCrash
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.RLock()
	at := l.groupIndex(group)
	closed := l.closed || l.failed != nil || l.clean.abort.Load() > 0
	l.mu.RUnlock()
	if at < 0 || closed {
		return false, nil
	}
	marker := fmt.Appendf(nil, "1\n%d %d\n", base, group[len(group)-1].base)
	if err := writeFileAtomic(l.dir, cleanerSwapFile, marker, true); err != nil {
		return false, fmt.Errorf("storage: clean: %w", err)
	}
	if crash("marker") {
		return false, errSimulatedCrash
	}
	for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix, logSuffix} { // the log last: the commit
		if suf == logSuffix && crash("index-swapped") {
			return false, errSimulatedCrash
		}
		if suf == txnIndexSuffix && len(ns.txn.buf) == 0 {
			continue // none written
		}
		if err := os.Rename(path(suf+cleanedSuffix), path(suf+swapSuffix)); err != nil {
			return false, fmt.Errorf("storage: clean: %w: %w", ErrIO, err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return false, fmt.Errorf("storage: clean: %w: %w", ErrIO, err)
	}
	*committed = true
	if crash("committed") {
		return false, errSimulatedCrash
	}

	// Committed: from here a crash is finished by recoverCleanerSwap.
	ns.onClose = l.reportCloseError
	l.adopt(ns)
	l.mu.Lock()
	segs := make([]*segment, 0, len(l.segs)-len(group)+1)
	segs = append(segs, l.segs[:at]...)
	segs = append(segs, ns)
	segs = append(segs, l.segs[at+len(group):]...)
	l.segs = segs
	l.mu.Unlock()
	var errs []error
	for _, s := range group {
		if err := s.markDeleted(); err != nil {
			errs = append(errs, err)
		}
		s.release()
	}
	if err := syncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	if crash("old-deleted") {
		return true, errSimulatedCrash
	}
	if len(errs) == 0 {
		for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix, logSuffix} {
			if suf == logSuffix && crash("index-final") {
				return true, errSimulatedCrash
			}
			if suf == txnIndexSuffix && len(ns.txn.buf) == 0 {
				continue
			}
			if err := os.Rename(path(suf+swapSuffix), path(suf)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if crash("log-final") {
		return true, errSimulatedCrash
	}
	if len(errs) == 0 {
		if err := syncDir(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		os.Remove(filepath.Join(l.dir, cleanerSwapFile))
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("storage: clean: finishing swap of %s (completed at the next open): %w", fileName(base, logSuffix), err)
	}
	return true, nil
}

// groupIndex returns where group sits in l.segs, or -1 if it is no longer
// there unchanged; mu held.
func (l *Log) groupIndex(group []*segment) int {
	at := l.segmentFor(group[0].base)
	if at+len(group) >= len(l.segs) { // the group never includes the active segment
		return -1
	}
	for i, s := range group {
		if l.segs[at+i] != s {
			return -1
		}
	}
	return at
}

// writeSynced creates path with data and fsyncs it.
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("storage: clean: %w: %w", ErrIO, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("storage: clean: %w: write %s: %w", ErrIO, path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: clean: %w: fsync %s: %w", ErrIO, path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: clean: %w: close %s: %w", ErrIO, path, err)
	}
	return nil
}

// filterBatch appends to dst what remains of batch b after cleaning.
func (c *cleanPass) filterBatch(dst, b []byte, h *record.Header) ([]byte, error) {
	if h.IsControl() && h.NumRecords > 0 {
		return c.filterControl(dst, b, h)
	}
	if h.IsControl() {
		return append(dst, b...), nil
	}
	if h.NumRecords == 0 {
		// Emptied by an earlier pass: kept while it is one of a live
		// producer's last batches (Kafka's RETAIN_EMPTY), else removed. Seen
		// now, it keeps its transaction's marker for one more pass.
		c.txn.onBatch(h)
		if h.HasProducerID() && c.protect[h.BaseOffset] {
			return append(dst, b...), nil
		}
		c.stats.BatchesRemoved++
		return dst, nil
	}
	if c.txn.onBatch(h) {
		// Aborted transactional data.
		c.stats.RecordsRemoved += int64(h.NumRecords)
		if h.HasProducerID() && c.protect[h.BaseOffset] {
			return appendEmptyBatch(dst, b), nil
		}
		c.stats.BatchesRemoved++
		return dst, nil
	}
	hasHorizon := h.Attributes&record.AttrDeleteHorizon != 0
	horizon := h.FirstTimestamp // the delete horizon when hasHorizon
	c.recs, c.hdrs, c.arena = c.recs[:0], c.hdrs[:0], c.arena[:0]
	n, tombs := 0, 0
	err := record.ForEach(b, func(r *record.Record) error {
		n++
		if r.Key != nil {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if latest, ok := c.m.m[c.m.hash(r.Key)]; ok && off < latest {
				c.stats.RecordsRemoved++
				return nil
			}
			if r.Value == nil {
				if hasHorizon && c.nowMs >= horizon {
					c.stats.RecordsRemoved++
					c.stats.TombstonesRemoved++
					return nil
				}
				tombs++
			}
		}
		c.keep(r)
		return nil
	})
	if err != nil {
		return dst, err
	}
	if len(c.recs) == 0 {
		if h.HasProducerID() && c.protect[h.BaseOffset] {
			return appendEmptyBatch(dst, b), nil
		}
		c.stats.BatchesRemoved++
		return dst, nil
	}
	newHorizon := tombs > 0 && !hasHorizon
	if tombs > 0 && hasHorizon {
		c.noteHorizon(horizon)
	}
	if len(c.recs) == n && !newHorizon {
		return append(dst, b...), nil
	}
	firstTs := h.FirstTimestamp
	if newHorizon {
		hz := c.nowMs + c.cfg.DeleteRetentionMs
		if c.cfg.DeleteRetentionMs > math.MaxInt64-c.nowMs {
			hz = math.MaxInt64
		}
		for i := range c.recs {
			c.recs[i].TimestampDelta += h.FirstTimestamp - hz
		}
		firstTs = hz
		c.noteHorizon(hz)
	}
	return c.rebuild(dst, h, firstTs, c.recs, newHorizon || hasHorizon)
}

// rebuild appends a batch with h's batch fields holding recs, with first
// timestamp firstTs and, with horizon, the delete horizon attribute; the
// last offset delta (and so the last sequence) and a LogAppendTime batch's
// timestamp stay the original's, as Kafka keeps them.
func (c *cleanPass) rebuild(dst []byte, h *record.Header, firstTs int64, recs []record.Record, horizon bool) ([]byte, error) {
	opts := record.BatchOptions{
		Codec:                h.Codec(),
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		BaseSequence:         h.BaseSequence,
		Transactional:        h.IsTransactional(),
		Control:              h.IsControl(),
		LogAppendTime:        h.IsLogAppendTime(),
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		BaseOffset:           h.BaseOffset,
	}
	start := len(dst)
	dst, err := record.Build(dst, opts, firstTs, recs)
	if err != nil {
		return dst, err
	}
	nb := dst[start:]
	be := binary.BigEndian
	if horizon {
		be.PutUint16(nb[hdrAttributes:], be.Uint16(nb[hdrAttributes:])|record.AttrDeleteHorizon)
	}
	be.PutUint32(nb[hdrLastOffsetDelta:], uint32(h.LastOffsetDelta))
	if h.IsLogAppendTime() {
		be.PutUint64(nb[hdrMaxTimestamp:], uint64(h.MaxTimestamp))
	}
	be.PutUint32(nb[hdrCRC:], record.ComputeCRC(nb))
	return dst, nil
}

// keep copies a record the cleaner retains out of the iteration buffers.
func (c *cleanPass) keep(r *record.Record) {
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		i := len(c.arena)
		c.arena = append(c.arena, b...)
		return c.arena[i:len(c.arena):len(c.arena)]
	}
	nr := record.Record{Attributes: r.Attributes, TimestampDelta: r.TimestampDelta, OffsetDelta: r.OffsetDelta, Key: cp(r.Key), Value: cp(r.Value)}
	if len(r.Headers) > 0 {
		i := len(c.hdrs)
		for _, hd := range r.Headers {
			c.hdrs = append(c.hdrs, record.RecordHeader{Key: hd.Key, Value: cp(hd.Value)})
		}
		nr.Headers = c.hdrs[i:len(c.hdrs):len(c.hdrs)]
	}
	c.recs = append(c.recs, nr)
}

func (c *cleanPass) noteHorizon(hz int64) {
	if c.minHorizon == 0 || hz < c.minHorizon {
		c.minHorizon = hz
	}
}

// appendEmptyBatch appends b's header as a batch without records and
// without compression, as Kafka keeps a producer's last batch.
func appendEmptyBatch(dst, b []byte) []byte {
	start := len(dst)
	dst = append(dst, b[:record.HeaderSize]...)
	nb := dst[start:]
	be := binary.BigEndian
	be.PutUint32(nb[8:], uint32(record.HeaderSize-record.LogOverhead))
	be.PutUint16(nb[hdrAttributes:], be.Uint16(nb[hdrAttributes:])&^record.AttrCompressionMask)
	be.PutUint32(nb[hdrNumRecords:], 0)
	be.PutUint32(nb[hdrCRC:], record.ComputeCRC(nb))
	return dst
}

// recoverCleanerSwap completes or discards a swap a crash interrupted,
// before Open lists the segments:
//
//   - <base>.log.swap exists and the cleaner-swap marker names it: the swap
//     was committed. The old segments in the marker's range are deleted and
//     the .swap files renamed to their final names (a missing index is
//     rebuilt by the load).
//   - <base>.log.swap without a matching marker (should not happen): if the
//     old <base>.log is still there the swap is discarded, else finished.
//   - *.cleaned files, index .swap files without a log .swap, and a marker
//     without a .swap: leftovers of an uncommitted or finished swap, removed.
//
// When there is nothing of the cleaner's it returns the directory's
// listing, for the caller to use instead of listing it again (a start
// opens thousands of logs); nil otherwise.
func (l *Log) recoverCleanerSwap() ([]os.DirEntry, error) {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("list log dir: %w", err)
	}
	if !slices.ContainsFunc(ents, func(de os.DirEntry) bool {
		n := de.Name()
		return strings.HasSuffix(n, cleanedSuffix) || strings.HasSuffix(n, swapSuffix) || n == cleanerSwapFile
	}) {
		return ents, nil // nothing of the cleaner's: the common case
	}
	return nil, l.finishCleanerSwap(ents)
}

// finishCleanerSwap is recoverCleanerSwap's work on a listing that has
// something of the cleaner's.
func (l *Log) finishCleanerSwap(ents []os.DirEntry) error {
	markerBase, markerLast, haveMarker := int64(-1), int64(-1), false
	if b, err := os.ReadFile(filepath.Join(l.dir, cleanerSwapFile)); err == nil {
		if _, err := fmt.Sscanf(string(b), "1\n%d %d\n", &markerBase, &markerLast); err == nil {
			haveMarker = true
		}
	}
	changed := false
	remove := func(name string) error {
		if err := os.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove cleaner leftover %s: %w", name, err)
		}
		changed = true
		return nil
	}
	var swaps []int64
	for _, de := range ents {
		name := de.Name()
		if strings.HasSuffix(name, cleanedSuffix) {
			l.logger.Info("discarding unfinished cleaner output", "file", name)
			if err := remove(name); err != nil {
				return err
			}
		}
		if b, ok := parseBase(name, logSuffix+swapSuffix); ok {
			swaps = append(swaps, b)
		}
	}
	for _, base := range swaps {
		last := base
		if haveMarker && markerBase == base {
			last = markerLast
		} else if _, err := os.Stat(filepath.Join(l.dir, fileName(base, logSuffix))); err == nil {
			l.logger.Warn("discarding a cleaned segment swap without its marker", "segment", fileName(base, logSuffix+swapSuffix))
			for _, suf := range segmentSuffixes {
				if err := remove(fileName(base, suf+swapSuffix)); err != nil {
					return err
				}
			}
			continue
		}
		l.logger.Warn("completing an interrupted cleaner swap", "segment", fileName(base, logSuffix), "replaces_through", fileName(last, logSuffix))
		for _, de := range ents {
			for _, suf := range segmentSuffixes {
				if b, ok := parseBase(de.Name(), suf); ok && b >= base && b <= last {
					if err := remove(de.Name()); err != nil {
						return err
					}
				}
			}
		}
		if err := syncDir(l.dir); err != nil {
			return err
		}
		for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix, logSuffix} {
			err := os.Rename(filepath.Join(l.dir, fileName(base, suf+swapSuffix)), filepath.Join(l.dir, fileName(base, suf)))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("finish cleaner swap: %w", err)
			}
		}
	}
	// Index .swap files whose log was not committed or already renamed.
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("list log dir: %w", err)
	}
	for _, de := range ents {
		if strings.HasSuffix(de.Name(), swapSuffix) || de.Name() == cleanerSwapFile {
			if err := remove(de.Name()); err != nil {
				return err
			}
		}
	}
	if changed {
		return syncDir(l.dir)
	}
	return nil
}
