package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// openLazyTestLog opens a lazy log in a directory that does not exist yet.
func openLazyTestLog(t *testing.T) *testLog {
	t.Helper()
	clock := newClock()
	tl := &testLog{t: t, dir: filepath.Join(t.TempDir(), "t-0"), cfg: testConfig(), clock: clock,
		opts: Options{Now: clock.Now, Lazy: true, TopicID: [16]byte{1, 2, 3}}}
	tl.reopen()
	t.Cleanup(func() {
		if tl.Log != nil {
			tl.Log.Close()
		}
	})
	return tl
}

func dirExists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLazyLogCreatesNothingUntilWritten(t *testing.T) {
	tl := openLazyTestLog(t)
	if dirExists(t, tl.dir) {
		t.Fatal("a lazy log created its directory at Open")
	}
	if leo, start := tl.LogEndOffset(), tl.LogStartOffset(); leo != 0 || start != 0 {
		t.Fatalf("log end %d, start %d; want 0, 0", leo, start)
	}
	res, err := tl.Read(0, 10, 1<<20, true)
	if err != nil || res.Size != 0 {
		t.Fatalf("Read = %d bytes, %v; want nothing", res.Size, err)
	}
	if _, _, found, err := tl.OffsetForTimestamp(0); found || err != nil {
		t.Fatalf("OffsetForTimestamp on an empty lazy log: found %v, err %v", found, err)
	}
	// Unchanged maintenance writes nothing either.
	if err := tl.SaveHighWatermark(0); err != nil {
		t.Fatal(err)
	}
	if err := tl.EnforceRetention(0); err != nil {
		t.Fatal(err)
	}
	if err := tl.MaybeFlush(); err != nil {
		t.Fatal(err)
	}
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	// A clean close, a crash and a reopen leave nothing behind either.
	tl.reopen()
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if dirExists(t, tl.dir) {
		t.Fatal("closing or reopening a lazy log created its directory")
	}
	if err := tl.Delete(); err != nil {
		t.Fatalf("Delete of a log never written: %v", err)
	}
	tl.Log = nil
}

func TestLazyLogFirstAppendCreatesIt(t *testing.T) {
	tl := openLazyTestLog(t)
	want := tl.appendMany(5, 100)
	for _, name := range []string{fileName(0, logSuffix), partitionMetadataFile} {
		if !dirExists(t, filepath.Join(tl.dir, name)) {
			t.Fatalf("%s missing after the first append", name)
		}
	}
	// After a crash (no clean shutdown) every appended batch is there.
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	got := tl.allBatches()
	if len(got) != len(want) {
		t.Fatalf("%d batches after the crash, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after the crash", i)
		}
	}
}

