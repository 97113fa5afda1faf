package storage

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

func TestSyncGroupCommit(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	clock := newClock()
	tl := &testLog{t: t, dir: t.TempDir(), cfg: cfg, clock: clock, opts: Options{Now: clock.Now, FsyncAlways: true}}
	tl.reopen()
	defer tl.Close()

	first := tl.mustAppend(makeBatch(t, batchSpec{ts: 1}))
	if tl.DurableOffset() != first.BaseOffset {
		t.Fatalf("durable offset %d before any sync, want %d", tl.DurableOffset(), first.BaseOffset)
	}
	// Hold the first fsync until the other callers queue behind it.
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	tl.beforeFsync = func() {
		once.Do(func() { close(entered); <-release })
	}
	rounds0 := tl.fsyncRounds.Load()

	const callers = 32
	var wg sync.WaitGroup
	errs := make(chan error, callers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- tl.Sync(first.LastOffset)
	}()
	<-entered
	for i := range callers {
		res := tl.mustAppend(makeBatch(t, batchSpec{ts: int64(i)}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- tl.Sync(res.LastOffset)
		}()
	}
	for tl.syncWaiters.Load() < callers {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := tl.fsyncRounds.Load() - rounds0; got != 2 {
		t.Fatalf("%d fsync rounds for %d callers, want 2", got, callers+1)
	}
	if tl.DurableOffset() != tl.LogEndOffset() {
		t.Fatalf("durable %d, log end %d", tl.DurableOffset(), tl.LogEndOffset())
	}
	// Already durable: no fsync.
	if err := tl.Sync(0); err != nil || tl.fsyncRounds.Load()-rounds0 != 2 {
		t.Fatalf("sync of durable data: %v", err)
	}
}

func TestSyncWithoutFsyncAlways(t *testing.T) {
	tl := openTestLog(t, testConfig())
	res := tl.mustAppend(makeBatch(t, batchSpec{ts: 1}))
	if err := tl.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if tl.DurableOffset() != tl.LogEndOffset() {
		t.Fatal("durable offset should be the log end without FsyncAlways")
	}
}

func TestFlushPolicies(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.FlushMessages = 5
	cfg.FlushMs = 1000
	tl := openTestLog(t, cfg)
	rounds := func() int64 { return tl.fsyncRounds.Load() }
	r0 := rounds()
	for i := range 4 {
		tl.mustAppend(makeBatch(t, batchSpec{ts: int64(i)}))
	}
	if rounds() != r0 {
		t.Fatal("flushed before flush.messages")
	}
	tl.mustAppend(makeBatch(t, batchSpec{ts: 5}))
	if rounds() != r0+1 {
		t.Fatal("no flush at flush.messages")
	}
	tl.mustAppend(makeBatch(t, batchSpec{ts: 6}))
	if err := tl.MaybeFlush(); err != nil || rounds() != r0+1 {
		t.Fatalf("MaybeFlush flushed early: %v", err)
	}
	tl.clock.Advance(1001 * 1e6)
	if err := tl.MaybeFlush(); err != nil || rounds() != r0+2 {
		t.Fatalf("MaybeFlush after flush.ms: %v", err)
	}
	if err := tl.MaybeFlush(); err != nil || rounds() != r0+2 {
		t.Fatalf("MaybeFlush with nothing to flush: %v", err)
	}
}

// TestConcurrentAppendRead checks that readers only ever see whole batches
// while a writer appends, rolls and retention deletes segments.
func TestConcurrentAppendRead(t *testing.T) {
	cfg := testConfig()
	tl := openTestLog(t, cfg)
	const batches = 400
	done := make(chan struct{})
	var wg sync.WaitGroup
	fail := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range batches {
			if _, err := tl.Append(makeBatch(t, batchSpec{n: 1 + i%4, size: 60, ts: int64(i)}), 0); err != nil {
				fail <- err
				return
			}
			if i%50 == 49 {
				if _, err := tl.DeleteRecordsBefore(tl.LogEndOffset() / 2); err != nil {
					fail <- err
					return
				}
			}
		}
	}()
	reader := func(fn func() error) {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := fn(); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
				fail <- err
				return
			}
		}
	}
	wg.Add(3)
	go reader(func() error {
		leo := tl.LogEndOffset()
		off := tl.LogStartOffset() + (leo-tl.LogStartOffset())/3
		res, err := tl.Read(off, leo, 4096, true)
		if err != nil {
			return err
		}
		defer res.Release()
		for _, r := range res.Regions {
			b := make([]byte, r.Len)
			if _, err := r.File.ReadAt(b, r.Offset); err != nil {
				return err
			}
			if err := record.Split(b, func(batch []byte) error { _, err := record.Validate(batch); return err }); err != nil {
				return err
			}
		}
		return nil
	})
	go reader(func() error {
		return tl.ForEachBatch(tl.LogStartOffset(), func([]byte) error { return nil })
	})
	go reader(func() error {
		_, _, _, err := tl.OffsetForTimestamp(200)
		if err == nil {
			_, _, err = tl.MaxTimestamp()
		}
		return err
	})
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
}

// TestFsyncObserver: every fsync of a segment file is reported once with
// its duration; an observer set to nil sees nothing more.
func TestFsyncObserver(t *testing.T) {
	cfg := testConfig()
	clock := newClock()
	tl := &testLog{t: t, dir: t.TempDir(), cfg: cfg, clock: clock, opts: Options{Now: clock.Now, FsyncAlways: true}}
	tl.reopen()
	defer tl.Close()
	var seen atomic.Int64
	tl.SetFsyncObserver(func(d time.Duration) {
		if d < 0 {
			t.Errorf("negative fsync duration %v", d)
		}
		seen.Add(1)
	})
	res := tl.mustAppend(makeBatch(t, batchSpec{ts: 1}))
	if err := tl.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 1 {
		t.Fatalf("observer saw %d fsyncs after one sync of one segment, want 1", seen.Load())
	}
	tl.SetFsyncObserver(nil)
	res = tl.mustAppend(makeBatch(t, batchSpec{ts: 2}))
	if err := tl.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if seen.Load() != 1 {
		t.Fatalf("observer removed but saw %d fsyncs, want 1", seen.Load())
	}
}
