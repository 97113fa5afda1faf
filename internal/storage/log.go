package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Log is one partition's log on disk. All methods are safe for concurrent
// use.
//
// Locking: mu guards the segment list, the active segment's indexes and all
// in-memory state; Append holds it for the write(2). Readers hold it (shared)
// only to find a segment, look up its index and take a reference, and do
// their I/O without it. flushMu serializes fsyncs and index file writes, and
// is taken before mu by everything that deletes segments, so a flush never
// writes to a file being renamed away. syncMu and syncCond implement group
// commit for Sync.
type Log struct {
	dir    string
	opts   Options
	logger *slog.Logger

	flushMu sync.Mutex
	mu      sync.RWMutex

	// Guarded by mu.
	cfg         Config
	segs        []*segment // ascending base offset; the last is active
	logStart    int64
	epochs      epochCache
	producers   producerState
	unflushed   int64 // messages appended since the last fsync started
	lastFlushMs int64
	closed      bool
	failed      error // a write failed and could not be undone: the log refuses appends
	epochsDirty bool  // the leader epoch checkpoint is behind the cache (its write failed)
	// With Options.Lazy (lazy.go): noDir says the directory has not been
	// created yet (the log is empty and lives in memory); cleanMarker that
	// the clean shutdown marker is still on disk (nothing was written
	// since the clean shutdown). ensureWritable clears both.
	noDir       bool
	cleanMarker bool
	// markerLazy: the marker's summary names the active segment and its
	// size, checked at load, so the first append may remove the marker
	// without an fsync (ensureAppendable).
	markerLazy bool
	// sumIdx: the log's entry in the data dir's clean shutdown summary
	// (Options.Summary, dirsummary.go) plus one, 0 if none; it stands for
	// a marker, and cleanMarker covers both. voidPending: the entry is to
	// be voided by the next syncCreated, as a marker removed lazily is
	// made durable there (an atomic for the reason of dirUnsynced's).
	sumIdx      int
	voidPending atomic.Bool
	// dirUnsynced: the directory was created by an append and is not
	// durable yet; epochsUnsynced: the leader epoch checkpoint was
	// written without fsync. Set with mu held for writing, read and
	// cleared by syncCreated with mu held (lazy.go). recoveryFloor is the
	// highest recovery point that may be on disk (raised with mu held
	// before a flush writes it): the leader epoch checkpoint may skip its
	// fsync only while every epoch in it starts at or above it, since
	// recovery rebuilds those from the batches (writeEpochs).
	dirUnsynced    atomic.Bool
	epochsUnsynced atomic.Bool
	recoveryFloor  atomic.Int64
	// epochsPending: the leader epoch cache has new epochs, all at or
	// above recoveryFloor, that the checkpoint does not have; the tail
	// file has them (epochsChanged) and the next full flush writes the
	// checkpoint. epochTail: the tail file may exist. Both set with mu
	// held for writing, cleared with mu held.
	epochsPending atomic.Bool
	epochTail     atomic.Bool

	leo     atomic.Int64 // log end offset, published after each append
	durable atomic.Int64 // next offset after the last fsynced one
	// With a durable journal (syncJournaled), mu held: jend is the journal
	// position after the log's last batch frame, directEnd the log end
	// after its last batch written to the segment directly, and truncGen
	// counts the truncations that pulled durable down.
	jend      int64
	directEnd int64
	truncGen  uint64
	recovery  int64       // recovery point; guarded by flushMu
	rollFlush atomic.Bool // a background flush after a roll is queued
	bg        sync.WaitGroup

	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool

	coldDropped atomic.Int64                        // bytes cold reads dropped from the page cache (coldread.go)
	fsyncRounds atomic.Int64                        // number of flush rounds (observed by the group commit test)
	fsyncObs    atomic.Pointer[func(time.Duration)] // sees each log file fsync's duration (metrics)
	syncWaiters atomic.Int64                        // Sync callers waiting for a running fsync (test observation)
	beforeFsync func()                              // test hook, called by flush before fsyncing; set before use
	io          *FileIO                             // the write/fsync seam (faults.go), from Options.IO
	scratch     []byte                              // scan buffer reused during Open
	scanEpochs  epochScan                           // epoch checks of the batches Open scans (recover.go)
	rebuilt     bool                                // Open rebuilt some index
	// recoveryUnsynced: Open recovered the log without fsyncs
	// (Options.DeferRecoverySync); cleared by SyncRecovered.
	recoveryUnsynced atomic.Bool
	// pending: opened from its clean shutdown summary and not loaded yet
	// (deferred.go); set at Open, cleared under flushMu and mu by
	// ensureLoaded. pendingSize is Size until then. loadErr is the
	// deferred load's failure.
	pending     atomic.Bool
	pendingSize int64
	pendingSum  cleanSummary
	loadErr     error
	// openSnaps are the producer snapshots cleanDir's listing found, for
	// loadProducerState to use rather than list the directory again
	// (openSnapsListed); only during a load.
	openSnaps       []int64
	openSnapsListed bool
	// snaps: the producer snapshot files, when known (snapList); mu.
	snaps snapList

	clean cleanerState // log cleaner bookkeeping (cleaner.go)
	// cleanHW is the high watermark last reported by OnHighWatermark, -1
	// if none: the cleaner does not clean past it.
	cleanHW atomic.Int64
	// txnsSeen is set (for good) once the producer state has held a
	// transaction, under mu: until then the last stable offset is the
	// high watermark without taking mu (the common, non-transactional
	// case on every fetch and high watermark move).
	txnsSeen atomic.Bool

	hwMu sync.Mutex   // serializes SaveHighWatermark
	hw   atomic.Int64 // high watermark last saved or read at Open (follower.go)
	// hwFileLen is the length of what SaveHighWatermark last wrote to
	// replication-offset-checkpoint, 0 before it wrote (then the file's
	// length is unknown and the next write truncates it), -1 after a
	// failed write; guarded by hwMu.
	hwFileLen int

	// Journal mode (pending.go): pend is the journaled tail not yet in
	// the active segment (its batches in the journal's chunks, pendRefs),
	// pendBytes its length, pendFile the journal file it starts in,
	// pendSince when its first batch came; guarded by mu. pendLen (=
	// pendBytes) and pendBase (the offset of its first batch) are read
	// without mu.
	pend      [][]byte
	pendRefs  []*jchunk
	pendBytes int64
	pendFile  *jfile
	pendSince time.Time
	pendLen   atomic.Int64
	pendBase  atomic.Int64
}

