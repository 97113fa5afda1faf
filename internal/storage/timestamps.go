package storage

import (
	"errors"
	"fmt"
	"os"

	"github.com/stratalog/strata/internal/record"
)

// OffsetForTimestamp answers ListOffsets by timestamp: the offset and
// timestamp of the earliest record (at or above the log start) whose
// timestamp is >= ts. It finds the first segment whose largest timestamp
// reaches ts, narrows the scan with its time and offset indexes, reads the
// first batch whose max timestamp reaches ts and finds the record in it.
// found is false when no record is that late.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error) {
	if err := l.ensureLoaded(); err != nil {
		return -1, -1, false, err
	}
	if err := l.settle(); err != nil {
		return -1, -1, false, err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return -1, -1, false, ErrClosed
	}
	logStart := l.logStart
	i := 0
	for i < len(l.segs) && (l.segs[i].maxTs < ts || l.segs[i].next <= logStart) {
		i++
	}
	if i == len(l.segs) {
		l.mu.RUnlock()
		return -1, -1, false, nil
	}
	s := l.segs[i]
	start := s.base
	if rel := s.timeIdx.lookup(ts); rel >= 0 {
		start = s.base + rel
	}
	start = max(start, logStart)
	s, pos, size, ok := l.segmentAt(i, start)
	l.mu.RUnlock()

	hdr := make([]byte, record.HeaderSize)
	for ok {
		off, t, hit, err := scanForTimestamp(s, pos, size, ts, logStart, hdr)
		s.release()
		if err != nil || hit {
			return off, t, hit, err
		}
		l.mu.RLock()
		ok = false
		if !l.closed {
			for i = l.segmentAfter(s.base); i < len(l.segs) && l.segs[i].maxTs < ts; i++ {
			}
			if i < len(l.segs) {
				s, pos, size, ok = l.segmentAt(i, l.segs[i].base)
			}
		}
		l.mu.RUnlock()
	}
	return -1, -1, false, nil
}

// scanForTimestamp scans the batches of s from pos for the first record with
// timestamp >= ts and offset >= minOffset.
func scanForTimestamp(s *segment, pos, size, ts, minOffset int64, hdr []byte) (int64, int64, bool, error) {
	f, err := s.file()
	if err != nil {
		return -1, -1, false, err
	}
	defer s.unpin()
	for pos < size {
		h, err := readHeader(f, pos, hdr)
		if err != nil {
			return -1, -1, false, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
		}
		if h.MaxTimestamp >= ts && h.LastOffset() >= minOffset {
			off, t, hit, err := findRecord(s, pos, &h, func(off, t int64) bool { return t >= ts && off >= minOffset })
			if err != nil || hit {
				return off, t, hit, err
			}
		}
		pos += int64(h.Size())
	}
	return -1, -1, false, nil
}

var errFound = errors.New("found")

// findRecord reads the batch at pos and returns the offset and timestamp of
// its first record that satisfies match. In a LogAppendTime batch every
// record has the batch's MaxTimestamp.
func findRecord(s *segment, pos int64, h *record.Header, match func(off, ts int64) bool) (int64, int64, bool, error) {
	batch := make([]byte, h.Size())
	if err := s.withFile(func(f *os.File) error { _, err := f.ReadAt(batch, pos); return err }); err != nil {
		return -1, -1, false, fmt.Errorf("storage: read batch at %d of %s: %w", pos, s.path(logSuffix), err)
	}
	var off, ts int64
	err := record.ForEach(batch, func(r *record.Record) error {
		off, ts = h.BaseOffset+int64(r.OffsetDelta), h.FirstTimestamp+r.TimestampDelta
		if h.IsLogAppendTime() {
			ts = h.MaxTimestamp
		}
		if match(off, ts) {
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return off, ts, true, nil
	case err != nil:
		return -1, -1, false, fmt.Errorf("%w: %s at position %d: %w", ErrCorruptSegment, s.path(logSuffix), pos, err)
	}
	return -1, -1, false, nil
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp in the log (the first such record), or (-1, -1) when no
// record has a timestamp.
func (l *Log) MaxTimestamp() (offset, timestamp int64, err error) {
	if err := l.ensureLoaded(); err != nil {
		return -1, -1, err
	}
	if err := l.settle(); err != nil {
		return -1, -1, err
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return -1, -1, ErrClosed
	}
	best := -1
	for i, s := range l.segs {
		if s.maxTs >= 0 && s.next > l.logStart && (best < 0 || s.maxTs > l.segs[best].maxTs) {
			best = i
		}
	}
	if best < 0 {
		l.mu.RUnlock()
		return -1, -1, nil
	}
	maxTs, target := l.segs[best].maxTs, l.segs[best].maxTsOffset
	s, pos, size, ok := l.segmentAt(best, target)
	l.mu.RUnlock()
	if !ok {
		return -1, -1, nil
	}
	defer s.release()
	hdr := make([]byte, record.HeaderSize)
	var bpos int64
	var h record.Header
	var found bool
	err = s.withFile(func(f *os.File) (err error) {
		bpos, h, found, err = findBatch(f, pos, size, target, hdr)
		return err
	})
	if err != nil {
		return -1, -1, fmt.Errorf("%w: %s: %w", ErrCorruptSegment, s.path(logSuffix), err)
	}
	if !found {
		return -1, -1, nil
	}
	off, ts, hit, err := findRecord(s, bpos, &h, func(_, t int64) bool { return t == maxTs })
	if err != nil {
		return -1, -1, err
	}
	if !hit {
		return h.LastOffset(), maxTs, nil
	}
	return off, ts, nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch from the leader epoch
// cache, as Kafka's LeaderEpochFileCache.endOffsetFor: for the latest epoch,
// the log end offset; otherwise the largest known epoch <= epoch and the
// start offset of the next larger one. An epoch below every known one gives
// (epoch, start of the first known epoch); an unknown larger epoch, an empty
// cache or epoch -1 give (-1, -1).
//
// current is the partition's leader epoch now, or -1. Kafka's leader puts
// its epoch in the cache when it becomes leader; here an epoch enters the
// cache with its first write, so a current epoch newer than every cached
// one counts as a last entry starting at the log end offset, and the answer
// is the one Kafka's cache would give.
func (l *Log) EndOffsetForEpoch(epoch, current int32) (foundEpoch int32, endOffset int64) {
	_ = l.ensureLoaded() // a failed load leaves the log failed and empty
	l.mu.RLock()
	defer l.mu.RUnlock()
	leo := l.leo.Load()
	if latest, ok := l.epochs.latest(); epoch >= 0 && current >= 0 && epoch <= current && (!ok || latest.epoch < current) {
		switch {
		case epoch == current:
			return epoch, leo
		case !ok:
			return epoch, leo // below the only (virtual) entry: its start
		case epoch >= latest.epoch:
			return latest.epoch, leo // ends where the virtual entry starts
		}
	}
	return l.epochs.endOffsetFor(epoch, leo)
}
