package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(dst, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		out.Close()
	}
	return dst
}

// segmentFiles returns the .log paths in dir, oldest first.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	return m
}

// checkBatches opens dir (unclean unless the marker exists) and checks the
// log holds exactly want, can be read from every offset and appended to.
func checkBatches(t *testing.T, dir string, want [][]byte) {
	t.Helper()
	checkBatchesWith(t, dir, want, Options{})
}

// checkBatchesWith is checkBatches opening with opts (its clock replaced).
func checkBatchesWith(t *testing.T, dir string, want [][]byte, opts Options) {
	t.Helper()
	clock := newClock()
	opts.Now = clock.Now
	l, err := Open(dir, testConfig(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer l.Close()
	tl := &testLog{Log: l, t: t, dir: dir, clock: clock}
	got := tl.allBatches()
	if len(got) != len(want) {
		t.Fatalf("%d batches after recovery, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after recovery", i)
		}
	}
	leo := int64(0)
	if len(want) > 0 {
		h, _ := record.ParseHeader(want[len(want)-1])
		leo = h.LastOffset() + 1
	}
	if l.LogEndOffset() != leo {
		t.Fatalf("log end %d, want %d", l.LogEndOffset(), leo)
	}
	for off := l.LogStartOffset(); off < leo; off++ {
		res, err := l.Read(off, leo, 1<<20, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		hs := splitBatches(t, readBytes(t, res))
		if len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
			t.Fatalf("read %d found the wrong batch", off)
		}
	}
	res := tl.mustAppend(makeBatch(t, batchSpec{ts: 1}))
	if res.BaseOffset != leo {
		t.Fatalf("append after recovery at %d, want %d", res.BaseOffset, leo)
	}
}

// tailLog writes a one-segment log ending with a small batch and abandons
// it without a clean shutdown. It returns the stored batches and the active
// segment's file name and size.
func tailLog(t *testing.T) (*testLog, [][]byte, string, int64) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	tl := openTestLog(t, cfg)
	stored := tl.appendMany(30, 100)
	last := makeBatch(t, batchSpec{size: 3, ts: 99_999})
	tl.mustAppend(last)
	stored = append(stored, last)
	tl.crash()
	segs := segmentFiles(t, tl.dir)
	st, err := os.Stat(segs[len(segs)-1])
	if err != nil {
		t.Fatal(err)
	}
	return tl, stored, filepath.Base(segs[len(segs)-1]), st.Size()
}

func TestRecoveryTornTail(t *testing.T) {
	tl, stored, active, size := tailLog(t)
	last := int64(len(stored[len(stored)-1]))
	for cut := size - last; cut < size; cut++ {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, tl.dir)
			if err := os.Truncate(filepath.Join(dir, active), cut); err != nil {
				t.Fatal(err)
			}
			checkBatches(t, dir, stored[:len(stored)-1])
		})
	}
	// The same with the recovery's fsyncs deferred (a broker opening
	// many logs at once): the tail is cut back all the same.
	t.Run("deferred sync", func(t *testing.T) {
		t.Parallel()
		dir := copyDir(t, tl.dir)
		os.Truncate(filepath.Join(dir, active), size-5)
		checkBatchesWith(t, dir, stored[:len(stored)-1], Options{DeferRecoverySync: true, Lazy: true})
	})
	// The same with a (lying) clean shutdown marker: the bad tail is
	// recovered too.
	t.Run("clean marker", func(t *testing.T) {
		t.Parallel()
		dir := copyDir(t, tl.dir)
		os.Truncate(filepath.Join(dir, active), size-5)
		os.WriteFile(filepath.Join(dir, cleanShutdownFile), nil, 0o644)
		checkBatches(t, dir, stored[:len(stored)-1])
	})
}

