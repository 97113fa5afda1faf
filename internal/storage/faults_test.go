package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// fullDisk makes every write of a segment file write half of what it was
// given and fail with ENOSPC, as a write(2) that runs out of space does,
// while on is set.
//
// Tests install it through Options.IO before Open: a roll's background
// flush may use the seam at any time after.
func fullDisk(on *atomic.Bool) func(f *os.File, b []byte, off int64) (int, error) {
	return func(f *os.File, b []byte, off int64) (int, error) {
		if !on.Load() {
			return f.WriteAt(b, off)
		}
		n, err := f.WriteAt(b[:len(b)/2], off)
		if err != nil {
			return n, err
		}
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
}

// checkWholeBatches fails unless every segment file is a sequence of whole,
// CRC-valid batches with contiguous offsets ending at end.
func checkWholeBatches(t *testing.T, dir string, end int64) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	next := int64(-1)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 {
			n, err := record.PeekSize(data)
			if err != nil || n > len(data) {
				t.Fatalf("%s: torn batch (%d bytes left): %v", name, len(data), err)
			}
			h, err := record.Validate(data[:n])
			if err != nil {
				t.Fatalf("%s: invalid batch at offset %d: %v", name, h.BaseOffset, err)
			}
			if next >= 0 && h.BaseOffset != next {
				t.Fatalf("%s: batch at %d follows one ending before %d", name, h.BaseOffset, next)
			}
			next = h.LastOffset() + 1
			data = data[n:]
		}
	}
	if next != end {
		t.Fatalf("segments end at %d, want %d", next, end)
	}
}

func TestAppendOnFullDiskCutsBackAndRecovers(t *testing.T) {
	tl := openTestLog(t, testConfig())
	var full atomic.Bool
	tl.opts.IO = &FileIO{WriteAt: fullDisk(&full)}
	tl.reopen()
	want := tl.appendMany(5, 100)
	leo := tl.LogEndOffset()
	size := tl.Size()

	full.Store(true)
	for range 3 {
		_, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 100, ts: 5000}), 0)
		if !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append on a full disk: %v, want ErrIO wrapping ENOSPC", err)
		}
	}
	if got := tl.LogEndOffset(); got != leo {
		t.Fatalf("log end moved to %d on failed appends, want %d", got, leo)
	}
	if got := tl.Size(); got != size {
		t.Fatalf("size %d after failed appends, want %d (the torn half must be cut off)", got, size)
	}
	if err := tl.Failed(); err != nil {
		t.Fatalf("a cut-back write failed the log: %v", err)
	}
	checkWholeBatches(t, tl.dir, leo)

	// Space returns: the next append lands right after the last whole batch.
	full.Store(false)
	b := makeBatch(t, batchSpec{n: 2, size: 100, ts: 6000})
	res := tl.mustAppend(b)
	if res.BaseOffset != leo {
		t.Fatalf("append after space returned got offset %d, want %d", res.BaseOffset, leo)
	}
	want = append(want, b)
	got := tl.allBatches()
	if len(got) != len(want) {
		t.Fatalf("read back %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after the full-disk episode", i)
		}
	}
	end := tl.LogEndOffset()
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != end {
		t.Fatalf("recovered log ends at %d, want %d", tl.LogEndOffset(), end)
	}
	checkWholeBatches(t, tl.dir, end)
}

func TestFollowerAppendOnFullDiskCutsBack(t *testing.T) {
	leader := openTestLog(t, testConfig())
	leader.appendMany(6, 100)
	var all []byte
	for _, b := range leader.allBatches() {
		all = append(all, b...)
	}
	half := 0
	for i, b := range leader.allBatches() {
		if i == 3 {
			break
		}
		half += len(b)
	}

	tl := openTestLog(t, testConfig())
	var full atomic.Bool
	tl.opts.IO = &FileIO{WriteAt: fullDisk(&full)}
	tl.reopen()
	if _, err := tl.AppendAsFollower(bytes.Clone(all[:half])); err != nil {
		t.Fatal(err)
	}
	leo := tl.LogEndOffset()
	full.Store(true)
	if _, err := tl.AppendAsFollower(bytes.Clone(all[half:])); !errors.Is(err, ErrIO) {
		t.Fatalf("follower append on a full disk: %v, want ErrIO", err)
	}
	if tl.LogEndOffset() != leo {
		t.Fatalf("log end %d after a failed follower append, want %d", tl.LogEndOffset(), leo)
	}
	checkWholeBatches(t, tl.dir, leo)
	full.Store(false)
	if _, err := tl.AppendAsFollower(bytes.Clone(all[half:])); err != nil {
		t.Fatalf("follower append after space returned: %v", err)
	}
	if tl.LogEndOffset() != leader.LogEndOffset() {
		t.Fatalf("follower ends at %d, leader at %d", tl.LogEndOffset(), leader.LogEndOffset())
	}
	checkWholeBatches(t, tl.dir, leader.LogEndOffset())
}