func (l *Log) now() time.Time {
	if l.opts.Now != nil {
		return l.opts.Now()
	}
	return time.Now()
}

func (l *Log) nowMs() int64 { return l.now().UnixMilli() }

// Open opens the log in dir, creating the directory if needed, and recovers
// it if it was not closed cleanly.
func Open(dir string, cfg Config, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{
		dir:       dir,
		opts:      opts,
		logger:    opts.Logger.With("component", "storage", "dir", dir),
		cfg:       cfg,
		producers: newProducerState(),
		io:        opts.IO,
	}
	l.syncCond = sync.NewCond(&l.syncMu)
	l.cleanHW.Store(-1)
	_, statErr := os.Lstat(dir)
	created := errors.Is(statErr, os.ErrNotExist) // nothing by that name, not even a dangling link
	if created {
		// The directory was deleted since the summary was written: a log
		// created under its name must not inherit its entry.
		if i, _, _ := opts.Summary.live(filepath.Base(dir)); i >= 0 {
			if err := opts.Summary.void(i); err != nil {
				return nil, fmt.Errorf("storage: open %s: %w: %w", dir, ErrIO, err)
			}
		}
	}
	if created && opts.Lazy {
		l.openInMemory()
		return l, nil
	}
	if statErr == nil && opts.Lazy && opts.DeferLoad {
		ok, err := l.openPending()
		if err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", dir, err)
		}
		if ok {
			return l, nil // loaded by its first use (deferred.go)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if created {
			os.RemoveAll(dir) // MkdirAll may have made it before failing
		}
		return nil, fmt.Errorf("storage: %w: create log dir %s: %w", ErrIO, dir, err)
	}
	needFlush, err := l.load()
	if err == nil && needFlush {
		if opts.DeferRecoverySync {
			// The caller makes it durable, for all the logs it opens at
			// once (Options.DeferRecoverySync). The recovery point stays
			// where it was, and the rebuilt indexes stay in memory: the
			// next full flush (a roll, a clean shutdown) writes them and
			// moves the recovery point, once the files are durable; a
			// crash before it recovers from the same point again.
			l.recoveryUnsynced.Store(true)
		} else {
			// Make everything recovered durable (after a process crash it
			// may still be only in the page cache) and record the
			// recovery point.
			err = l.flush(true)
		}
	}
	if err != nil {
		for _, s := range l.segs {
			s.release()
		}
		if created {
			// A log that never opened leaves no directory behind (a new
			// partition on a full disk would otherwise be an orphan).
			if rerr := os.RemoveAll(dir); rerr != nil {
				opts.Logger.Warn("removing the directory of a log that failed to open", "dir", dir, "err", rerr)
			}
		}
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	l.lastFlushMs = l.nowMs()
	l.opts.ScanBuffers.put(l.scratch)
	l.scratch = nil
	return l, nil
}

