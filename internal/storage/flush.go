package storage

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// flush fsyncs the log files of every segment with unsynced data, covering
// everything appended before it started, and advances the durable offset.
// With full it also writes and fsyncs the index files and advances the
// recovery point checkpoint. Flushes are serialized by flushMu.
func (l *Log) flush(full bool) error { return l.flushWith(full, true) }

// flushWith is flush; without fsync it only writes the index tails (with
// full) and leaves the durable offset and the recovery point alone: the
// caller makes the files durable another way (CloseDeferSync).
func (l *Log) flushWith(full, fsync bool) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	if err := l.settle(); err != nil {
		return err
	}
	if full {
		l.rollFlush.Store(false)
	}

	type job struct {
		s      *segment
		size   int64
		offIdx []byte
		timIdx []byte
		txnIdx []byte
		// keepIdx: the offset and time index tails stay in memory
		// (smallIndexTail).
		keepIdx bool
	}
	l.mu.RLock()
	if l.failed != nil {
		err := l.failed
		l.mu.RUnlock()
		return fmt.Errorf("storage: log failed earlier: %w", err)
	}
	leo := l.leo.Load()
	unflushed := l.unflushed
	if full && fsync && l.epochsPending.Load() {
		// New epochs the appends left in the tail file go into the
		// checkpoint, which holds older epochs only it knows, durably,
		// before the recovery point moves past them. Without fsync
		// (CloseDeferSync) the tail stays: the caller's syncfs makes it
		// durable before the recovery point is written, and Open reads
		// it. Replacing the checkpoint there would leave it, with the
		// epochs only it knows, unsynced until that syncfs.
		if err := l.writeEpochsDurably(true); err != nil {
			l.mu.RUnlock()
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
	}
	if fsync {
		// What the appends left unsynced (a new directory, an epoch
		// checkpoint) becomes durable before the data it holds, and before
		// the recovery point moves past epochs only the checkpoint knows:
		// from now on an epoch checkpoint write holding epochs below leo
		// fsyncs (writeEpochs). Under mu (read) no append runs meanwhile.
		if full {
			l.raiseRecoveryFloor(leo)
		}
		if err := l.syncCreated(); err != nil {
			l.mu.RUnlock()
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
	}
	jobs := make([]job, 0, 2)
	for i, s := range l.segs {
		size := s.size.Load()
		j := job{s: s, size: size}
		if full {
			j.offIdx, j.timIdx, j.txnIdx = s.offIdx.buf, s.timeIdx.buf, s.txn.buf
			j.keepIdx = !fsync && i == len(l.segs)-1 && s.smallIndexTail(size)
		}
		if size > s.syncedSize || (full && (s.staleIdx || len(j.offIdx) > s.offIdx.written || len(j.timIdx) > s.timeIdx.written || len(j.txnIdx) > s.txn.written)) {
			s.acquire()
			jobs = append(jobs, j)
		}
	}
	l.mu.RUnlock()
	defer func() {
		for _, j := range jobs {
			j.s.release()
		}
	}()

	l.fsyncRounds.Add(1)
	if l.beforeFsync != nil {
		l.beforeFsync()
	}
	for _, j := range jobs {
		s := j.s
		if fsync && j.size > s.syncedSize {
			if err := l.syncFile(s); err != nil {
				return l.failFsync(s, err)
			}
			s.syncedSize = j.size
		}
		if !full || s.deleted.Load() {
			continue
		}
		var err error
		if s.staleIdx {
			// Rewritten from the start below; emptied first, so that an
			// index with no entry leaves no earlier process's file behind.
			for _, suf := range []string{indexSuffix, timeIndexSuffix} {
				if err := os.Truncate(s.path(suf), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("storage: %w: %w", ErrIO, err)
				}
			}
			s.offIdx.written, s.timeIdx.written = 0, 0
			s.staleIdx = false
		}
		if !j.keepIdx {
			if s.offIdx.written, err = writeIndexTailSync(s.path(indexSuffix), j.offIdx, s.offIdx.written, fsync); err != nil {
				return fmt.Errorf("storage: %w: %w", ErrIO, err)
			}
			if s.timeIdx.written, err = writeIndexTailSync(s.path(timeIndexSuffix), j.timIdx, s.timeIdx.written, fsync); err != nil {
				return fmt.Errorf("storage: %w: %w", ErrIO, err)
			}
		}
		if s.txn.written, err = writeIndexTailSync(s.path(txnIndexSuffix), j.txnIdx, s.txn.written, fsync); err != nil {
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
	}

	if !fsync {
		return nil
	}
	l.mu.Lock()
	if leo > l.durable.Load() {
		l.durable.Store(leo)
	}
	l.unflushed -= unflushed
	l.lastFlushMs = l.nowMs()
	l.mu.Unlock()

	if full && leo > l.recovery {
		if err := writeOffsetCheckpoint(l.dir, recoveryCheckpointFile, leo); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		l.recovery = leo
	}
	return nil
}

// Sync returns once every record up to and including offset is fsynced,
// when the log was opened with FsyncAlways. Concurrent callers share
// fsyncs (group commit): while one fsync runs, later callers wait, and the
// next fsync covers all of them. Without FsyncAlways it returns nil at once:
// data is as durable as the page cache and the flush.messages/flush.ms
// policy make it.
func (l *Log) Sync(offset int64) error {
	if !l.opts.FsyncAlways {
		return nil
	}
	if l.journaled() {
		if done, err := l.syncJournaled(offset); done || err != nil {
			return err
		}
	}
	if leo := l.leo.Load(); offset >= leo {
		offset = leo - 1 // nothing past the end can be synced
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	for l.durable.Load() <= offset {
		if leo := l.leo.Load(); offset >= leo {
			// A truncation (TruncateTo) removed the records: nothing past
			// the end can be synced.
			offset = leo - 1
			if l.durable.Load() > offset {
				break
			}
		}
		if l.syncing {
			l.syncWaiters.Add(1)
			l.syncCond.Wait()
			l.syncWaiters.Add(-1)
			continue
		}
		l.mu.RLock()
		closed := l.closed
		l.mu.RUnlock()
		if closed {
			return ErrClosed
		}
		l.syncing = true
		l.syncMu.Unlock()
		err := l.flush(false)
		l.syncMu.Lock()
		l.syncing = false
		l.syncCond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// MaybeFlush fsyncs unflushed data if flush.ms has passed since the last
// flush. The broker calls it periodically.
func (l *Log) MaybeFlush() error {
	l.mu.RLock()
	due := l.unflushed > 0 && !l.closed && l.nowMs()-l.lastFlushMs >= l.cfg.FlushMs
	l.mu.RUnlock()
	if !due {
		return nil
	}
	return l.flush(false)
}

// Flush fsyncs all data and indexes and advances the recovery point, so a
// crash from now on only needs to recover the active segment.
func (l *Log) Flush() error {
	if l.pending.Load() {
		return nil // not loaded since a clean shutdown: everything is durable
	}
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return l.flush(true)
}

// syncFile fsyncs a segment's log file, timing it for the observer.
func (l *Log) syncFile(s *segment) error {
	f, err := s.file()
	if err != nil {
		return err
	}
	defer s.unpin()
	obs := l.fsyncObs.Load()
	if obs == nil {
		return l.io.sync(f)
	}
	start := time.Now()
	err = l.io.sync(f)
	(*obs)(time.Since(start))
	return err
}

// SetFsyncObserver makes f see the duration of every fsync of a segment
// file (nil stops it). f must be cheap and safe for concurrent use.
func (l *Log) SetFsyncObserver(f func(time.Duration)) {
	if f == nil {
		l.fsyncObs.Store(nil)
		return
	}
	l.fsyncObs.Store(&f)
}

// smallIndexTailBytes bounds the part of an active segment whose index
// entries a deferred close may leave unwritten (smallIndexTail).
const smallIndexTailBytes = 64 << 10

// smallIndexTail reports whether a deferred close (CloseDeferSync) may
// leave the active segment's unwritten offset and time index entries in
// memory only: the segment holds at most smallIndexTailBytes after the
// batch of the last entry on disk, and the files on disk are not stale.
// A load walks the batch headers after the last entry on disk anyway
// (loadIndexes) and makes the missing entries again as it goes, as the
// appends made them; the next full flush writes them. At a shutdown of
// 20,000 partitions the index tails' writes (an open, a write and a close
// for each of two files) were 39 % of the broker's CPU (issue 14). mu held
// (shared).
func (s *segment) smallIndexTail(size int64) bool {
	if s.staleIdx || s.mem {
		return false
	}
	from := int64(0)
	if n := s.offIdx.written / offsetEntrySize; n > 0 {
		_, pos := s.offIdx.entry(n - 1)
		from = int64(pos)
	}
	return size-from <= smallIndexTailBytes
}
