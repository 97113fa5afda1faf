package storage

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// Log compaction, after Kafka's log cleaner.
//
// A compacted log (Config.Compact) is split at the first dirty offset, kept
// in the cleaner-offset-checkpoint file: below it the log has been cleaned,
// from it on it is dirty. The cleanable range ends at the first uncleanable
// offset: the active segment's base, or the base of the first dirty segment
// whose largest timestamp is younger than min.compaction.lag.ms. A log is
// eligible when its dirty ratio (bytes of the dirty segments over bytes of
// all cleanable segments, segment granularity) is above
// min.cleanable.dirty.ratio (strictly, as Kafka compares), when its first
// dirty batch is older than max.compaction.lag.ms, or when the delete
// horizon of a cleaned tombstone has passed.
//
// Cleaning maps each key of the dirty range to its latest offset (the map
// has a cap on entries; when the dirty range holds more, only its first part
// is mapped and the next pass continues from there), then rewrites every
// segment from the log start up to the end of the mapped range, a group of
// adjacent segments at a time (a group stays within segment.bytes), keeping
// a record only if no later offset of its key is mapped. Offsets are kept
// (batches may have offset gaps), batches keep their base offset, producer
// fields, last offset delta (so the last sequence stays right), attributes
// and codec; only batches that lost records are rebuilt (recompressed with
// their codec). Records without a key are kept. Transactions follow
// cleaner_txn.go: aborted data goes, markers stay until their
// transaction's data is gone and a delete horizon has passed, and nothing
// at or above the first unstable offset (or the last reported high
// watermark) is cleaned. A batch that loses all its records (or an empty
// batch left by an earlier pass) is dropped, except when it is one of the
// last five batches of a live producer: then an empty batch (a header with
// no records, as Kafka writes) keeps the producer's sequence and offsets for
// duplicate detection after a replay.
//
// Tombstones use Kafka's batch-level delete horizon (KIP-534): when a batch
// holding a kept tombstone is first cleaned, it is rebuilt with attribute
// bit 6 set and its first timestamp field set to now + delete.retention.ms
// (record timestamp deltas are rebased so record timestamps do not change).
// A later pass after that horizon drops its tombstones. The earliest pending
// horizon is kept in the checkpoint so a log becomes eligible when it passes.
//
// Swaps are crash-safe: a group is written to <base>.log.cleaned (with
// .index.cleaned and .timeindex.cleaned), fsynced, a cleaner-swap marker
// naming the replaced range is written, the files are renamed to .swap (the
// log file last: its rename is the commit point), the old segments are
// renamed to .deleted and the .swap files to their final names. Open
// finishes a committed swap and discards an uncommitted one (see
// recoverCleanerSwap). Readers holding old segments keep reading them until
// they release them, as with retention.

// Files of the cleaner in a partition directory.
//
//	cleaner-offset-checkpoint  "1\n<firstDirtyOffset> <nextDeleteHorizonMs>\n" (0: no pending horizon)
//	cleaner-swap               "1\n<base> <lastOldBase>\n": the swap in progress replaces the
//	                           segments with base offsets in [base, lastOldBase]
const (
	cleanerCheckpointFile = "cleaner-offset-checkpoint"
	cleanerSwapFile       = "cleaner-swap"
)

// DefaultMaxMapEntries is the default cap on keys in the cleaner's offset
// map. An entry costs about 40 bytes (a 128-bit key hash and an offset in a
// Go map), so the default bounds the map near 40 MiB.
const DefaultMaxMapEntries = 1 << 20

// cleanerState is a log's cleaner bookkeeping.
type cleanerState struct {
	mu          sync.Mutex // held by a clean or a plan; guards the fields below
	loaded      bool
	firstDirty  int64 // -1: unknown (the log start)
	nextHorizon int64 // earliest delete horizon of a kept tombstone, 0 if none

	// abort counts callers waiting for mu to change the log under a pass
	// (TruncateTo, TruncateFullyAndStartAt, as Kafka's
	// abortAndPauseCleaning): a running pass stops at its next batch,
	// changing nothing.
	abort atomic.Int32

	// crashAt is a test hook called at each step of a swap; returning true
	// stops the swap there, leaving the files as a crash would.
	crashAt func(step string) bool
}