func TestLazyLogFirstTruncationAndHighWatermarkCreateIt(t *testing.T) {
	tl := openLazyTestLog(t)
	if err := tl.SaveHighWatermark(0); err != nil || dirExists(t, tl.dir) {
		t.Fatalf("an unchanged high watermark created the log (err %v)", err)
	}
	if err := tl.TruncateFullyAndStartAt(42); err != nil {
		t.Fatal(err)
	}
	if !dirExists(t, tl.dir) {
		t.Fatal("TruncateFullyAndStartAt did not create the log")
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if start, leo := tl.LogStartOffset(), tl.LogEndOffset(); start != 42 || leo != 42 {
		t.Fatalf("after a crash: start %d, end %d; want 42, 42", start, leo)
	}
}

func TestLazyLogKeepsCleanMarkerUntilFirstWrite(t *testing.T) {
	tl := openLazyTestLog(t)
	want := tl.appendMany(3, 100)
	marker := filepath.Join(tl.dir, cleanShutdownFile)
	tl.reopen() // clean shutdown writes the marker
	if !dirExists(t, marker) {
		t.Fatal("no clean shutdown marker after Close")
	}
	// Reads and a clean close leave it in place.
	if len(tl.allBatches()) != len(want) {
		t.Fatal("batches missing after a clean restart")
	}
	tl.reopen()
	if !dirExists(t, marker) {
		t.Fatal("the marker went away without a write")
	}
	// A crash before any write: the files are as the clean shutdown left
	// them, and the log opens clean with everything there.
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if !dirExists(t, marker) {
		t.Fatal("the marker went away without a write")
	}
	// The first write removes it first; a crash after it recovers.
	more := tl.appendMany(2, 100)
	if dirExists(t, marker) {
		t.Fatal("the marker is still there after a write")
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if got := tl.allBatches(); len(got) != len(want)+len(more) {
		t.Fatalf("%d batches after the crash, want %d", len(got), len(want)+len(more))
	}
}

func TestCloseDeferSync(t *testing.T) {
	tl := openLazyTestLog(t)
	want := tl.appendMany(40, 100) // several segments, with indexes
	finish, err := tl.CloseDeferSync()
	if err != nil || finish == nil {
		t.Fatalf("CloseDeferSync = %v, %v", finish != nil, err)
	}
	tl.Log = nil
	marker := filepath.Join(tl.dir, cleanShutdownFile)
	if dirExists(t, marker) {
		t.Fatal("marker written before the file system was synced")
	}
	// A crash here: no marker, the log recovers with everything.
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if got := tl.allBatches(); len(got) != len(want) {
		t.Fatalf("%d batches after a crash mid-close, want %d", len(got), len(want))
	}
	tl.appendMany(1, 100)
	leo := tl.LogEndOffset()
	activeBase := tl.active().base
	if finish, err = tl.CloseDeferSync(); err != nil {
		t.Fatal(err)
	}
	tl.Log = nil
	if err := SyncFS(tl.dir); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if err := SyncFS(tl.dir); err != nil {
		t.Fatal(err)
	}
	if !dirExists(t, marker) {
		t.Fatal("no marker after finish")
	}
	// A recovery point already in the active segment is left as it is
	// (closeWith).
	if rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1); err != nil || rp < activeBase || rp > leo {
		t.Fatalf("recovery point %d, %v; want one in the active segment [%d, %d]", rp, err, activeBase, leo)
	}
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != leo || len(tl.allBatches()) != len(want)+1 {
		t.Fatalf("log end %d, want %d", tl.LogEndOffset(), leo)
	}
	// A closed log's CloseDeferSync does nothing.
	l := tl.Log
	if _, err := l.CloseDeferSync(); err != nil {
		t.Fatal(err)
	}
	if f, err := l.CloseDeferSync(); f != nil || err != nil {
		t.Fatalf("second CloseDeferSync = %v, %v", f != nil, err)
	}
	tl.Log = nil
}

// TestCloseDeferSyncRecoveryPoint: a deferred close writes the recovery
// point only when the one on disk is below the active segment, and a
// crash after a clean restart still recovers every batch either way.
func TestCloseDeferSyncRecoveryPoint(t *testing.T) {
	closeClean := func(tl *testLog) {
		t.Helper()
		finish, err := tl.CloseDeferSync()
		if err != nil || finish == nil {
			t.Fatalf("CloseDeferSync = %v, %v", finish != nil, err)
		}
		tl.Log = nil
		if err := SyncFS(tl.dir); err != nil {
			t.Fatal(err)
		}
		if err := finish(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		batches int
		wantRP  bool // the recovery point is written at the close
	}{
		{"one segment", 3, false},      // on disk: none (0), the active segment's base
		{"several segments", 40, true}, // none on disk, the active segment starts above 0
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := openLazyTestLog(t)
			want := tl.appendMany(tc.batches, 100)
			leo := tl.LogEndOffset()
			if got := tl.segmentCount() > 1; got != tc.wantRP {
				t.Fatalf("%d segments: the case does not hold", tl.segmentCount())
			}
			closeClean(tl)
			rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantRP && rp != leo {
				t.Fatalf("recovery point %d, want the log end %d", rp, leo)
			}
			if !tc.wantRP && rp != -1 {
				t.Fatalf("recovery point file written (%d) for a log of one segment", rp)
			}
			// A clean restart, one more batch, a crash: recovery scans
			// the active segment and finds every batch.
			tl.reopen()
			more := tl.appendMany(1, 100)
			tl.crash()
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			if got := tl.allBatches(); len(got) != len(want)+len(more) {
				t.Fatalf("%d batches after the crash, want %d", len(got), len(want)+len(more))
			}
		})
	}
}

