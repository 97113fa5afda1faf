package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// MemLog is an in-memory Log for tests: appends get offsets at once, and
// become durable when SetDurable (or AutoDurable) says so.
type MemLog struct {
	mu      sync.Mutex
	batches [][]byte
	end     int64
	hw      int64
	auto    bool
	leader  bool
	failErr error // appends fail with it (FailAppends)
	short   bool
	refused int
	wake    chan struct{}
}

// errShortISR is what WaitDurable answers on a log SetShortISR shortened.
var errShortISR = errors.New("written, but the ISR shrank below min.insync.replicas")

// NewMemLog returns an empty log that is the leader; with auto every append
// is durable at once.
func NewMemLog(auto bool) *MemLog {
	return &MemLog{auto: auto, leader: true, wake: make(chan struct{})}
}

// Append implements Log: it sets the batch's base offset.
func (l *MemLog) Append(batch []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leader {
		return -1, fmt.Errorf("%w: not the leader", ErrNotCoordinator)
	}
	if l.failErr != nil {
		return -1, l.failErr
	}
	if len(batch) < 61 {
		return -1, fmt.Errorf("short batch")
	}
	b := append([]byte(nil), batch...)
	binary.BigEndian.PutUint64(b, uint64(l.end))
	n := int64(int32(binary.BigEndian.Uint32(b[23:]))) + 1 // last offset delta + 1
	l.batches = append(l.batches, b)
	l.end += n
	if l.auto {
		l.setDurableLocked(l.end)
	}
	return l.end - 1, nil
}

func (l *MemLog) setDurableLocked(hw int64) {
	if hw > l.hw {
		l.hw = hw
		close(l.wake)
		l.wake = make(chan struct{})
	}
}

// SetDurable moves the high watermark to hw (capped at the end).
func (l *MemLog) SetDurable(hw int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setDurableLocked(min(hw, l.end))
}

// FailAppends makes appends fail with err (nil: succeed again) while the
// log stays the leader, as a partition whose ISR is below
// min.insync.replicas refuses writes.
func (l *MemLog) FailAppends(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failErr = err
}

// Resign makes the log refuse appends and fail waits, as a partition that
// lost its leadership.
func (l *MemLog) Resign() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader = false
	close(l.wake)
	l.wake = make(chan struct{})
}

// SetShortISR makes WaitDurable fail at once for records below the high
// watermark (short), or succeed again: a partition whose ISR is below
// min.insync.replicas answers so (NOT_ENOUGH_REPLICAS_AFTER_APPEND, as
// Kafka answers an acks=all write then), until the ISR grows back.
func (l *MemLog) SetShortISR(short bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.short = short
	close(l.wake)
	l.wake = make(chan struct{})
}

// Refused counts the waits SetShortISR failed.
func (l *MemLog) Refused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// WaitDurable implements Log.
func (l *MemLog) WaitDurable(ctx context.Context, offset int64) error {
	for {
		l.mu.Lock()
		hw, leader, short, ch := l.hw, l.leader, l.short, l.wake
		l.mu.Unlock()
		if hw > offset && short {
			l.mu.Lock()
			l.refused++
			l.mu.Unlock()
			return fmt.Errorf("%w: 1 in-sync replica, min.insync.replicas is 2", errShortISR)
		}
		if hw > offset {
			return nil
		}
		if !leader {
			return fmt.Errorf("%w: leadership lost", ErrNotCoordinator)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ForEachBatch implements Log.
func (l *MemLog) ForEachBatch(fn func(batch []byte) error) error {
	l.mu.Lock()
	bs := append([][]byte(nil), l.batches...)
	l.mu.Unlock()
	for _, b := range bs {
		if err := fn(b); err != nil {
			return err
		}
	}
	return nil
}

// EndOffset implements Log.
func (l *MemLog) EndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

// Reopen returns a new leader log holding the same batches, durable up to
// the end: a new leader that has them all (with an ISR as short as this
// one's).
func (l *MemLog) Reopen(auto bool) *MemLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := &MemLog{auto: auto, leader: true, short: l.short, wake: make(chan struct{}), end: l.end, hw: l.end}
	n.batches = append(n.batches, l.batches...)
	return n
}
