package storage

import (
	"golang.org/x/sys/unix"
	"os"
)

// Cold reads and the page cache (issue 14: lagging readers must not slow
// the tail).
//
// A consumer catching up on old data pulls it through the page cache, and
// under memory pressure those pages push out the tail that real-time
// consumers and followers read, which then comes from disk. A read that
// starts more than Options.ColdReadBytes below the log end is cold: the
// pages of the log it has passed, up to coldDropLag (32 MiB, at most half
// the threshold) behind its position, are dropped with
// posix_fadvise(DONTNEED). The cache then holds the cold
// reader's last fetches and readahead, not the whole history it walks
// through.
//
// Each segment remembers how far it has been dropped, so a reader walking
// a segment drops each page once; a second cold reader behind the first
// drops nothing (its pages are evicted in the ordinary way). Reads near
// the end of the log (the tail) never drop anything, and pay nothing but a
// comparison for it.

// dropBehind is the page-cache drop a cold read asks for: up to four
// segment ranges, each holding a reference until run.
type dropBehind struct {
	segs [4]*segment
	to   [4]int64
	n    int
}

// coldDropLag is how far behind a cold read its drop stops: the pages of
// the last fetches may still be referenced by socket buffers (sendfile
// hands the socket page references, freed only when the receiver has read
// them), and the kernel drops no page that is referenced. A drop is tried
// once per page, so it waits until the pages are surely free.
const coldDropLag = 32 << 20

// dropAlign is the granularity of drops: a multiple of the largest folio
// the page cache builds for a file (2 MiB on x86-64 and arm64 with 4 KiB
// pages).
const dropAlign = 8 << 20

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
	// Walk back from the read position: the first lag bytes stay, every
	// page before them goes, back to the first segment already dropped
	// whole (a walking reader dropped everything before it already).
	cut := min(coldDropLag, limit/2)
	end := pos
	for j := si; j >= 0 && d.n < len(d.segs); j-- {
		t := l.segs[j]
		if j < si {
			end = t.size.Load()
		}
		to := end - cut
		cut = max(cut-end, 0)
		if to <= 0 {
			continue
		}
		if t.dropped.Load() >= to {
			break
		}
		t.acquire()
		d.segs[d.n], d.to[d.n] = t, to
		d.n++
	}
	return d
}

// run drops the ranges and releases the references. l.mu not held.
func (d *dropBehind) run(l *Log) {
	for i := 0; i < d.n; i++ {
		s, to := d.segs[i], d.to[i]
		// The kernel drops whole folios only, and the page cache holds
		// file data in folios of up to 2 MiB (naturally aligned): a
		// drop ends on a dropAlign boundary (so that the next one starts
		// on one), except the drop of a whole segment, which runs to the
		// end of the file. Drops of 1 MiB at a time (a consumer's
		// fetches) dropped nothing before this.
		if to < s.size.Load() {
			to &^= dropAlign - 1
		}
		from := s.dropped.Load()
		if to > from && s.dropped.CompareAndSwap(from, to) {
			n := to - from
			if to >= s.size.Load() {
				n = 0 // to the end of the file
			}
			// Advice only: a failure costs cache, never data.
			err := s.withFile(func(f *os.File) error { return unix.Fadvise(int(f.Fd()), from, n, unix.FADV_DONTNEED) })
			if err != nil {
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