// load reads the directory and brings the in-memory state up to date.
// needFlush says it recovered or repaired something, which the caller then
// makes durable (flush).
func (l *Log) load() (needFlush bool, err error) {
	if err := writePartitionMetadata(l.dir, l.opts.TopicID, true); err != nil {
		return false, err
	}
	bases, err := l.cleanDir()
	if err != nil {
		return false, err
	}
	// The log is clean if it has a marker, or a live entry in the data
	// dir's summary, which stands for one.
	_, statErr := os.Stat(filepath.Join(l.dir, cleanShutdownFile))
	entrySum, entryHasSum, inSummary := l.summaryEntry()
	clean := statErr == nil || inSummary
	l.markerLazy = false
	if clean && l.opts.Lazy {
		sum, ok := entrySum, entryHasSum
		if !inSummary {
			sum, ok = readCleanSummary(l.dir)
		}
		if ok && sum.hasActive {
			if len(bases) > 0 && bases[len(bases)-1] == sum.activeBase && sum.activeMatches(l.dir) {
				l.markerLazy = true
			} else {
				// An append after the clean restart reached the disk, its
				// marker removal did not (ensureAppendable): the files
				// are not as the marker says. Recover, as after any
				// crash, with the marker gone first. (An entry of the
				// data dir's summary whose active segment changed is
				// voided when the summary is opened: OpenDirSummary.)
				l.logger.Warn("the active segment changed after the clean shutdown marker was written; recovering the log")
				if err := l.dropClean(); err != nil {
					return false, err
				}
				clean = false
			}
		}
	}
	if clean && l.opts.Lazy {
		// Keep the marker until the first write (ensureWritable): until
		// then the files are as the clean shutdown left them.
		l.cleanMarker = true
	} else if clean {
		// Remove the marker durably before anything is written, so that a
		// crash from now on is seen as unclean.
		if err := l.dropClean(); err != nil {
			return false, err
		}
	}
	if l.logStart, err = readOffsetCheckpoint(l.dir, logStartCheckpointFile, 0); err != nil {
		return false, err
	}
	if l.recovery, err = readOffsetCheckpoint(l.dir, recoveryCheckpointFile, 0); err != nil {
		return false, err
	}
	l.raiseRecoveryFloor(l.recovery)
	l.loadHighWatermark()
	if l.epochs, err = readEpochCheckpoint(l.dir); err != nil {
		l.logger.Warn("ignoring unreadable leader epoch checkpoint", "err", err)
		l.epochs = epochCache{}
	}
	if tail, ok, exists := readEpochTail(l.dir, l.epochs); ok {
		// New epochs of an earlier process that the checkpoint did not
		// get yet; the file stays until the checkpoint has them.
		l.epochs = tail
		l.epochTail.Store(true)
		l.epochsPending.Store(true)
	} else if exists {
		// Overtaken by the checkpoint (a crash before its removal), or
		// torn by a machine crash: a later truncation of the checkpoint
		// must not find it extending the result.
		if err := os.Remove(filepath.Join(l.dir, epochTailFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("remove %s: %w", epochTailFile, err)
		}
	}
	epochsBefore := string(l.epochs.encode())
	l.scanEpochs = epochScan{known: l.epochs.known(), max: -1, cut: -1}

	recovered, err := l.loadSegments(bases, clean)
	if err != nil {
		return false, err
	}
	now := l.now()
	if len(l.segs) == 0 {
		s, err := openSegment(l.dir, l.logStart, now, true, l.opts.FDCache)
		if err != nil {
			return false, err
		}
		l.segs = append(l.segs, s)
	}
	leo := l.active().next
	if l.logStart > leo {
		// Data below the checkpointed start offset was lost (or never
		// existed): start over at the log start offset, as Kafka does.
		l.logger.Warn("log start offset is past the log end; discarding all segments", "log_start", l.logStart, "log_end", leo)
		for _, s := range l.segs {
			if err := s.markDeleted(); err != nil {
				return false, err
			}
			s.release()
		}
		s, err := openSegment(l.dir, l.logStart, now, true, l.opts.FDCache)
		if err != nil {
			return false, err
		}
		l.segs = []*segment{s}
		leo = l.logStart
	}
	if first := l.segs[0].base; l.logStart < first {
		l.logStart = first
	}
	l.leo.Store(leo)
	l.durable.Store(leo)
	l.recovery = min(l.recovery, leo)
	for _, s := range l.segs {
		s.onClose = l.reportCloseError
	}

	l.epochs.truncateFromEnd(leo)
	l.epochs.truncateFromStart(l.logStart)
	if string(l.epochs.encode()) != epochsBefore {
		if err := l.ensureWritable(); err != nil {
			return false, err
		}
		if err := l.writeEpochsDurably(true); err != nil {
			return false, err
		}
	}
	rebuiltTxn, err := l.loadProducerState()
	if err != nil {
		return false, err
	}
	if recovered || !clean || rebuiltTxn {
		if err := l.ensureWritable(); err != nil { // a clean log being repaired is no longer as it was shut down
			return false, err
		}
		if !clean {
			// A crash may have come before the flush that would have made
			// a lazily created directory durable (ensureAppendable): the
			// recovery's flush, or the caller's syncfs
			// (DeferRecoverySync), makes sure it is.
			l.dirUnsynced.Store(true)
		}
		return true, nil
	}
	return false, nil
}

// cleanDir removes leftovers (deleted segments, temp files, indexes without
// a log) and returns the base offsets of the segments, ascending.
func (l *Log) cleanDir() ([]int64, error) {
	ents, err := l.recoverCleanerSwap()
	if err != nil {
		return nil, err
	}
	if ents == nil {
		if ents, err = os.ReadDir(l.dir); err != nil {
			return nil, fmt.Errorf("list log dir: %w", err)
		}
	}
	logs := map[int64]bool{}
	var bases []int64
	l.openSnaps, l.openSnapsListed = l.openSnaps[:0], true
	for _, de := range ents {
		name := de.Name()
		if off, err := strconv.ParseInt(strings.TrimSuffix(name, snapshotSuffix), 10, 64); err == nil && strings.HasSuffix(name, snapshotSuffix) {
			l.openSnaps = append(l.openSnaps, off)
		}
		if strings.HasSuffix(name, logSuffix) {
			if b, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64); err == nil && len(name) == 20+len(logSuffix) {
				logs[b] = true
				bases = append(bases, b)
			}
		}
	}
	for _, de := range ents {
		name := de.Name()
		remove := strings.HasSuffix(name, deletedSuffix) || strings.HasSuffix(name, tmpSuffix)
		for _, suf := range []string{indexSuffix, timeIndexSuffix, txnIndexSuffix} {
			if strings.HasSuffix(name, suf) {
				b, err := strconv.ParseInt(strings.TrimSuffix(name, suf), 10, 64)
				remove = remove || err != nil || !logs[b]
			}
		}
		if remove {
			if err := os.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, fmt.Errorf("remove leftover %s: %w", name, err)
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

func (l *Log) reportCloseError(err error) {
	l.logger.Warn("closing or removing segment files failed", "err", err)
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }

// segmentFor returns the index of the segment that holds off: the last one
// whose base is <= off (0 if off is below all).
func (l *Log) segmentFor(off int64) int {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > off })
	return max(i-1, 0)
}

// segmentAfter returns the index of the first segment whose base is > base.
func (l *Log) segmentAfter(base int64) int {
	return sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > base })
}

