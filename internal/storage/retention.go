package storage

import (
	"fmt"
)

// Segment deletion: the files are renamed to *.deleted at once and removed
// when the last reader releases the segment (usually at once too).
// FileDeleteDelayMs is not used: reference counting already keeps the data
// readable for reads in flight, which is what Kafka's delay is for.

// EnforceRetention deletes the oldest segments as Kafka does: while a
// segment's largest timestamp is more than retention.ms old, then while the
// log would stay at or above retention.bytes without it, then while it lies
// entirely below the log start offset. The active segment counts like the
// others except when it is empty; deleting every segment first rolls a new
// empty one. The log start offset moves up to the first remaining segment.
// It also forgets expired idle producers. A segment is deleted only when
// all of it lies below upTo, the partition's high watermark: retention
// never removes records that are not yet replicated (or visible), as
// Kafka's. Nor does it remove the data of an ongoing transaction: upTo is
// lowered to the first offset of the earliest one.
func (l *Log) EnforceRetention(upTo int64) error {
	if err := l.ensureLoaded(); err != nil {
		return err
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writePendingLocked(); err != nil {
		return err
	}
	if err := l.errClosedOrFailed(); err != nil {
		return err
	}
	nowMs := l.nowMs()
	cfg := &l.cfg
	if first := l.producers.ongoingFirst(); first >= 0 && first < upTo {
		// Never delete the data of an ongoing transaction: its producer's
		// state and the last stable offset refer to it.
		upTo = first
	}
	var total int64
	for _, s := range l.segs {
		total += s.size.Load()
	}
	excess := total - cfg.RetentionBytes
	n := 0
	for n < len(l.segs) {
		s := l.segs[n]
		size := s.size.Load()
		last := n == len(l.segs)-1
		if last && size == 0 {
			break
		}
		byTime := cfg.RetentionMs >= 0 && nowMs-s.largestTimestamp() > cfg.RetentionMs
		bySize := cfg.RetentionBytes >= 0 && excess-size >= 0
		byStart := !last && l.segs[n+1].base <= l.logStart
		if !byTime && !bySize && !byStart {
			break
		}
		end := l.leo.Load()
		if !last {
			end = l.segs[n+1].base
		}
		if end > upTo {
			break
		}
		excess -= size
		n++
	}
	l.producers.prune(l.logStart, nowMs, cfg.ProducerIDExpiryMs)
	if n == 0 {
		return nil
	}
	if err := l.ensureWritable(); err != nil {
		return err
	}
	return l.deleteOldest(n, "retention")
}

// DeleteRecordsBefore moves the log start offset up to offset (DeleteRecords)
// and deletes the segments entirely below it. The new start offset is
// persisted before it is reported. An offset past the log end is
// ErrOffsetOutOfRange; one at or below the current start changes nothing.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	if err := l.ensureLoaded(); err != nil {
		return 0, err
	}
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writePendingLocked(); err != nil {
		return 0, err
	}
	if err := l.errClosedOrFailed(); err != nil {
		return 0, err
	}
	if leo := l.leo.Load(); offset < 0 || offset > leo {
		return l.logStart, fmt.Errorf("%w: delete records before %d, log end %d", ErrOffsetOutOfRange, offset, leo)
	}
	if offset <= l.logStart {
		return l.logStart, nil
	}
	if err := l.ensureWritable(); err != nil {
		return l.logStart, err
	}
	if err := l.setLogStart(offset); err != nil {
		return l.logStart, err
	}
	n := 0
	for n < len(l.segs)-1 && l.segs[n+1].base <= offset {
		n++
	}
	if n > 0 {
		if err := l.deleteOldest(n, "delete records"); err != nil {
			return l.logStart, err
		}
	}
	return l.logStart, nil
}

// setLogStart persists a new log start offset and trims the state that
// refers to offsets below it. mu and flushMu held.
func (l *Log) setLogStart(off int64) error {
	if err := writeOffsetCheckpoint(l.dir, logStartCheckpointFile, off); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	l.logStart = off
	if l.epochs.truncateFromStart(off) {
		if err := l.writeEpochsDurably(true); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}
	l.producers.prune(off, l.nowMs(), l.cfg.ProducerIDExpiryMs)
	return nil
}

// deleteOldest deletes the n oldest segments, rolling first if that is all
// of them, and moves the log start offset to the first remaining segment.
// mu and flushMu held.
func (l *Log) deleteOldest(n int, why string) error {
	if n == len(l.segs) {
		if err := l.roll(); err != nil {
			return err
		}
	}
	doomed := l.segs[:n]
	rest := make([]*segment, len(l.segs)-n)
	copy(rest, l.segs[n:])
	if first := rest[0].base; first > l.logStart {
		if err := l.setLogStart(first); err != nil {
			return err
		}
	}
	l.segs = rest
	var firstErr error
	for _, s := range doomed {
		l.logger.Info("deleting segment", "segment", fileName(s.base, logSuffix), "reason", why, "bytes", s.size.Load())
		if err := s.markDeleted(); err != nil && firstErr == nil {
			firstErr = err
		}
		s.release()
	}
	if firstErr != nil {
		return fmt.Errorf("storage: %w", firstErr)
	}
	return nil
}
