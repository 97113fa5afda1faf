package replication

import (
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

func hostOne(t *testing.T, fsyncAlways bool) *Partition {
	t.Helper()
	m := newManager(t, fsyncAlways)
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("t", metadata.NewUUID(), 1)...)
	m.Apply(im0, im1)
	return mustGet(t, m, "t", 0)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestHighWatermarkInterval(t *testing.T) {
	p := hostOne(t, false)
	if p.HighWatermark() != 0 {
		t.Fatalf("HW = %d", p.HighWatermark())
	}
	w1, w2 := p.Wait(), p.Wait()
	if w1 != w2 {
		t.Fatal("waiters before one advance got different channels")
	}
	res, err := p.Append(buildBatch(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 0 || res.LastOffset != 2 || p.HighWatermark() != 3 {
		t.Fatalf("append %+v, HW %d", res, p.HighWatermark())
	}
	if !closed(w1) {
		t.Fatal("Wait channel not closed when the HW moved")
	}
	w3 := p.Wait()
	if closed(w3) {
		t.Fatal("new Wait channel already closed")
	}
	// Sync is a no-op in interval mode.
	if err := p.Sync(res.LastOffset); err != nil || p.HighWatermark() != 3 || closed(w3) {
		t.Fatalf("Sync: %v, HW %d", err, p.HighWatermark())
	}
	if _, err := p.Append(buildBatch(t, 2)); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 5 || !closed(w3) {
		t.Fatalf("HW = %d", p.HighWatermark())
	}
}

func TestHighWatermarkFsyncAlways(t *testing.T) {
	p := hostOne(t, true)
	res, err := p.Append(buildBatch(t, 3))
	if err != nil {
		t.Fatal(err)
	}
	// The append woke waiters (the log end moved: followers wait on it),
	// but the HW waits for the fsync.
	w := p.Wait()
	if p.HighWatermark() != 0 || closed(w) {
		t.Fatalf("HW moved to %d before Sync", p.HighWatermark())
	}
	if err := p.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 3 || !closed(w) {
		t.Fatalf("after Sync: HW %d", p.HighWatermark())
	}
	// Two appends, one Sync of the first: group commit may cover both,
	// never less than the first.
	r1, err := p.Append(buildBatch(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(buildBatch(t, 1)); err != nil {
		t.Fatal(err)
	}
	if p.HighWatermark() != 3 {
		t.Fatalf("HW moved to %d before Sync", p.HighWatermark())
	}
	if err := p.Sync(r1.LastOffset); err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw < 4 || hw > 5 {
		t.Fatalf("HW %d after syncing offset 3", hw)
	}
	if err := p.Sync(4); err != nil || p.HighWatermark() != 5 {
		t.Fatalf("Sync(4): %v, HW %d", err, p.HighWatermark())
	}
}

// TestHighWatermarkReopen: a reopened log starts with the HW at its end.
func TestHighWatermarkReopen(t *testing.T) {
	for _, fsyncAlways := range []bool{false, true} {
		m := newManager(t, fsyncAlways)
		id := metadata.NewUUID()
		im0 := metadata.Empty()
		im1 := mustApply(t, im0, topicRecs("t", id, 1)...)
		m.Apply(im0, im1)
		p := mustGet(t, m, "t", 0)
		res, err := p.Append(buildBatch(t, 4))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Sync(res.LastOffset); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		m2 := NewManager(m.opts)
		m2.Apply(im0, im1)
		p2 := mustGet(t, m2, "t", 0)
		if p2.HighWatermark() != 4 {
			t.Fatalf("fsyncAlways=%v: HW after reopen = %d, want 4", fsyncAlways, p2.HighWatermark())
		}
		if err := m2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWake(t *testing.T) {
	p := hostOne(t, false)
	w := p.Wait()
	wake(p)
	if !closed(w) {
		t.Fatal("wakeAll did not close the channel")
	}
	wake(p) // no waiters: must not panic on a closed channel
	if closed(p.Wait()) {
		t.Fatal("Wait after wakeAll returned a closed channel")
	}
	// advance to an HW not above the current one does not wake.
	w = p.Wait()
	p.mu.Lock()
	p.setHWLocked(0)
	p.mu.Unlock()
	if closed(w) {
		t.Fatal("advance without progress woke waiters")
	}
}

// TestConcurrentAppendWait runs appenders and long-poll style waiters
// together (meaningful under -race): every waiter sees the final HW.
func TestConcurrentAppendWait(t *testing.T) {
	for _, fsyncAlways := range []bool{false, true} {
		p := hostOne(t, fsyncAlways)
		const appenders, perAppender, waiters = 4, 50, 4
		const target = appenders * perAppender * 2
		var wg sync.WaitGroup
		for range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.After(30 * time.Second)
				for {
					ch := p.Wait() // take the channel before checking: no lost wake-up
					if p.HighWatermark() >= target {
						return
					}
					select {
					case <-ch:
					case <-deadline:
						t.Errorf("waiter stuck at HW %d", p.HighWatermark())
						return
					}
				}
			}()
		}
		var awg sync.WaitGroup
		for range appenders {
			awg.Add(1)
			go func() {
				defer awg.Done()
				last := int64(-1)
				for range perAppender {
					res, err := p.Append(buildBatch(t, 2))
					if err != nil {
						t.Error(err)
						return
					}
					if err := p.Sync(res.LastOffset); err != nil {
						t.Error(err)
						return
					}
					if hw := p.HighWatermark(); hw <= res.LastOffset {
						t.Errorf("HW %d after appending and syncing %d", hw, res.LastOffset)
					}
					if res.LastOffset <= last {
						t.Errorf("offsets went back: %d after %d", res.LastOffset, last)
					}
					last = res.LastOffset
				}
			}()
		}
		awg.Wait()
		wg.Wait()
		if p.HighWatermark() != target || p.LogEndOffset() != target {
			t.Fatalf("fsyncAlways=%v: HW %d LEO %d, want %d", fsyncAlways, p.HighWatermark(), p.LogEndOffset(), target)
		}
	}
}

// wake releases p's waiters, as role changes and appends do.
func wake(p *Partition) {
	p.mu.Lock()
	p.wakeLocked()
	p.mu.Unlock()
}