func TestRecoveryGarbageAndCorruption(t *testing.T) {
	tl, stored, active, size := tailLog(t)
	lastPos := size - int64(len(stored[len(stored)-1]))

	modify := func(t *testing.T, dir string, fn func(b []byte) []byte) {
		p := filepath.Join(dir, active)
		b, _ := os.ReadFile(p)
		if err := os.WriteFile(p, fn(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("garbage appended", func(t *testing.T) {
		for _, garbage := range [][]byte{make([]byte, 4096), bytes.Repeat([]byte{0xab}, 100), {1, 2, 3}} {
			dir := copyDir(t, tl.dir)
			modify(t, dir, func(b []byte) []byte { return append(b, garbage...) })
			checkBatches(t, dir, stored)
		}
	})
	t.Run("flipped byte in last batch", func(t *testing.T) {
		// Every byte the CRC covers, plus the length and magic fields.
		positions := []int64{8, 9, 10, 11, 16}
		for p := int64(21); p < int64(len(stored[len(stored)-1])); p++ {
			positions = append(positions, p)
		}
		for _, p := range positions {
			t.Run("", func(t *testing.T) {
				t.Parallel()
				dir := copyDir(t, tl.dir)
				modify(t, dir, func(b []byte) []byte { b[lastPos+p] ^= 0x40; return b })
				checkBatches(t, dir, stored[:len(stored)-1])
			})
		}
	})
	t.Run("torn middle segment after the recovery point drops later ones", func(t *testing.T) {
		tl := openTestLog(t, testConfig())
		stored := tl.appendMany(60, 100)
		tl.crash()
		segs := segmentFiles(t, tl.dir)
		dir := copyDir(t, tl.dir)
		mid := segs[len(segs)/2]
		base := strings.TrimSuffix(filepath.Base(mid), logSuffix)
		os.WriteFile(filepath.Join(dir, recoveryCheckpointFile), []byte("0\n"+strings.TrimLeft(base, "0")+"\n"), 0o644)
		p := filepath.Join(dir, filepath.Base(mid))
		st, _ := os.Stat(p)
		os.Truncate(p, st.Size()-3)
		// The batches wholly before the cut survive.
		var want [][]byte
		var pos int64
		b, _ := os.ReadFile(p)
		var keepUpTo int64 = -1
		for pos < int64(len(b)) {
			n, err := record.PeekSize(b[pos:])
			if err != nil || pos+int64(n) > int64(len(b)) {
				break
			}
			h, _ := record.ParseHeader(b[pos:])
			keepUpTo = h.LastOffset()
			pos += int64(n)
		}
		for _, s := range stored {
			if h, _ := record.ParseHeader(s); h.LastOffset() <= keepUpTo {
				want = append(want, s)
			}
		}
		checkBatches(t, dir, want)
		if n := len(segmentFiles(t, dir)); n > len(segs)/2+2 {
			t.Fatalf("%d segments left", n)
		}
	})
}

func TestRecoveryRebuildsIndexes(t *testing.T) {
	tl := openTestLog(t, testConfig())
	stored := tl.appendMany(80, 100)
	tl.reopen() // clean: all index files written
	tl.Close()
	tl.Log = nil
	segs := segmentFiles(t, tl.dir)
	mid := strings.TrimSuffix(segs[1], logSuffix)
	cases := []struct {
		name string
		fn   func(t *testing.T, dir string)
	}{
		{"index deleted", func(t *testing.T, dir string) { os.Remove(rebase(dir, mid+indexSuffix)) }},
		{"time index deleted", func(t *testing.T, dir string) { os.Remove(rebase(dir, mid+timeIndexSuffix)) }},
		{"index odd size", func(t *testing.T, dir string) {
			f, _ := os.OpenFile(rebase(dir, mid+indexSuffix), os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte{1, 2, 3})
			f.Close()
		}},
		{"index garbage", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(rebase(dir, mid+indexSuffix))
			if len(b) < 16 {
				t.Fatal("index too small for the test")
			}
			copy(b[len(b)-8:], []byte{0, 0, 0, 1, 0, 0, 0, 9})
			os.WriteFile(rebase(dir, mid+indexSuffix), b, 0o644)
		}},
		{"index entry off by a batch", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(rebase(dir, mid+indexSuffix))
			b[len(b)-5]++ // relative offset of the last entry
			os.WriteFile(rebase(dir, mid+indexSuffix), b, 0o644)
		}},
		{"time index garbage", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(rebase(dir, mid+timeIndexSuffix))
			copy(b, bytes.Repeat([]byte{0x7f}, 12))
			os.WriteFile(rebase(dir, mid+timeIndexSuffix), b, 0o644)
		}},
		{"all indexes deleted, unclean", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "*index"))
			for _, f := range m {
				os.Remove(f)
			}
			os.Remove(filepath.Join(dir, cleanShutdownFile))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, tl.dir)
			tc.fn(t, dir)
			checkBatches(t, dir, stored)
			// The rebuilt index was written back and passes on the next open.
			ob, _ := os.ReadFile(rebase(dir, mid+indexSuffix))
			if len(ob) == 0 || len(ob)%offsetEntrySize != 0 {
				t.Fatalf("index not rewritten: %d bytes", len(ob))
			}
		})
	}
}

func rebase(dir, path string) string { return filepath.Join(dir, filepath.Base(path)) }

func TestCorruptFlushedSegment(t *testing.T) {
	tl := openTestLog(t, testConfig())
	tl.appendMany(80, 100)
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	tl.crash()
	segs := segmentFiles(t, tl.dir)
	mid := segs[1]
	flip := func(dir string) {
		p := rebase(dir, mid)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0xff
		os.WriteFile(p, b, 0o644)
	}
	t.Run("found while rebuilding the index", func(t *testing.T) {
		dir := copyDir(t, tl.dir)
		flip(dir)
		os.Remove(rebase(dir, strings.TrimSuffix(mid, logSuffix)+indexSuffix))
		_, err := Open(dir, testConfig(), Options{})
		if !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), filepath.Base(mid)) {
			t.Fatalf("open: %v", err)
		}
	})
	t.Run("found while reading", func(t *testing.T) {
		dir := copyDir(t, tl.dir)
		flip(dir)
		l, err := Open(dir, testConfig(), Options{})
		if err != nil {
			t.Fatalf("open with intact indexes: %v", err)
		}
		defer l.Close()
		err = l.ForEachBatch(0, func([]byte) error { return nil })
		if !errors.Is(err, ErrCorruptSegment) || !strings.Contains(err.Error(), filepath.Base(mid)) {
			t.Fatalf("ForEachBatch: %v", err)
		}
	})
}

