package storage

import (
	"fmt"
	"time"
)

// A log in journal mode (Options.Journal, journal.go) keeps the batches it
// journaled but has not written to its active segment as its pending
// tail, in order, right after the segment's committed size: the segment's
// indexes, next offset and the log end offset count them already, s.size
// does not. The tail does not copy the batches: pend points at their
// frames' payloads in the journal's chunks (pendRefs holds a reference to
// each batch's chunk), and writePendingLocked writes them with one
// pwritev. Whatever reads or changes the segment file first writes the
// tail (writePendingLocked with mu held, or settle), so that only the
// leader's journaled append and the log's in-memory bookkeeping ever see
// it.

// journaled reports whether appends of this log may go to the journal
// (with FsyncAlways only a durable one: Log.Sync).
func (l *Log) journaled() bool {
	j := l.opts.Journal
	return j != nil && j.active && (!l.opts.FsyncAlways || j.durable)
}

// journalOK reports whether the journal takes frames (it has not failed).
func (l *Log) journalOK() bool { return l.journaled() && l.opts.Journal.failedErr() == nil }

// addPendingLocked journals batch (already given its offsets) and adds it
// to the pending tail; mu held.
func (l *Log) addPendingLocked(batch []byte, base int64) error {
	first := l.pendBytes == 0
	a, err := l.opts.Journal.add(frameKindBatchHead, l, batch, first)
	if err != nil {
		return err
	}
	if first {
		l.pendFile = a.file
		l.pendSince = a.since
		l.pendBase.Store(base)
	}
	l.jend = a.end
	l.pend = append(l.pend, a.payload)
	l.pendRefs = append(l.pendRefs, a.chunk)
	l.pendBytes += int64(len(a.payload))
	l.pendLen.Store(l.pendBytes)
	return nil
}

// writePendingLocked writes the pending tail to the active segment with
// one pwrite; mu held for writing. If the write fails (a full disk), what
// it wrote is cut off and the tail stays pending, for the next attempt:
// until then whatever needs the segment to hold it (a read of those
// offsets, another append, a flush) fails with the error too, and the
// journal keeps the tail's frames for a restart.
func (l *Log) writePendingLocked() error {
	if l.pendBytes == 0 {
		return nil
	}
	if l.failed != nil {
		return fmt.Errorf("storage: log failed earlier: %w", l.failed)
	}
	s := l.active()
	pos := s.size.Load()
	if n, err := s.writevAt(l.io, l.pend, pos); err != nil {
		l.cutBack(s, pos, err) // fails the log if the cut fails too
		return fmt.Errorf("%w: write of %d journaled bytes to %s (wrote %d): %w", ErrIO, l.pendBytes, s.path(logSuffix), n, err)
	}
	s.size.Store(pos + l.pendBytes)
	j := l.opts.Journal
	j.release(l.pendFile)
	l.pendFile = nil
	for _, c := range l.pendRefs {
		j.unref(c)
	}
	// Keep the slices for the next tail unless a tail of tiny batches
	// grew them; clear drops the pointers into chunks that may be reused.
	if cap(l.pend) > pendSlotsKept {
		l.pend, l.pendRefs = nil, nil
	} else {
		clear(l.pend)
		clear(l.pendRefs)
		l.pend, l.pendRefs = l.pend[:0], l.pendRefs[:0]
	}
	l.pendBytes = 0
	l.pendLen.Store(0)
	return nil
}

// pendSlotsKept bounds the batches a log's tail slices keep room for
// between tails (a tail of 16 KiB in batches of 1 KiB needs 16).
const pendSlotsKept = 64

// settle writes the pending tail, if any, before a reader or a flush
// looks at the segment files.
func (l *Log) settle() error {
	if l.pendLen.Load() == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writePendingLocked()
}

// writePendingFromJournal is the journal's background write of a tail
// that started at since (a tail written meanwhile, or started later, is
// left alone).
func (l *Log) writePendingFromJournal(since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pendBytes == 0 || !l.pendSince.Equal(since) {
		return
	}
	if err := l.writePendingLocked(); err != nil {
		l.logger.Warn("background write of the journaled tail failed", "err", err)
	}
}

// syncJournaled is Sync for a log whose journal is durable (log.fsync=always
// with the journal): offset is durable once the journal is fsynced past the
// log's last frame, provided every batch the log wrote to its segment
// directly (large, transactional, replicated) is fsynced too. Tails written
// from the journal need no fsync: their frames stay in the journal until a
// syncfs (Journal.removeUnneeded). It reports false, doing nothing, when
// direct writes need the segment's fsync: Sync's flush does that, and
// covers the tail too.
func (l *Log) syncJournaled(offset int64) (bool, error) {
	for l.durable.Load() <= offset {
		l.mu.RLock()
		leo, jend, direct, gen := l.leo.Load(), l.jend, l.directEnd, l.truncGen
		l.mu.RUnlock()
		if offset >= leo {
			// A truncation removed the records: nothing past the end can
			// be synced.
			if offset = leo - 1; l.durable.Load() > offset {
				break
			}
		}
		if direct > l.durable.Load() || !l.journalOK() {
			return false, nil
		}
		if err := l.opts.Journal.SyncTo(jend); err != nil {
			return true, err
		}
		l.mu.Lock()
		if l.truncGen == gen && leo > l.durable.Load() {
			l.durable.Store(leo)
		}
		l.mu.Unlock()
	}
	return true, nil
}
