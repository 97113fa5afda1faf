package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// FDCache bounds the segment files the logs sharing it hold open
// (log.fd.cache.size): a broker with many partitions would otherwise keep
// one descriptor per segment for ever. A segment's file is opened on
// demand (segment.file) and pinned while in use: by an append or a flush,
// by a read scanning it, and by a ReadResult until it is released (its
// regions are sent with sendfile). When more than Size files are open the
// cache closes unpinned ones, least recently used first (the CLOCK
// approximation of LRU: each use sets a bit, the sweep clears it and
// closes the first file whose bit was already clear); the next use opens
// the file again. Pinned files are never closed, so the number open is at
// most Size plus the files pinned at that moment.
//
// Segments being built outside the log (a cleaned segment before its
// swap, the copy a truncation makes) are not in the cache: their files
// stay open until they are released.
//
// A closed descriptor loses nothing: data written through it is in the
// page cache, an fsync through any later descriptor of the same file makes
// it durable, and (since Linux 4.16) a write-back error not yet reported is
// reported to the next descriptor opened.
type FDCache struct {
	size   int
	logger *slog.Logger

	mu   sync.Mutex
	ring []*segment // segments with an open, cached file; segment.cacheIdx-1 is the position
	hand int

	open    atomic.Int64
	closes  atomic.Int64
	reopens atomic.Int64
}

// NewFDCache returns a cache that keeps at most size segment files open
// (beyond the pinned ones); size < 1 is taken as 1. logger (may be nil)
// hears of a close that failed.
func NewFDCache(size int, logger *slog.Logger) *FDCache {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &FDCache{size: max(size, 1), logger: logger}
}

// FDCacheStats are a cache's counters.
type FDCacheStats struct {
	Open    int64 // segment files open now (cached ones)
	Closes  int64 // files the cache closed to stay within its size
	Reopens int64 // files opened again after the cache had closed them
}

// Stats returns the cache's counters.
func (c *FDCache) Stats() FDCacheStats {
	return FDCacheStats{Open: c.open.Load(), Closes: c.closes.Load(), Reopens: c.reopens.Load()}
}

// Size is the cache's bound.
func (c *FDCache) Size() int { return c.size }

// add puts s, whose file was just opened, in the ring and closes others
// if the cache is over its size.
func (c *FDCache) add(s *segment) {
	c.mu.Lock()
	if s.cacheIdx == 0 {
		c.ring = append(c.ring, s)
		s.cacheIdx = len(c.ring)
		c.open.Store(int64(len(c.ring)))
	}
	s.used.Store(true)
	if len(c.ring) > c.size {
		c.evictLocked()
	}
	c.mu.Unlock()
}

// remove takes s out of the ring (its file is being closed for good).
func (c *FDCache) remove(s *segment) {
	c.mu.Lock()
	if s.cacheIdx != 0 {
		c.removeLocked(s)
	}
	c.mu.Unlock()
}

func (c *FDCache) removeLocked(s *segment) {
	i := s.cacheIdx - 1
	last := c.ring[len(c.ring)-1]
	c.ring[i] = last
	last.cacheIdx = i + 1
	c.ring[len(c.ring)-1] = nil
	c.ring = c.ring[:len(c.ring)-1]
	s.cacheIdx = 0
	c.open.Store(int64(len(c.ring)))
}

// over reports whether more files are open than the size allows.
func (c *FDCache) over() bool { return c.open.Load() > int64(c.size) }

// shrink closes unpinned files while the cache is over its size.
func (c *FDCache) shrink() {
	c.mu.Lock()
	if len(c.ring) > c.size {
		c.evictLocked()
	}
	c.mu.Unlock()
}

// evictLocked runs the clock hand over the ring, closing unpinned files
// not used since the hand last passed, until the cache is within its size
// or two turns found nothing to close (everything pinned). A segment whose
// lock is busy is in use: it is skipped, never waited for. mu held.
func (c *FDCache) evictLocked() {
	for scanned := 0; len(c.ring) > c.size && scanned < 2*len(c.ring); scanned++ {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		s := c.ring[c.hand]
		if s.used.Load() {
			s.used.Store(false)
			c.hand++
			continue
		}
		if !s.fmu.TryLock() {
			c.hand++
			continue
		}
		if s.pins > 0 || s.f == nil {
			s.fmu.Unlock()
			c.hand++
			continue
		}
		f := s.f
		s.f = nil
		s.fmu.Unlock()
		c.removeLocked(s) // the last segment moves to c.hand: look at it next
		c.closes.Add(1)
		if err := f.Close(); err != nil {
			// Not s.onClose: the segment's creator may still be setting
			// it (openSegment adds the segment before returning it).
			c.logger.Warn("descriptor cache: closing a segment file failed", "file", s.path(logSuffix), "err", err)
		}
	}
}