func TestFailedFsyncFailsTheLog(t *testing.T) {
	tl := openTestLog(t, testConfig())
	var fail atomic.Bool
	tl.opts.FsyncAlways = true
	tl.opts.IO = &FileIO{Sync: func(f *os.File) error {
		if fail.CompareAndSwap(true, false) { // as Linux: the error is reported once, the next fsync "succeeds"
			return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
		}
		return f.Sync()
	}}
	tl.reopen()
	fail.Store(true)
	tl.appendMany(3, 100)
	durable := tl.DurableOffset()
	if err := tl.Sync(tl.LogEndOffset() - 1); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing fsync: %v, want ErrIO wrapping EIO", err)
	}
	if tl.Failed() == nil {
		t.Fatal("a failed fsync did not fail the log")
	}
	// The second fsync would succeed: it must not be trusted.
	if err := tl.Sync(tl.LogEndOffset() - 1); !errors.Is(err, ErrIO) {
		t.Fatalf("Sync after a failed fsync: %v, want ErrIO", err)
	}
	if tl.DurableOffset() != durable {
		t.Fatalf("durable offset moved from %d to %d after a failed fsync", durable, tl.DurableOffset())
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{size: 10, ts: 9000}), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("append to a failed log: %v, want ErrIO", err)
	}
	// Reopening recovers it (the unclean shutdown makes Open check the tail).
	end := tl.LogEndOffset()
	if err := tl.Close(); err == nil {
		t.Fatal("closing a failed log reported no error")
	}
	tl.Log = nil
	if _, err := os.Stat(filepath.Join(tl.dir, cleanShutdownFile)); err == nil {
		t.Fatal("a failed log was marked as cleanly shut down")
	}
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != end {
		t.Fatalf("reopened log ends at %d, want %d", tl.LogEndOffset(), end)
	}
	tl.mustAppend(makeBatch(t, batchSpec{size: 10, ts: 9000}))
	if err := tl.Sync(tl.LogEndOffset() - 1); err != nil {
		t.Fatalf("Sync after reopening: %v", err)
	}
}

func TestOpenFailureKeepsExistingDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "t-0")
	// A topic id that does not match the one in partition.metadata of an
	// existing log is refused, and the existing directory stays.
	l, err := Open(dir, testConfig(), Options{TopicID: [16]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if _, err := Open(dir, testConfig(), Options{TopicID: [16]byte{2}}); err == nil {
		t.Fatal("open with another topic id succeeded")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("an existing log dir was removed after a failed open: %v", err)
	}
	// A new log that cannot be opened leaves no directory: the full-disk
	// test in test/crash (TestCrashFullDisk) opens one on a full tmpfs.
}

// A cleaning pass that runs out of space leaves no partial cleaned segment
// and the log's contents as they were (a group swapped in before the
// failure, one whose output was empty, stays swapped: each swap is whole);
// the next pass, with space, cleans.
func TestCleanOnFullDisk(t *testing.T) {
	tl := openTestLog(t, compactConfig())
	var full atomic.Bool
	tl.opts.IO = &FileIO{WriteAt: fullDisk(&full)}
	tl.reopen()
	fillLog(t, tl, 10, 8, record.CodecNone)
	full.Store(true)
	want := latestValues(t, tl)
	before := tl.Size()
	c := NewCleaner(CleanerConfig{Now: tl.clock.Now})
	l, _, err := c.CleanDirtiest([]*Log{tl.Log})
	if l != tl.Log || !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("clean on a full disk: %v, want ErrIO wrapping ENOSPC", err)
	}
	if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) || tl.Failed() != nil {
		t.Fatalf("after a failed clean: %v (log failed: %v), want %v", got, tl.Failed(), want)
	}
	if left, _ := filepath.Glob(filepath.Join(tl.dir, "*"+cleanedSuffix)); len(left) > 0 {
		t.Fatalf("a failed clean left %v", left)
	}
	full.Store(false)
	mid := tl.Size()
	if _, st, err := c.CleanDirtiest([]*Log{tl.Log}); err != nil || !st.Cleaned || tl.Size() >= mid {
		t.Fatalf("clean with space: %+v %v, size %d -> %d -> %d", st, err, before, mid, tl.Size())
	}
	if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after cleaning: %v, want %v", got, want)
	}
}