// errCleanAborted stops a pass that a truncation is waiting for.
var errCleanAborted = errors.New("storage: cleaning aborted for a truncation")

// errSimulatedCrash is returned when crashAt stopped a swap.
var errSimulatedCrash = errors.New("storage: simulated crash during cleaner swap")

// CleanOptions tune one Clean call.
type CleanOptions struct {
	// MaxMapEntries caps the keys mapped per pass; <= 0 means
	// DefaultMaxMapEntries.
	MaxMapEntries int
	// Force cleans whatever is cleanable even below the dirty ratio (the
	// compaction lags and the active segment are still respected).
	Force bool
	// Throttle limits read and write bytes; nil is unlimited.
	Throttle *Throttle

	offsets *offsetMap // reused by a Cleaner
}

// CleanStats describe a Clean call.
type CleanStats struct {
	Cleaned     bool    // segments were rewritten
	Eligible    bool    // the log qualified for cleaning
	DirtyRatio  float64 // dirty bytes / cleanable bytes when planned
	FirstDirty  int64   // first dirty offset before the pass
	End         int64   // end of the mapped range: the new first dirty offset
	Uncleanable int64   // first offset that could not be cleaned this time
	Partial     bool    // the offset map filled before Uncleanable
	Keys        int     // keys mapped

	SegmentsRead, SegmentsWritten int
	BytesRead, BytesWritten       int64
	RecordsRemoved                int64 // including tombstones
	TombstonesRemoved             int64
	BatchesRemoved                int64
}

// cleanPlan is what a pass would do, computed under mu.
type cleanPlan struct {
	segs                   []*segment // segments below the uncleanable offset
	dirtyIdx               int        // first of segs holding dirty data
	firstDirty             int64
	uncleanable            int64
	cleanBytes, dirtyBytes int64
	ratio                  float64
	forced, horizonDue     bool
}

func (p *cleanPlan) eligible(minRatio float64, force bool) bool {
	if len(p.segs) == 0 {
		return false
	}
	if force || p.horizonDue {
		return true
	}
	return p.dirtyBytes > 0 && (p.ratio > minRatio || p.forced)
}

// planClean computes the cleanable range; mu (shared) and clean.mu held.
func (l *Log) planClean(nowMs int64) cleanPlan {
	cfg := &l.cfg
	fd := l.clean.firstDirty
	if leo := l.leo.Load(); fd < l.logStart || fd > leo {
		fd = l.logStart
	}
	p := cleanPlan{firstDirty: fd}
	n := len(l.segs) - 1 // never the active segment
	d := sort.Search(n, func(i int) bool { return l.segs[i].next > fd })
	u := n
	if cfg.MinCompactionLagMs > 0 {
		for i := d; i < n; i++ {
			if l.segs[i].largestTimestamp() > nowMs-cfg.MinCompactionLagMs {
				u = i
				break
			}
		}
	}
	// Nothing at or above the first unstable offset (an ongoing
	// transaction's data, or one whose marker is not replicated yet) nor
	// the high watermark is cleaned: whole segments below it only.
	hw := l.cleanHW.Load()
	if hw < 0 {
		hw = math.MaxInt64
	}
	limit := hw
	if fu, _ := l.producers.firstUnstable(hw); fu >= 0 {
		limit = min(limit, fu)
	}
	if limit != math.MaxInt64 {
		u = min(u, sort.Search(n, func(i int) bool { return l.segs[i].next > limit }))
	}
	p.uncleanable = l.segs[u].base
	p.dirtyIdx = min(d, u)
	for i := range u {
		if i < d {
			p.cleanBytes += l.segs[i].size.Load()
		} else {
			p.dirtyBytes += l.segs[i].size.Load()
		}
	}
	if total := p.cleanBytes + p.dirtyBytes; total > 0 {
		p.ratio = float64(p.dirtyBytes) / float64(total)
	}
	if d < u && cfg.MaxCompactionLagMs > 0 {
		if ts := l.segs[d].firstBatchTs; ts >= 0 && nowMs-ts > cfg.MaxCompactionLagMs {
			p.forced = true
		}
	}
	p.horizonDue = l.clean.nextHorizon > 0 && nowMs >= l.clean.nextHorizon
	p.segs = append([]*segment(nil), l.segs[:u]...)
	return p
}