// errNoFile is the file of a lazy log's in-memory segment, which has none.
var errNoFile = errors.New("storage: segment has no file")

// file returns the segment's log file, opening it again if the descriptor
// cache closed it, pinned open until the matching unpin. The caller holds
// a reference to the segment.
func (s *segment) file() (*os.File, error) {
	s.fmu.Lock()
	reopened := false
	if s.f == nil {
		if s.mem {
			s.fmu.Unlock()
			return nil, errNoFile
		}
		f, err := s.reopen()
		if err != nil {
			s.fmu.Unlock()
			return nil, fmt.Errorf("%w: reopen segment: %w", ErrIO, err)
		}
		s.f = f
		reopened = true
	}
	s.pins++
	f := s.f
	s.fmu.Unlock()
	if c := s.cache; c != nil {
		if reopened {
			c.reopens.Add(1)
			c.add(s)
		} else if !s.used.Load() {
			s.used.Store(true)
		}
	}
	return f, nil
}

// unpin ends a use begun by file.
func (s *segment) unpin() {
	s.fmu.Lock()
	s.pins--
	s.fmu.Unlock()
	if c := s.cache; c != nil && c.over() {
		c.shrink()
	}
}

// reopen opens the segment's log file by name: its own, or the *.deleted
// one once retention or cleaning has deleted it (readers may still hold
// the segment). fmu held.
func (s *segment) reopen() (*os.File, error) {
	names := []string{s.path(logSuffix), s.path(logSuffix + deletedSuffix)}
	if s.deleted.Load() {
		names[0], names[1] = names[1], names[0]
	}
	f, err := os.OpenFile(names[0], os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(names[1], os.O_RDWR, 0)
	}
	return f, err
}

// closeFile closes the segment's file for good (its last reference is
// gone).
func (s *segment) closeFile() error {
	if s.cache != nil {
		s.cache.remove(s)
	}
	s.fmu.Lock()
	f := s.f
	s.f = nil
	s.fmu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}

// writeAt writes b at off through io, with the file pinned.
func (s *segment) writeAt(io *FileIO, b []byte, off int64) (int, error) {
	f, err := s.file()
	if err != nil {
		return 0, err
	}
	defer s.unpin()
	return io.writeAt(f, b, off)
}

// writevAt is writeAt of several buffers (FileIO.writevAt).
func (s *segment) writevAt(io *FileIO, bufs [][]byte, off int64) (int, error) {
	f, err := s.file()
	if err != nil {
		return 0, err
	}
	defer s.unpin()
	return io.writevAt(f, bufs, off)
}

// withFile calls fn with the segment's file pinned.
func (s *segment) withFile(fn func(f *os.File) error) error {
	f, err := s.file()
	if err != nil {
		return err
	}
	defer s.unpin()
	return fn(f)
}

// pinSet pins segment files for the length of a function that walks
// several segments: release (deferred) unpins them all.
type pinSet []*segment

// file pins s's file until release.
func (p *pinSet) file(s *segment) (*os.File, error) {
	f, err := s.file()
	if err != nil {
		return nil, err
	}
	*p = append(*p, s)
	return f, nil
}

func (p *pinSet) release() {
	for _, s := range *p {
		s.unpin()
	}
	*p = nil
}

// adopt puts a segment built outside the cache (a cleaned segment, a
// truncation's copy), now under its final name, in the log's descriptor
// cache.
func (l *Log) adopt(s *segment) {
	c := l.opts.FDCache
	if c == nil || s.cache != nil {
		return
	}
	s.cache = c
	s.fmu.Lock()
	open := s.f != nil
	s.fmu.Unlock()
	if open {
		c.add(s)
	}
}

// AutoFDCacheSize is the descriptor cache's size when log.fd.cache.size is
// -1 (the default): three quarters of the process's open-file limit
// (RLIMIT_NOFILE, which Go raises to the hard limit at start), keeping at
// least 1,024 descriptors for connections and everything else, and at least
// half of the limit for segments. A cache smaller than the partitions being
// written round-robin misses on every append (each one closes a file and
// opens another: BENCHMARKS.md, "Many partitions with a raw load
// generator"), so the cache takes what the limit allows rather than a fixed
// figure; Kafka keeps every segment open and lets the limit decide. The
// limit is passed in (the caller reads it) so that the rule is testable.
func AutoFDCacheSize(nofile uint64) int {
	const most = 1 << 20
	if nofile > 2*most {
		return most
	}
	n := int(nofile)
	return max(n/2, n-max(1024, n/4), 1)
}