// LogStartOffset is the first offset readable from the log.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStart
}

// LogEndOffset is the offset the next appended record will get.
func (l *Log) LogEndOffset() int64 { return l.leo.Load() }

// DurableOffset is the offset after the last fsynced record: with
// FsyncAlways, records below it survive a machine crash. Without
// FsyncAlways, durability is the page cache's and DurableOffset is the log
// end offset.
func (l *Log) DurableOffset() int64 {
	if !l.opts.FsyncAlways {
		return l.leo.Load()
	}
	return l.durable.Load()
}

// Size is the number of bytes in all segment files.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.pending.Load() {
		return l.pendingSize
	}
	n := l.pendBytes
	for _, s := range l.segs {
		n += s.size.Load()
	}
	return n
}

// SetConfig replaces the configuration; it applies from the next call.
func (l *Log) SetConfig(cfg Config) {
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
}

// Close flushes everything, writes a producer snapshot and marks the log as
// cleanly shut down. Reads still holding a ReadResult keep their files open
// until they Release them.
func (l *Log) Close() error {
	_, err := l.closeWith(true)
	return err
}

// CloseDeferSync is Close for a broker that closes many logs at once and
// makes them durable with one syncfs(2) (SyncFS) rather than several
// fsyncs per log. It writes what Close writes but without fsyncs, and
// returns finish, which writes, if the one on disk is below the active
// segment, the recovery point, and then the clean shutdown marker, or with
// Options.Summary stages the log's entry there instead (also without
// fsync; nil if the log gets no marker). The caller must: close every log,
// SyncFS, call every finish, SyncFS again (then, with a summary,
// DirSummary.Commit). A crash before the first SyncFS returns finds no
// new marker and recovers the log as after any crash; the marker is
// written only once the data, indexes and producer snapshot it vouches
// for are durable. With a summary, a log nothing was written to since it
// opened stages its entry at once.
func (l *Log) CloseDeferSync() (finish func() error, err error) { return l.closeWith(false) }