// Clean runs one cleaner pass over the log if it is compacted and eligible
// (or opts.Force), as described at the top of cleaner.go. now is the time
// the compaction lags and delete horizons are measured against. Passes on
// one log are serialized; appends, reads, flushes and retention go on
// meanwhile, except for the short swap of each group. A pass that finds the
// log changed under it (retention deleted a segment it was cleaning) or
// closed stops without error and without moving the checkpoint.
func (l *Log) Clean(now time.Time, opts CleanOptions) (CleanStats, error) {
	if err := l.ensureLoaded(); err != nil {
		return CleanStats{}, err
	}
	l.clean.mu.Lock()
	defer l.clean.mu.Unlock()
	l.loadCleanerCheckpoint()
	nowMs := now.UnixMilli()
	var st CleanStats

	l.mu.RLock()
	if err := l.errClosedOrFailed(); err != nil {
		l.mu.RUnlock()
		return st, err
	}
	if !l.cfg.Compact {
		l.mu.RUnlock()
		return st, nil
	}
	p := l.planClean(nowMs)
	st.DirtyRatio, st.FirstDirty, st.Uncleanable = p.ratio, p.firstDirty, p.uncleanable
	if !p.eligible(l.cfg.MinCleanableDirtyRatio, opts.Force) {
		l.mu.RUnlock()
		return st, nil
	}
	st.Eligible = true
	for _, s := range p.segs {
		s.acquire()
	}
	protect := make(map[int64]bool)
	for _, e := range l.producers.m {
		for _, b := range e.batches {
			protect[b.firstOffset] = true
		}
		protect[e.lastOffset] = true // a marker last: see filterControl
	}
	cfg := l.cfg
	l.bg.Add(1)
	l.mu.RUnlock()
	defer func() {
		for _, s := range p.segs {
			s.release()
		}
		l.bg.Done()
	}()
	if err := l.ensureWritableLocked(); err != nil {
		return st, err
	}

	m := opts.offsets
	if m == nil {
		m = newOffsetMap()
	}
	m.reset()
	limit := opts.MaxMapEntries
	if limit <= 0 {
		limit = DefaultMaxMapEntries
	}
	c := &cleanPass{l: l, cfg: &cfg, nowMs: nowMs, m: m, protect: protect, throttle: opts.Throttle, stats: &st}
	end, err := c.buildOffsetMap(&p, limit)
	if errors.Is(err, errCleanAborted) {
		l.logger.Info("cleaning stopped: the log is being truncated")
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.End, st.Keys, st.Partial = end, len(m.m), end < p.uncleanable

	r := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].base >= end })
	for _, g := range groupSegments(p.segs[:r], &cfg) {
		ok, err := l.cleanGroup(c, g)
		if err != nil {
			return st, err
		}
		if !ok {
			l.logger.Info("cleaning stopped: the log changed or closed meanwhile")
			return st, nil
		}
		st.SegmentsRead += len(g)
		st.SegmentsWritten++
	}
	// Tombstones in segments not rewritten (at or after end) have no
	// horizon yet, so c.minHorizon covers every pending one.
	l.clean.firstDirty, l.clean.nextHorizon = end, c.minHorizon
	st.Cleaned = r > 0
	if err := writeFileAtomic(l.dir, cleanerCheckpointFile, fmt.Appendf(nil, "1\n%d %d\n", end, c.minHorizon), true); err != nil {
		return st, fmt.Errorf("storage: clean: %w", err)
	}
	l.logger.Info("cleaned log", "first_dirty", st.FirstDirty, "end", end, "partial", st.Partial, "keys", st.Keys,
		"segments_in", st.SegmentsRead, "segments_out", st.SegmentsWritten, "bytes_in", st.BytesRead, "bytes_out", st.BytesWritten,
		"records_removed", st.RecordsRemoved, "tombstones_removed", st.TombstonesRemoved)
	return st, nil
}