// TestSmallSegmentsReopenWithoutRebuild: an empty segment and one smaller
// than index.interval.bytes have no index entries, so no index files; a
// clean reopen must take that as empty indexes, not as lost ones.
func TestSmallSegmentsReopenWithoutRebuild(t *testing.T) {
	for _, batches := range []int{0, 2} {
		t.Run("batches "+strconv.Itoa(batches), func(t *testing.T) {
			tl := openTestLog(t, testConfig())
			stored := tl.appendMany(batches, 5) // well below index.interval.bytes (256 here)
			tl.reopen()
			if tl.rebuilt {
				t.Fatal("a clean reopen rebuilt the indexes of a small segment")
			}
			if got := tl.allBatches(); len(got) != len(stored) {
				t.Fatalf("%d batches after reopen, want %d", len(got), len(stored))
			}
		})
	}
}

// TestDeferredRecoverySync: a log recovered with its fsyncs deferred
// reports it, leaves its recovery point checkpoint alone (so that a crash
// before the caller's sync recovers as much again), holds every record;
// SyncRecovered makes it durable, and a failing fsync there fails the log,
// which then writes no clean shutdown marker.
func TestDeferredRecoverySync(t *testing.T) {
	cfg := testConfig()
	tl := openTestLog(t, cfg)
	tl.appendMany(40, 100)
	tl.bg.Wait()                       // the flushes rolls queued: none may run after the appends below
	if err := tl.Flush(); err != nil { // a recovery point in the middle
		t.Fatal(err)
	}
	tl.appendMany(5, 10) // not enough to roll: the recovery point stays below
	want := tl.allBatches()
	leo := tl.LogEndOffset()
	tl.crash()
	ckpt := filepath.Join(tl.dir, recoveryCheckpointFile)
	before, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(string(before), "\n"+strconv.FormatInt(leo, 10)+"\n") {
		t.Fatalf("recovery point already at the log end %d: the test needs one below it", leo)
	}

	failSync := false
	tl.opts = Options{Now: tl.clock.Now, Lazy: true, DeferRecoverySync: true, IO: &FileIO{Sync: func(f *os.File) error {
		if failSync {
			return errors.New("injected fsync failure")
		}
		return f.Sync()
	}}}
	for range 2 { // recovered, crashed again before the sync, recovered
		tl.reopen2()
		if !tl.RecoveryUnsynced() {
			t.Fatal("a recovered log with deferred sync does not report it")
		}
		if after, _ := os.ReadFile(ckpt); string(after) != string(before) {
			t.Fatalf("recovery point checkpoint moved before the sync: %q, was %q", after, before)
		}
		if got := tl.allBatches(); len(got) != len(want) || tl.LogEndOffset() != leo {
			t.Fatalf("%d batches, log end %d after recovery; want %d, %d", len(got), tl.LogEndOffset(), len(want), leo)
		}
		tl.crash()
	}

	failSync = true
	tl.reopen2()
	if err := tl.SyncRecovered(); !errors.Is(err, ErrIO) {
		t.Fatalf("SyncRecovered with a failing fsync: %v, want ErrIO", err)
	}
	if tl.Failed() == nil {
		t.Fatal("a failed SyncRecovered did not fail the log")
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{ts: 5}), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("append to a failed log: %v", err)
	}
	tl.Close()
	tl.Log = nil
	if _, err := os.Stat(filepath.Join(tl.dir, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a log whose recovery never became durable wrote a clean shutdown marker (%v)", err)
	}

	failSync = false
	tl.reopen2()
	if err := tl.SyncRecovered(); err != nil {
		t.Fatal(err)
	}
	if tl.RecoveryUnsynced() {
		t.Fatal("still unsynced after SyncRecovered")
	}
	checkAfter := tl.allBatches()
	if len(checkAfter) != len(want) {
		t.Fatalf("%d batches, want %d", len(checkAfter), len(want))
	}
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	tl.Log = nil
	if after, _ := os.ReadFile(ckpt); !strings.HasSuffix(string(after), "\n"+strconv.FormatInt(leo, 10)+"\n") {
		t.Fatalf("recovery point after a clean close: %q, want %d", after, leo)
	}
}

// reopen2 opens the log dir (after crash or Close left it unopened).
func (tl *testLog) reopen2() {
	tl.t.Helper()
	l, err := Open(tl.dir, tl.cfg, tl.opts)
	if err != nil {
		tl.t.Fatalf("open: %v", err)
	}
	tl.Log = l
}