func TestSaveHighWatermarkOverwritesInPlace(t *testing.T) {
	tl := openLazyTestLog(t)
	tl.appendMany(20, 10)
	for _, hw := range []int64{12345 % tl.LogEndOffset(), tl.LogEndOffset(), 3} {
		if err := tl.SaveHighWatermark(hw); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(tl.dir, replicationCheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		if want := "0\n" + itoa(hw) + "\n"; string(b) != want {
			t.Fatalf("checkpoint %q, want %q", b, want)
		}
		tl.reopen()
		if got := tl.HighWatermarkCheckpoint(); got != hw {
			t.Fatalf("high watermark after reopen %d, want %d", got, hw)
		}
	}
}

func itoa(n int64) string { return string(fmt.Appendf(nil, "%d", n)) }

// TestDeferredCloseShortIndexTail: a deferred close leaves a short tail
// of the active segment's index entries unwritten (smallIndexTail); the
// next load makes them again, the same entries, reads find every batch,
// and the next full flush writes them. A longer tail is written at the
// close, as before.
func TestDeferredCloseShortIndexTail(t *testing.T) {
	closeDeferred := func(tl *testLog) {
		t.Helper()
		finish, err := tl.CloseDeferSync()
		if err != nil {
			t.Fatal(err)
		}
		tl.Log = nil
		if err := SyncFS(tl.dir); err != nil {
			t.Fatal(err)
		}
		if finish != nil {
			if err := finish(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fileLen := func(tl *testLog, s *segment, suffix string) int {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(tl.dir, fileName(s.base, suffix)))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return len(b)
	}
	active := func(tl *testLog) (s *segment, off, tim []byte) {
		t.Helper()
		if err := tl.ensureLoaded(); err != nil {
			t.Fatal(err)
		}
		tl.mu.RLock()
		defer tl.mu.RUnlock()
		s = tl.active()
		return s, slices.Clone(s.offIdx.buf), slices.Clone(s.timeIdx.buf)
	}

	t.Run("short tail kept", func(t *testing.T) {
		tl := openLazyTestLog(t) // an index entry every 256 bytes
		tl.cfg.SegmentBytes = 16 << 10
		tl.reopen()
		var want [][]byte
		i := 0
		appendOne := func() {
			b := makeBatch(t, batchSpec{n: 1 + i%3, size: 100, ts: 1000 + int64(i)*10})
			tl.mustAppend(b)
			want = append(want, b)
			i++
		}
		for i < 100 || tl.active().size.Load() > 8<<10 {
			appendOne() // some segments, then an active one half full
		}
		tl.bg.Wait() // the rolls' flushes (they write every index tail)
		first := tl.active()
		for range 6 {
			appendOne()
		}
		s, off, tim := active(tl)
		if s != first || len(off) <= s.offIdx.written {
			t.Fatalf("the active segment rolled or has no unwritten entry (%d bytes, %d written): the case does not hold", len(off), s.offIdx.written)
		}
		if len(off) < 4*offsetEntrySize || len(tim) < 2*timeEntrySize {
			t.Fatalf("active segment with %d offset and %d time index bytes: the case does not hold", len(off), len(tim))
		}
		closeDeferred(tl)
		if n := fileLen(tl, s, indexSuffix); n >= len(off) {
			t.Fatalf("offset index file of %d bytes, memory had %d: the tail was written", n, len(off))
		}
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
		_, off2, tim2 := active(tl)
		if !bytes.Equal(off2, off) || !bytes.Equal(tim2, tim) {
			t.Fatalf("indexes after the load differ from before the close:\noffset %x\nwant   %x\ntime   %x\nwant   %x", off2, off, tim2, tim)
		}
		got := tl.allBatches()
		if len(got) != len(want) {
			t.Fatalf("%d batches, want %d", len(got), len(want))
		}
		for o := tl.LogStartOffset(); o < tl.LogEndOffset(); o++ {
			res, err := tl.Read(o, tl.LogEndOffset(), 1, true)
			if err != nil {
				t.Fatal(err)
			}
			hs := splitBatches(t, readBytes(t, res))
			if len(hs) != 1 || hs[0].BaseOffset > o || hs[0].LastOffset() < o {
				t.Fatalf("read at %d: %+v", o, hs)
			}
		}
		// A full flush writes what the load made.
		if err := tl.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := fileLen(tl, s, indexSuffix); n != len(off) {
			t.Fatalf("offset index file of %d bytes after a flush, want %d", n, len(off))
		}
	})

	t.Run("long tail written", func(t *testing.T) {
		tl := openLazyTestLog(t)
		tl.cfg.SegmentBytes = 1 << 20
		tl.reopen()
		tl.appendMany(800, 100) // about 100 KiB in the active segment
		s, off, _ := active(tl)
		closeDeferred(tl)
		if n := fileLen(tl, s, indexSuffix); n != len(off) {
			t.Fatalf("offset index file of %d bytes, memory had %d: a long tail was left", n, len(off))
		}
	})
}
