package storage

import (
	"fmt"
	"time"
)

// A log in journal mode (Options.Journal, journal.go) keeps the batches it
// journaled but has not written to its active segment in pend, in order,
// right after the segment's committed size: the segment's indexes,
// next offset and the log end offset count them already, s.size does not.
// Whatever reads or changes the segment file first writes pend
// (writePendingLocked with mu held, or settle), so that only the leader's
// journaled append and the log's in-memory bookkeeping ever see it.

// journaled reports whether appends of this log may go to the journal.
func (l *Log) journaled() bool {
	return l.opts.Journal != nil && l.opts.Journal.active && !l.opts.FsyncAlways
}

// journalOK reports whether the journal takes frames (it has not failed).
func (l *Log) journalOK() bool { return l.journaled() && l.opts.Journal.failedErr() == nil }

// addPendingLocked journals batch (already given its offsets) and adds it
// to the pending tail; mu held.
func (l *Log) addPendingLocked(batch []byte, base int64) error {
	first := len(l.pend) == 0
	f, since, err := l.opts.Journal.add(frameKindBatch, l, batch, first)
	if err != nil {
		return err
	}
	if first {
		l.pendFile = f
		l.pendSince = since
		l.pend = l.opts.Journal.getBuf()
		l.pendBase.Store(base)
	}
	l.pend = append(l.pend, batch...)
	l.pendLen.Store(int64(len(l.pend)))
	return nil
}

// writePendingLocked writes the pending tail to the active segment with
// one pwrite; mu held for writing. If the write fails (a full disk), what
// it wrote is cut off and the tail stays pending, for the next attempt:
// until then whatever needs the segment to hold it (a read of those
// offsets, another append, a flush) fails with the error too, and the
// journal keeps the tail's frames for a restart.
func (l *Log) writePendingLocked() error {
	if len(l.pend) == 0 {
		return nil
	}
	if l.failed != nil {
		return fmt.Errorf("storage: log failed earlier: %w", l.failed)
	}
	s := l.active()
	pos := s.size.Load()
	if n, err := s.writeAt(l.io, l.pend, pos); err != nil {
		l.cutBack(s, pos, err) // fails the log if the cut fails too
		return fmt.Errorf("%w: write of %d journaled bytes to %s (wrote %d): %w", ErrIO, len(l.pend), s.path(logSuffix), n, err)
	}
	s.size.Store(pos + int64(len(l.pend)))
	l.opts.Journal.release(l.pendFile)
	l.pendFile = nil
	l.opts.Journal.putBuf(l.pend)
	l.pend = nil
	l.pendLen.Store(0)
	return nil
}

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
	if len(l.pend) == 0 || !l.pendSince.Equal(since) {
		return
	}
	if err := l.writePendingLocked(); err != nil {
		l.logger.Warn("background write of the journaled tail failed", "err", err)
	}
}