func (l *Log) closeWith(fsync bool) (func() error, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, nil
	}
	if err := l.writePendingLocked(); err != nil {
		// The journal keeps the tail; the log is failed and gets no
		// clean shutdown marker.
		l.logger.Warn("close: writing the journaled tail failed", "err", err)
	}
	l.closed = true
	if l.noDir || l.cleanMarker {
		// Nothing was written since the log was opened: the files (if
		// any) are as a clean shutdown left them, marker included. The
		// next data dir summary says so again.
		if !fsync && !l.noDir && l.failed == nil && l.loadErr == nil && l.opts.Summary != nil {
			sum, hasSum := l.pendingSum, true
			if !l.pending.Load() {
				sum, hasSum = l.summary(), len(l.producers.txns) == 0
			}
			l.opts.Summary.stage(filepath.Base(l.dir), sum, hasSum)
		}
		l.mu.Unlock()
		l.syncMu.Lock()
		l.syncCond.Broadcast()
		l.syncMu.Unlock()
		l.bg.Wait()
		l.mu.Lock()
		for _, s := range l.segs {
			s.release()
		}
		l.mu.Unlock()
		return nil, nil
	}
	if len(l.segs) > 0 { // none only after a failed TruncateFullyAndStartAt
		l.active().finishTimeIndex()
	}
	l.mu.Unlock()

	l.syncMu.Lock()
	l.syncCond.Broadcast()
	l.syncMu.Unlock()
	l.bg.Wait()

	err := l.flushWith(true, fsync)
	l.mu.Lock()
	defer l.mu.Unlock()
	leo := l.leo.Load()
	if err == nil {
		l.producers.prune(l.logStart, l.nowMs(), l.cfg.ProducerIDExpiryMs)
		activeBase := leo
		if len(l.segs) > 0 {
			activeBase = l.active().base
		}
		how := snapshotDeferred
		if fsync {
			how = snapshotSynced
		}
		err = l.producers.writeSnapshot(l.dir, leo, activeBase, how, &l.snaps)
	}
	var finish func() error
	if err == nil && l.failed == nil {
		// The marker carries what a deferred Open needs (deferred.go),
		// unless a transaction is open: its log is loaded at Open.
		var marker []byte
		summary, hasSum := l.summary(), len(l.producers.txns) == 0
		if hasSum {
			marker = summary.encode()
		}
		if fsync {
			err = writeFileAtomic(l.dir, cleanShutdownFile, marker, true)
		} else {
			dir := l.dir
			// Recovery scans every segment from the one holding the
			// recovery point (loadSegments): a recovery point already in
			// the active segment gives a later recovery the same work as
			// one at the log end, so it is not rewritten. (If recovery
			// ever starts at the recovery point itself, write it again.)
			writeRecovery := len(l.segs) > 0 && l.recovery < l.active().base
			finish = func() error {
				if writeRecovery {
					if err := writeFileAtomic(dir, recoveryCheckpointFile, []byte("0\n"+strconv.FormatInt(leo, 10)+"\n"), false); err != nil {
						return fmt.Errorf("storage: close %s: %w", dir, err)
					}
				}
				if sum := l.opts.Summary; sum != nil {
					sum.stage(filepath.Base(dir), summary, hasSum)
					return nil
				}
				if err := writeFileNew(dir, cleanShutdownFile, marker); err != nil {
					return fmt.Errorf("storage: close %s: %w", dir, err)
				}
				return nil
			}
		}
	}
	for _, s := range l.segs {
		s.release()
	}
	if err != nil {
		return nil, fmt.Errorf("storage: close %s: %w", l.dir, err)
	}
	return finish, nil
}

