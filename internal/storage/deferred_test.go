package storage

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// deferredOpts are a broker's options: lazy logs, loaded on first use.
func deferredOpts(clock *manualClock) Options {
	return Options{Now: clock.Now, Lazy: true, DeferLoad: true}
}

// TestDeferredLoadAfterCleanShutdown: a log closed cleanly opens pending
// (nothing but its marker and high watermark read, no segment file open),
// answers its offsets and size from the marker, and loads on first use with
// every record in place; the marker stays until the first write, so a
// crash before it finds the log pending again.
func TestDeferredLoadAfterCleanShutdown(t *testing.T) {
	cfg := testConfig()
	clock := newClock()
	tl := &testLog{t: t, dir: filepath.Join(t.TempDir(), "p-0"), cfg: cfg, clock: clock, opts: deferredOpts(clock)}
	tl.reopen()
	tl.appendMany(60, 100)
	if _, err := tl.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	if err := tl.SaveHighWatermark(50); err != nil {
		t.Fatal(err)
	}
	want := tl.allBatches()
	start, end, size := tl.LogStartOffset(), tl.LogEndOffset(), tl.Size()
	if tl.segmentCount() < 3 {
		t.Fatalf("want several segments, have %d", tl.segmentCount())
	}

	for round := range 2 { // the second round: crashed while pending
		if round == 0 {
			tl.reopen() // a clean close, then Open
		} else {
			tl.reopen2()
		}
		if !tl.pending.Load() {
			t.Fatalf("round %d: a cleanly closed log was loaded at Open", round)
		}
		if n := openSegmentFDs(t, tl.dir); n != 0 {
			t.Fatalf("round %d: %d segment files open before the first use", round, n)
		}
		if tl.LogStartOffset() != start || tl.LogEndOffset() != end || tl.Size() != size ||
			tl.HighWatermarkCheckpoint() != 50 || tl.DurableOffset() != end {
			t.Fatalf("round %d: pending log says start %d end %d size %d hw %d durable %d; want %d %d %d 50 %d", round,
				tl.LogStartOffset(), tl.LogEndOffset(), tl.Size(), tl.HighWatermarkCheckpoint(), tl.DurableOffset(), start, end, size, end)
		}
		tl.OnHighWatermark(50)
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		if !tl.pending.Load() {
			t.Fatalf("round %d: offsets, the high watermark or a flush loaded the log", round)
		}
		tl.crash()
	}

	tl.reopen2()
	got := tl.allBatches() // the first use
	if tl.pending.Load() {
		t.Fatal("still pending after a read")
	}
	if len(got) != len(want) || tl.LogStartOffset() != start || tl.LogEndOffset() != end || tl.Size() != size {
		t.Fatalf("loaded: %d batches, start %d end %d size %d; want %d, %d %d %d", len(got), tl.LogStartOffset(), tl.LogEndOffset(), tl.Size(), len(want), start, end, size)
	}
	if _, err := os.Stat(filepath.Join(tl.dir, cleanShutdownFile)); err != nil {
		t.Fatalf("marker gone before the first write: %v", err)
	}
	res := tl.mustAppend(makeBatch(t, batchSpec{ts: 77}))
	if res.BaseOffset != end {
		t.Fatalf("first append at %d, want %d", res.BaseOffset, end)
	}
	if _, err := os.Stat(filepath.Join(tl.dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("marker still there after the first write (%v)", err)
	}
	// A crash now is unclean: a full recovery, nothing lost.
	tl.crash()
	tl.reopen2()
	if tl.pending.Load() {
		t.Fatal("a log written since its clean shutdown opened pending after a crash")
	}
	if n := len(tl.allBatches()); n != len(want)+1 || tl.LogEndOffset() != end+1 {
		t.Fatalf("after the crash: %d batches, log end %d; want %d, %d", n, tl.LogEndOffset(), len(want)+1, end+1)
	}
}

// TestDeferredLoadConcurrentFirstUse: appends, reads and offset lookups
// race to be a pending log's first use (run with -race); one load, and
// every append lands after the records the log had.
func TestDeferredLoadConcurrentFirstUse(t *testing.T) {
	cfg := testConfig()
	clock := newClock()
	tl := &testLog{t: t, dir: filepath.Join(t.TempDir(), "p-0"), cfg: cfg, clock: clock, opts: deferredOpts(clock)}
	tl.reopen()
	tl.appendMany(30, 100)
	end := tl.LogEndOffset()
	tl.reopen() // clean close, pending open
	if !tl.pending.Load() {
		t.Fatal("not pending")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 8 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if _, err := tl.Append(makeBatch(t, batchSpec{ts: int64(5000 + i)}), 0); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			res, err := tl.Read(int64(i), end, 1<<20, true)
			if err != nil {
				errs <- err
				return
			}
			b, err := readRegions(res)
			res.Release()
			if err != nil {
				errs <- err
				return
			}
			if err := record.Split(b, func(batch []byte) error { _, err := record.Validate(batch); return err }); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, _, _, err := tl.OffsetForTimestamp(0); err != nil {
				errs <- err
			}
			tl.LatestEpoch()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != end+8 {
		t.Fatalf("log end %d, want %d", tl.LogEndOffset(), end+8)
	}
}

// TestDeferredLoadFallsBack: a marker without a summary (an older
// broker's), or a log closed with a transaction open, loads at Open; a
// pending log whose files turn out corrupt at its first use fails that use
// and later appends with a storage error, and stays readable as empty.
func TestDeferredLoadFallsBack(t *testing.T) {
	cfg := testConfig()
	clock := newClock()
	newLog := func() *testLog {
		tl := &testLog{t: t, dir: filepath.Join(t.TempDir(), "p-0"), cfg: cfg, clock: clock, opts: deferredOpts(clock)}
		tl.reopen()
		return tl
	}

	t.Run("old marker", func(t *testing.T) {
		tl := newLog()
		tl.appendMany(10, 100)
		tl.Close()
		tl.Log = nil
		if err := os.WriteFile(filepath.Join(tl.dir, cleanShutdownFile), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		tl.reopen2()
		defer tl.Close()
		if tl.pending.Load() {
			t.Fatal("pending without a summary")
		}
		if len(tl.allBatches()) != 10 {
			t.Fatal("records lost")
		}
	})

	t.Run("open transaction", func(t *testing.T) {
		tl := newLog()
		opts := record.NewBatchOptions(record.CodecNone)
		opts.ProducerID, opts.ProducerEpoch, opts.Transactional = 7, 0, true
		b, err := record.Build(nil, opts, 1000, []record.Record{{Value: []byte("in a transaction")}})
		if err != nil {
			t.Fatal(err)
		}
		tl.mustAppend(b)
		tl.reopen()
		defer tl.Close()
		if tl.pending.Load() {
			t.Fatal("a log with an open transaction opened pending")
		}
		if lso := tl.LastStableOffset(1); lso != 0 {
			t.Fatalf("last stable offset %d, want 0 (the open transaction)", lso)
		}
	})

	t.Run("corrupt at first use", func(t *testing.T) {
		tl := newLog()
		tl.appendMany(60, 100)
		tl.Close()
		tl.Log = nil
		// Garbage over the first (flushed, closed) segment's header and
		// its index gone: the load rebuilds the index, finds the garbage.
		segs := segmentFiles(t, tl.dir)
		f, err := os.OpenFile(segs[0], os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte("garbage garbage garbage garbage garbage garbage garbage garbage"), 0)
		f.Close()
		os.Remove(segs[0][:len(segs[0])-len(logSuffix)] + indexSuffix)
		tl.reopen2()
		defer tl.Close()
		if !tl.pending.Load() {
			t.Fatal("not pending")
		}
		if _, err := tl.Read(0, 10, 1<<20, true); !errors.Is(err, ErrCorruptSegment) {
			t.Fatalf("first use of a corrupt pending log: %v, want ErrCorruptSegment", err)
		}
		if _, err := tl.Append(makeBatch(t, batchSpec{ts: 1}), 0); err == nil {
			t.Fatal("append to a log whose load failed succeeded")
		}
		res, err := tl.Read(tl.LogStartOffset(), tl.LogEndOffset(), 1<<20, true)
		if err != nil || res.Size != 0 {
			t.Fatalf("read after a failed load: %d bytes, %v; want nothing", res.Size, err)
		}
	})
}
