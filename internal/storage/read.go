package storage

import (
	"errors"
	"fmt"
	"io"

	"github.com/stratalog/strata/internal/record"
)

// segmentAt finds the segment holding offset (or, in a cleaned log, the
// first segment with data after it) and the position to start scanning it
// from, takes a reference and returns it with its committed
// size. ok is false when offset is at or past the log end. mu held (shared).
func (l *Log) segmentAt(i int, offset int64) (s *segment, pos, size int64, ok bool) {
	for ; i < len(l.segs); i++ {
		s = l.segs[i]
		if offset < s.next && s.next > s.base { // skips segments emptied by cleaning

			pos = 0
			if offset > s.base {
				pos = s.offIdx.lookup(offset - s.base)
			}
			s.acquire()
			return s, pos, s.size.Load(), true
		}
	}
	return nil, 0, 0, false
}

// Read returns file regions covering whole batches, starting with the batch
// that holds offset, stopping before any batch whose base offset is >=
// maxOffset (the high watermark) and before exceeding maxBytes. With
// minOneBatch, a first batch larger than maxBytes is still returned whole
// (KIP-74). Batches may start before offset; the consumer skips those
// records. The regions stay readable until Release, even if the segments are
// deleted meanwhile. Offsets below the log start or past the log end are
// ErrOffsetOutOfRange; offset >= maxOffset gives an empty result.
func (l *Log) Read(offset, maxOffset int64, maxBytes int, minOneBatch bool) (ReadResult, error) {
	if err := l.ensureLoaded(); err != nil {
		return ReadResult{}, err
	}
	if l.pendLen.Load() > 0 && maxOffset > l.pendBase.Load() {
		// The read may reach the journaled tail (readers may see some
		// of it): it goes to the segment first. A read that stopped
		// short of what it may see would answer a long poll's re-read
		// with less than is there.
		if err := l.settle(); err != nil {
			return ReadResult{}, err
		}
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ReadResult{}, ErrClosed
	}
	leo := l.leo.Load()
	if offset < l.logStart || offset > leo {
		start := l.logStart
		l.mu.RUnlock()
		return ReadResult{}, fmt.Errorf("%w: offset %d, log start %d, log end %d", ErrOffsetOutOfRange, offset, start, leo)
	}
	if offset >= maxOffset || offset == leo {
		l.mu.RUnlock()
		return ReadResult{}, nil
	}
	si := l.segmentFor(offset)
	s, pos, size, ok := l.segmentAt(si, offset)
	var drop dropBehind
	if ok {
		drop = l.coldLocked(si, s, pos)
	}
	l.mu.RUnlock()
	drop.run(l)

	var res ReadResult
	var held, pinned []*segment
	res.release = func() {
		for _, s := range pinned {
			s.unpin()
		}
		for _, s := range held {
			s.release()
		}
	}
	hdr := make([]byte, record.HeaderSize)
	budget := int64(maxBytes)
	for ok {
		held = append(held, s)
		f, err := s.file()
		if err != nil {
			res.Release()
			return ReadResult{}, fmt.Errorf("storage: read %s: %w", s.path(logSuffix), err)
		}
		pinned = append(pinned, s)
		start, h, found, err := findBatch(f, pos, size, offset, hdr)
		if err != nil {
			res.Release()
			return ReadResult{}, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
		}
		if !found {
			break // cannot happen: size and next are read together
		}
		full := false
		{
			end := start
			lastInRun := int64(-1)
			for end < size {
				if end > start {
					if h, err = readHeader(f, end, hdr); err != nil {
						res.Release()
						return ReadResult{}, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
					}
				}
				n := int64(h.Size())
				if h.BaseOffset >= maxOffset {
					full = true
					break
				}
				if n > budget && !(minOneBatch && res.Size == 0 && end == start) {
					full = true
					break
				}
				budget -= n
				end += n
				lastInRun = h.LastOffset()
			}
			if end > start {
				res.Regions = append(res.Regions, Region{File: f, Offset: start, Len: end - start})
				res.Size += end - start
				res.End = lastInRun + 1
			}
			if end < size {
				full = true
			}
			offset = max(offset, h.LastOffset()+1)
		}
		if full || budget <= 0 {
			break
		}
		// Continue after the last batch: in the same segment if it grew
		// meanwhile, else in the next one.
		l.mu.RLock()
		ok = false
		if !l.closed {
			s, pos, size, ok = l.segmentAt(l.segmentFor(offset), offset)
		}
		l.mu.RUnlock()
	}
	if res.Size == 0 {
		res.Release()
		return ReadResult{}, nil
	}
	return res, nil
}

// ForEachBatch calls fn for every batch from the one holding from to the
// end of the log, in order, with the batch read into a reused buffer (valid
// only during the call). Each batch's CRC is checked; a bad one is an
// ErrCorruptSegment. Cleaned batches may have offset gaps. Offsets below the log start start at the log start.
// An error from fn stops the iteration and is returned.
func (l *Log) ForEachBatch(from int64, fn func(batch []byte) error) error {
	if err := l.ensureLoaded(); err != nil {
		return err
	}
	if err := l.settle(); err != nil {
		return err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	from = max(from, l.logStart)
	if leo := l.leo.Load(); from > leo {
		l.mu.RUnlock()
		return fmt.Errorf("%w: offset %d, log end %d", ErrOffsetOutOfRange, from, leo)
	}
	s, pos, size, ok := l.segmentAt(l.segmentFor(from), from)
	l.mu.RUnlock()

	var buf []byte
	for ok {
		err := func() error {
			defer s.release()
			f, err := s.file()
			if err != nil {
				return fmt.Errorf("storage: read %s: %w", s.path(logSuffix), err)
			}
			defer s.unpin()
			br := newBatchReader(f, pos, size, buf)
			defer func() { buf = br.buf }()
			for {
				b, bpos, err := br.next()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err == nil {
					var h record.Header
					if h, err = validateStored(b); err == nil {
						if h.LastOffset() < from {
							continue
						}
						from = h.LastOffset() + 1
						if err := fn(b); err != nil {
							return errStopWith{err}
						}
						continue
					}
				}
				return fmt.Errorf("%w: %s at position %d: %w", ErrCorruptSegment, s.path(logSuffix), bpos, err)
			}
		}()
		if err != nil {
			var stop errStopWith
			if errors.As(err, &stop) {
				return stop.err
			}
			return err
		}
		l.mu.RLock()
		ok = false
		if !l.closed {
			s, pos, size, ok = l.segmentAt(l.segmentFor(from), from)
		}
		l.mu.RUnlock()
	}
	return nil
}

// errStopWith carries an error returned by a caller's callback.
type errStopWith struct{ err error }

func (e errStopWith) Error() string { return e.err.Error() }