// cleanPriority reports whether the log is eligible for cleaning and its
// dirty ratio, for a Cleaner choosing the dirtiest log. A log being cleaned
// right now is not eligible.
func (l *Log) cleanPriority(nowMs int64) (float64, bool) {
	if l.pending.Load() {
		// Not loaded since a clean shutdown. Nothing was written since,
		// but time alone can make it eligible (min/max.compaction.lag.ms,
		// delete.retention.ms for its tombstones), as in Kafka, whose
		// cleaner sees every log after a restart: a compacted log is
		// loaded for the cleaner to judge.
		l.mu.RLock()
		compact := l.cfg.Compact && !l.closed
		l.mu.RUnlock()
		if !compact {
			return 0, false
		}
		if err := l.ensureLoaded(); err != nil {
			return 0, false // logged by the load; the log is offline
		}
	}
	if !l.clean.mu.TryLock() {
		return 0, false
	}
	defer l.clean.mu.Unlock()
	l.loadCleanerCheckpoint()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || l.failed != nil || !l.cfg.Compact {
		return 0, false
	}
	p := l.planClean(nowMs)
	return p.ratio, p.eligible(l.cfg.MinCleanableDirtyRatio, false)
}

// loadCleanerCheckpoint reads the checkpoint once; clean.mu held. A
// missing or unreadable checkpoint means nothing was cleaned yet.
func (l *Log) loadCleanerCheckpoint() {
	if l.clean.loaded {
		return
	}
	l.clean.loaded = true
	l.clean.firstDirty, l.clean.nextHorizon = -1, 0
	b, err := os.ReadFile(filepath.Join(l.dir, cleanerCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var fd, hz int64
	if err == nil {
		var lines []string
		lines, err = strings.Split(strings.TrimSpace(string(b)), "\n"), nil
		if len(lines) != 2 || lines[0] != "1" {
			err = fmt.Errorf("malformed %q", b)
		} else if _, err = fmt.Sscanf(lines[1], "%d %d", &fd, &hz); err == nil {
			l.clean.firstDirty, l.clean.nextHorizon = fd, hz
			return
		}
	}
	l.logger.Warn("ignoring unreadable cleaner checkpoint; cleaning from the log start", "err", err)
}

// offsetMap maps 128-bit hashes of keys (two maphash seeds, fresh per
// pass, so collisions are random and astronomically unlikely) to the latest
// offset of the key.
type offsetMap struct {
	s1, s2 maphash.Seed
	m      map[[2]uint64]int64
}

func newOffsetMap() *offsetMap { return &offsetMap{m: make(map[[2]uint64]int64)} }

func (m *offsetMap) reset() {
	clear(m.m)
	m.s1, m.s2 = maphash.MakeSeed(), maphash.MakeSeed()
}

func (m *offsetMap) hash(k []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(m.s1, k), maphash.Bytes(m.s2, k)}
}

// cleanPass is the state of one Clean call.
type cleanPass struct {
	l          *Log
	cfg        *Config
	nowMs      int64
	m          *offsetMap
	protect    map[int64]bool // base offsets of live producers' last batches
	throttle   *Throttle
	stats      *CleanStats
	txn        *txnCleanState // transactions of the range being read (cleaner_txn.go)
	minHorizon int64

	readBuf []byte
	out     []byte
	recs    []record.Record
	hdrs    []record.RecordHeader
	arena   []byte
}

// buildOffsetMap maps the keys of the dirty range. It returns the end of
// the mapped range: the uncleanable offset, or the base of the first batch
// that did not fit the map.
func (c *cleanPass) buildOffsetMap(p *cleanPlan, limit int) (int64, error) {
	fd := p.firstDirty
	if p.dirtyIdx < len(p.segs) {
		c.txn = newTxnCleanState(c.l.AbortedTxns(p.segs[p.dirtyIdx].base, p.uncleanable), nil)
	}
	var pins pinSet
	defer pins.release()
	for _, s := range p.segs[p.dirtyIdx:] {
		if c.l.isClosed() {
			return 0, ErrClosed
		}
		f, err := pins.file(s)
		if err != nil {
			return 0, fmt.Errorf("storage: clean: %w", err)
		}
		br := newBatchReader(f, 0, s.size.Load(), c.readBuf)
		for {
			b, pos, err := br.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, fmt.Errorf("%w: %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), pos, err)
			}
			h, err := validateStored(b)
			if err != nil {
				return 0, fmt.Errorf("%w: %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), pos, err)
			}
			if c.l.clean.abort.Load() > 0 {
				return 0, errCleanAborted
			}
			c.throttle.Wait(len(b))
			c.stats.BytesRead += int64(len(b))
			if h.IsControl() && h.NumRecords > 0 {
				ci, marker, err := parseControl(b)
				if err != nil {
					return 0, fmt.Errorf("%w: %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), pos, err)
				}
				if marker {
					c.txn.onControl(&h, &ci)
				}
				continue
			}
			if aborted := c.txn.onBatch(&h); aborted || h.LastOffset() < fd || h.IsControl() || h.NumRecords == 0 {
				continue
			}
			if len(c.m.m) > 0 && len(c.m.m)+int(h.NumRecords) > limit {
				c.readBuf = br.buf
				return max(h.BaseOffset, fd), nil
			}
			err = record.ForEach(b, func(r *record.Record) error {
				if off := h.BaseOffset + int64(r.OffsetDelta); off >= fd && r.Key != nil {
					c.m.m[c.m.hash(r.Key)] = off
				}
				return nil
			})
			if err != nil {
				return 0, fmt.Errorf("%w: %s at position %d: %v", ErrCorruptSegment, s.path(logSuffix), pos, err)
			}
		}
		c.readBuf = br.buf
	}
	return p.uncleanable, nil
}

// groupSegments splits segs into runs of adjacent segments whose combined
// size, index entries and offset span fit one segment, as Kafka groups them.
func groupSegments(segs []*segment, cfg *Config) [][]*segment {
	var groups [][]*segment
	for i := 0; i < len(segs); {
		j := i + 1
		size := segs[i].size.Load()
		idx := segs[i].offIdx.entries() + segs[i].timeIdx.entries()
		for j < len(segs) {
			s := segs[j]
			if size+s.size.Load() > cfg.SegmentBytes ||
				idx+s.offIdx.entries()+s.timeIdx.entries() > int(cfg.SegmentIndexBytes)/timeEntrySize ||
				s.next-1-segs[i].base > math.MaxInt32 {
				break
			}
			size += s.size.Load()
			idx += s.offIdx.entries() + s.timeIdx.entries()
			j++
		}
		groups = append(groups, segs[i:j])
		i = j
	}
	return groups
}

func (l *Log) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// validateStored checks a batch read from a segment: header, size, CRC and
// field sanity. Unlike record.Validate it accepts the offset gaps and empty
// batches that cleaning leaves.
func validateStored(b []byte) (record.Header, error) {
	h, err := record.ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: batch length field says %d bytes, have %d", record.ErrCorrupt, h.Size(), len(b))
	}
	if crc := record.ComputeCRC(b); crc != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", record.ErrBadCRC, h.CRC, crc)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 || int64(h.NumRecords) > int64(h.LastOffsetDelta)+1 {
		return h, fmt.Errorf("%w: %d records, last offset delta %d", record.ErrInvalid, h.NumRecords, h.LastOffsetDelta)
	}
	if c := h.Codec(); c > record.CodecZstd {
		return h, fmt.Errorf("%w: unknown compression codec %d", record.ErrInvalid, c)
	}
	return h, nil
}

// parseBase parses the 20-digit base offset at the start of a file name
// that ends with suffix.
func parseBase(name, suffix string) (int64, bool) {
	if !strings.HasSuffix(name, suffix) || len(name) != 20+len(suffix) {
		return 0, false
	}
	b, err := strconv.ParseInt(name[:20], 10, 64)
	return b, err == nil
}
