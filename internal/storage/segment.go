package storage

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// File name suffixes in a partition directory.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	snapshotSuffix  = ".snapshot"
	deletedSuffix   = ".deleted"
	tmpSuffix       = ".tmp"
	cleanedSuffix   = ".cleaned" // a segment being written by the cleaner
	swapSuffix      = ".swap"    // a cleaned segment committed to replace old ones
)

// segmentSuffixes are the files of a segment.
var segmentSuffixes = []string{logSuffix, indexSuffix, timeIndexSuffix, txnIndexSuffix}

func fileName(base int64, suffix string) string { return fmt.Sprintf("%020d%s", base, suffix) }

// segment is one .log file with its indexes. The segment lives while
// refs > 0: the Log holds one reference while the segment is part of it,
// and every ReadResult holds one per segment it covers. Deleting a segment
// renames its files to *.deleted; the last reference closes the file and
// removes them. The file descriptor itself is used through file/unpin
// (fdcache.go): with a descriptor cache it may be closed while unpinned and
// opened again on demand.
type segment struct {
	dir  string
	base int64

	fmu  sync.Mutex
	f    *os.File // guarded by fmu; nil while the descriptor cache has it closed
	pins int32    // guarded by fmu: uses in progress (file without unpin)
	mem  bool     // the in-memory segment of a lazy log: it has no file (lazy.go)
	// cache, if set, may close the file while it is unpinned; cacheIdx
	// (guarded by cache.mu) is its position in the cache's ring plus one,
	// 0 when the file is not open in it; used is the CLOCK bit.
	cache    *FDCache
	cacheIdx int
	used     atomic.Bool

	// size is the committed length: every byte below it belongs to a whole
	// batch that has been written. Readers never look past it.
	size atomic.Int64

	// Guarded by Log.mu.
	next       int64 // offset after the last batch (base when empty)
	offIdx     offsetIndex
	timeIdx    timeIndex
	txn        txnIndex // aborted transactions whose marker is here (txn.go)
	txnRebuild bool     // the transaction index is to be rebuilt by the producer state replay at Open
	// pidBatches: after Open scanned the whole segment (a recovery or an
	// index rebuild), its batches with a producer id in order, with
	// pidScanned set, so that the producer state replay right after does
	// not read the segment a second time; dropped by that replay, or
	// when the segment holds more than pidBatchesMax of them.
	pidBatches []pidBatch
	pidScanned bool
	// staleIdx: recovery rebuilt the offset and time indexes in memory and
	// left the files of an earlier process in place; the next full flush
	// rewrites them from the start, emptying a file the new index has no
	// entry for (recoverSegment). Set at load, read and cleared under
	// flushMu.
	staleIdx        bool
	bytesSinceIndex int64
	maxTs           int64 // largest batch MaxTimestamp, -1 if none
	maxTsOffset     int64 // last offset of the first batch with maxTs
	firstBatchTs    int64 // MaxTimestamp of the first batch (Kafka's rollingBasedTimestamp), -1 if none
	created         time.Time

	syncedSize int64 // bytes known fsynced; guarded by Log.flushMu

	// dropped is how far cold reads have dropped the segment's pages from
	// the page cache (coldread.go).
	dropped atomic.Int64

	refs    atomic.Int32
	deleted atomic.Bool
	onClose func(error) // reports close/remove errors
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, fileName(s.base, suffix))
}

// newSegment opens (creating if needed) the log file of the segment at base,
// in the log's descriptor cache.
func (l *Log) newSegment(base int64, create bool) (*segment, error) {
	return openSegment(l.dir, base, l.now(), create, l.opts.FDCache)
}

// openSegment opens (creating if needed) the log file of the segment at
// base; cache (may be nil) is the descriptor cache it joins.
func openSegment(dir string, base int64, now time.Time, create bool, cache *FDCache) (*segment, error) {
	s := &segment{dir: dir, base: base, next: base, maxTs: -1, maxTsOffset: -1, firstBatchTs: -1, created: now}
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(s.path(logSuffix), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment: %w", err)
	}
	s.f = f
	s.size.Store(st.Size())
	s.syncedSize = st.Size()
	s.refs.Store(1)
	if cache != nil {
		s.cache = cache
		cache.add(s)
	}
	if create {
		// Stale indexes of an earlier segment with the same base would
		// otherwise be mistaken for this one's.
		os.Remove(s.path(indexSuffix))
		os.Remove(s.path(timeIndexSuffix))
		os.Remove(s.path(txnIndexSuffix))
	}
	return s, nil
}