// Delete closes the log and removes its directory: it is first renamed to
// "<dir>.<unix nanos>-delete" so that a crash midway leaves no half-deleted
// partition under its real name.
func (l *Log) Delete() error {
	if err := l.Close(); err != nil {
		l.logger.Warn("close before delete failed", "err", err)
	}
	l.mu.Lock()
	noDir := l.noDir
	var err error
	if l.opts.Journal != nil && !noDir {
		// Its frames must not be replayed into a log of the same name
		// created later.
		err = l.opts.Journal.barrier(l)
	}
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.dir, err)
	}
	if noDir {
		return nil // never created on disk
	}
	del := fmt.Sprintf("%s.%d-delete", filepath.Clean(l.dir), l.now().UnixNano())
	if err := os.Rename(l.dir, del); err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.dir, err)
	}
	if err := syncDir(filepath.Dir(del)); err != nil {
		l.logger.Warn("fsync parent after rename for delete failed", "err", err)
	}
	if err := os.RemoveAll(del); err != nil {
		return fmt.Errorf("storage: delete %s: %w", l.dir, err)
	}
	return nil
}

// errClosedOrFailed returns the error for a closed or failed log; mu held.
func (l *Log) errClosedOrFailed() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("storage: log failed earlier: %w", l.failed)
	}
	return nil
}
