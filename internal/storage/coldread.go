package storage

import (
	"golang.org/x/sys/unix"
)

// Cold reads and the page cache (issue 14: lagging readers must not slow
// the tail).
//
// A consumer catching up on old data pulls it through the page cache, and
// under memory pressure those pages push out the tail that real-time
// consumers and followers read, which then comes from disk. A read that
// starts more than Options.ColdReadBytes below the log end is cold: once
// it is served, the pages of the log it has passed (its segment below the
// read position, and the whole segment before it) are dropped with
// posix_fadvise(DONTNEED). The cache then holds only the cold reader's
// readahead, not the whole history it walks through. Pages of the current
// read are not dropped: sendfile may still be sending them.
//
// Each segment remembers how far it has been dropped, so a reader walking
// a segment drops each page once; a second cold reader behind the first
// drops nothing (its pages are evicted in the ordinary way). Reads near
// the end of the log (the tail) never drop anything, and pay nothing but a
// comparison for it.

// dropBehind is the page-cache drop a cold read asks for: up to two
// segment ranges, each holding a reference until run.
type dropBehind struct {
	segs [2]*segment
	to   [2]int64
	n    int
}

// coldLocked decides whether a read starting at pos of s (found from index
// si) is cold and, if so, what it drops. l.mu held (shared).
func (l *Log) coldLocked(si int, s *segment, pos int64) dropBehind {
	var d dropBehind
	limit := l.opts.ColdReadBytes
	if limit <= 0 {
		return d
	}
	for si < len(l.segs) && l.segs[si] != s {
		si++
	}
	behind := s.size.Load() - pos
	for _, t := range l.segs[si+1:] {
		behind += t.size.Load()
		if behind > limit {
			break
		}
	}
	if behind <= limit {
		return d
	}
	if si > 0 {
		if p := l.segs[si-1]; p.dropped.Load() < p.size.Load() {
			p.acquire()
			d.segs[d.n], d.to[d.n] = p, p.size.Load()
			d.n++
		}
	}
	if s.dropped.Load() < pos {
		s.acquire()
		d.segs[d.n], d.to[d.n] = s, pos
		d.n++
	}
	return d
}

// run drops the ranges and releases the references. l.mu not held.
func (d *dropBehind) run(l *Log) {
	for i := 0; i < d.n; i++ {
		s, to := d.segs[i], d.to[i]
		from := s.dropped.Load()
		if to > from && s.dropped.CompareAndSwap(from, to) {
			// Advice only: a failure costs cache, never data.
			if err := unix.Fadvise(int(s.f.Fd()), from, to-from, unix.FADV_DONTNEED); err != nil {
				l.logger.Debug("drop cold pages", "segment", s.path(logSuffix), "err", err)
			} else {
				l.coldDropped.Add(to - from)
			}
		}
		s.release()
	}
}

// ColdDroppedBytes is how many bytes of this log cold reads have dropped
// from the page cache since it was opened.
func (l *Log) ColdDroppedBytes() int64 { return l.coldDropped.Load() }