func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference; the last one closes the file, and removes the
// files of a deleted segment.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	err := s.closeFile()
	if s.deleted.Load() {
		for _, suf := range segmentSuffixes {
			if e := os.Remove(s.path(suf + deletedSuffix)); e != nil && !errors.Is(e, os.ErrNotExist) && err == nil {
				err = e
			}
		}
	}
	if err != nil && s.onClose != nil {
		s.onClose(err)
	}
}

// markDeleted renames the segment's files to *.deleted. The caller then
// drops the Log's reference with release.
func (s *segment) markDeleted() error {
	s.deleted.Store(true)
	var first error
	for _, suf := range segmentSuffixes {
		if err := os.Rename(s.path(suf), s.path(suf+deletedSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("rename deleted segment file: %w", err)
		}
	}
	return first
}

// largestTimestamp is what time retention compares: the largest batch
// timestamp, or the file's modification time when no batch has one.
func (s *segment) largestTimestamp() int64 {
	if s.maxTs >= 0 {
		return s.maxTs
	}
	if s.mem {
		return s.created.UnixMilli()
	}
	var st os.FileInfo
	err := s.withFile(func(f *os.File) (err error) {
		st, err = f.Stat()
		return err
	})
	if err != nil {
		return math.MaxInt64 // keep it rather than guess
	}
	return st.ModTime().UnixMilli()
}

// resetIndexes forgets the in-memory indexes and batch statistics before a
// rebuild.
func (s *segment) resetIndexes() {
	s.offIdx.reset()
	s.timeIdx.reset()
	s.bytesSinceIndex = 0
	s.next = s.base
	s.maxTs, s.maxTsOffset, s.firstBatchTs = -1, -1, -1
}

// track updates the indexes and statistics for a batch written at pos, as
// Kafka's LogSegment.append does: an offset index entry (and a time index
// entry when the max timestamp grew) once more than indexInterval bytes were
// written since the last entry.
func (s *segment) track(h *record.Header, pos int64, indexInterval int32) {
	last := h.LastOffset()
	if s.next == s.base && pos == 0 {
		s.firstBatchTs = h.MaxTimestamp
	}
	if h.MaxTimestamp > s.maxTs {
		s.maxTs = h.MaxTimestamp
		s.maxTsOffset = last
	}
	if s.bytesSinceIndex > int64(indexInterval) {
		s.offIdx.append(int32(last-s.base), int32(pos))
		if s.maxTs >= 0 {
			s.timeIdx.maybeAppend(s.maxTs, int32(s.maxTsOffset-s.base))
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += int64(h.Size())
	s.next = last + 1
}

// finishTimeIndex adds the final time index entry when the segment stops
// being active (roll, close), as Kafka does.
func (s *segment) finishTimeIndex() {
	if s.maxTs >= 0 {
		s.timeIdx.maybeAppend(s.maxTs, int32(s.maxTsOffset-s.base))
	}
}

// readHeader reads the batch header at pos with one pread.
func readHeader(f *os.File, pos int64, buf []byte) (record.Header, error) {
	buf = buf[:record.HeaderSize]
	if _, err := f.ReadAt(buf, pos); err != nil {
		return record.Header{}, fmt.Errorf("read batch header at %d: %w", pos, err)
	}
	return record.ParseHeader(buf)
}

// headerReader reads the headers of consecutive batches through a buffer:
// one read for all the headers in a run of small batches (a log of many
// small batches, as after a recovery with many partitions), one read a
// header for batches larger than the buffer (what readHeader does for
// every batch). Its reads start at 4 KiB and double with each refill up
// to 64 KiB, so that a scan of a few batches, the common case at a
// recovery, neither reads nor allocates much.
type headerReader struct {
	f      *os.File
	buf    []byte
	bufPos int64 // file position of buf[0]
	n      int   // valid bytes in buf
	size   int   // the next read's size (0: headerReaderMin)
}

// headerReaderMin and headerReaderMax bound a headerReader's reads.
const (
	headerReaderMin = 4 << 10
	headerReaderMax = 64 << 10
)

// header returns the header of the batch at pos; end is where the
// segment's data ends (no read goes past it).
func (hr *headerReader) header(pos, end int64) (record.Header, error) {
	if pos < hr.bufPos || pos+record.HeaderSize > hr.bufPos+int64(hr.n) {
		if hr.size == 0 {
			hr.size = headerReaderMin
		}
		want := int(min(int64(hr.size), max(end-pos, record.HeaderSize)))
		hr.size = min(2*hr.size, headerReaderMax)
		if cap(hr.buf) < want {
			hr.buf = make([]byte, want)
		}
		hr.buf = hr.buf[:want]
		n, err := hr.f.ReadAt(hr.buf, pos)
		if n < record.HeaderSize {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			hr.n = 0
			return record.Header{}, fmt.Errorf("read batch header at %d: %w", pos, err)
		}
		hr.bufPos, hr.n = pos, n
	}
	off := int(pos - hr.bufPos)
	return record.ParseHeader(hr.buf[off : off+record.HeaderSize])
}

// findBatch scans batch headers from pos for the first batch whose last
// offset is >= target, stopping at end. It returns that batch's position and
// header, or ok=false.
func findBatch(f *os.File, pos, end, target int64, hdr []byte) (int64, record.Header, bool, error) {
	for pos < end {
		h, err := readHeader(f, pos, hdr)
		if err != nil {
			return 0, h, false, err
		}
		if h.LastOffset() >= target {
			return pos, h, true, nil
		}
		pos += int64(h.Size())
	}
	return 0, record.Header{}, false, nil
}

// errTorn is returned by batchReader when the data ends inside a batch or a
// batch length is invalid.
var errTorn = errors.New("torn or invalid batch")

// batchReader reads whole batches sequentially through a reusable buffer.
type batchReader struct {
	f        *os.File
	pos, end int64 // file position of buf[r], end of readable data
	buf      []byte
	r, w     int
}

func newBatchReader(f *os.File, pos, end int64, buf []byte) *batchReader {
	if cap(buf) == 0 {
		// No larger than the data (a recovery after a crash scans the
		// small active segments of thousands of logs); fill grows it for
		// a batch that does not fit.
		buf = make([]byte, max(min(scanBufBytes, end-pos), record.LogOverhead))
	}
	return &batchReader{f: f, pos: pos, end: end, buf: buf[:cap(buf)]}
}

// fill makes at least need bytes available at buf[r:], unless the data ends.
func (br *batchReader) fill(need int) error {
	if br.r > 0 {
		n := copy(br.buf, br.buf[br.r:br.w])
		br.r, br.w = 0, n
	}
	if need > len(br.buf) {
		nb := make([]byte, max(need, 2*len(br.buf)))
		copy(nb, br.buf[:br.w])
		br.buf = nb
	}
	for br.w < need {
		filePos := br.pos + int64(br.w)
		limit := min(int64(len(br.buf)-br.w), br.end-filePos)
		if limit <= 0 {
			return errTorn
		}
		n, err := br.f.ReadAt(br.buf[br.w:br.w+int(limit)], filePos)
		br.w += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				if br.w >= need {
					return nil
				}
				return errTorn
			}
			return fmt.Errorf("read segment at %d: %w", filePos, err)
		}
	}
	return nil
}

// next returns the next whole batch (valid until the following call) and its
// file position. At the end of the data it returns io.EOF; when the data ends
// inside a batch or a length field is invalid, errTorn.
func (br *batchReader) next() ([]byte, int64, error) {
	if br.pos >= br.end {
		return nil, br.pos, io.EOF
	}
	if br.w-br.r < record.LogOverhead {
		if err := br.fill(record.LogOverhead); err != nil {
			return nil, br.pos, err
		}
	}
	n, err := record.PeekSize(br.buf[br.r:br.w])
	if err != nil || br.pos+int64(n) > br.end {
		return nil, br.pos, errTorn
	}
	if br.w-br.r < n {
		if err := br.fill(n); err != nil {
			return nil, br.pos, err
		}
	}
	b := br.buf[br.r : br.r+n]
	pos := br.pos
	br.r += n
	br.pos += int64(n)
	return b, pos, nil
}
