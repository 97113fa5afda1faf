package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// syncRecorder counts the fsyncs by name (FileIO.SyncPath) of a log, and
// what the recovery point checkpoint said at each.
type syncRecorder struct {
	mu    sync.Mutex
	dir   string
	paths []string
	rp    []int64 // recovery point on disk at each fsync
}

func (r *syncRecorder) sync(path string) error {
	rp, _ := readOffsetCheckpoint(r.dir, recoveryCheckpointFile, 0)
	r.mu.Lock()
	r.paths = append(r.paths, path)
	r.rp = append(r.rp, rp)
	r.mu.Unlock()
	return (*FileIO)(nil).syncPath(path)
}

func (r *syncRecorder) take() ([]string, []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, rp := r.paths, r.rp
	r.paths, r.rp = nil, nil
	return p, rp
}

func openRecordedLazyLog(t *testing.T) (*testLog, *syncRecorder) {
	t.Helper()
	tl := openLazyTestLog(t)
	tl.Log.Close()
	rec := &syncRecorder{dir: tl.dir}
	tl.opts.IO = &FileIO{SyncPath: rec.sync}
	tl.Log = nil
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	return tl, rec
}

// The first write to a new partition creates its directory and writes its
// first leader epoch without a single fsync; the next flush that fsyncs
// data makes them durable first, before the recovery point moves.
func TestFirstAppendDefersCreationFsyncs(t *testing.T) {
	tl, rec := openRecordedLazyLog(t)
	b := makeBatch(t, batchSpec{n: 2, size: 50, ts: 1000})
	if _, err := tl.Append(b, 7); err != nil {
		t.Fatal(err)
	}
	if paths, _ := rec.take(); len(paths) != 0 {
		t.Fatalf("the first append fsynced %d paths, want none: %v", len(paths), paths)
	}
	for _, name := range []string{fileName(0, logSuffix), partitionMetadataFile, epochCheckpointFile} {
		if !dirExists(t, filepath.Join(tl.dir, name)) {
			t.Fatalf("%s missing after the first append", name)
		}
	}
	if got, _ := readEpochCheckpoint(tl.dir); !slices.Equal(got.entries, []epochEntry{{7, 0}}) {
		t.Fatalf("epoch checkpoint %v, want 7 at 0", got.entries)
	}
	// A second append in the same epoch: nothing either.
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 50, ts: 1010}), 7); err != nil {
		t.Fatal(err)
	}
	if paths, _ := rec.take(); len(paths) != 0 {
		t.Fatalf("a second append fsynced %v", paths)
	}

	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	paths, rps := rec.take()
	want := []string{
		filepath.Join(tl.dir, epochCheckpointFile),
		filepath.Join(tl.dir, partitionMetadataFile),
		tl.dir,
		filepath.Dir(tl.dir),
	}
	if len(paths) < len(want) || !slices.Equal(paths[:len(want)], want) {
		t.Fatalf("the flush fsynced %v, want first %v", paths, want)
	}
	for i := range want {
		if rps[i] != 0 {
			t.Fatalf("%s fsynced after the recovery point moved to %d", paths[i], rps[i])
		}
	}
	if rp, _ := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, 0); rp != 3 {
		t.Fatalf("recovery point %d after the flush, want 3", rp)
	}
	// Nothing is left to the next flush.
	if tl.dirUnsynced.Load() || tl.epochsUnsynced.Load() {
		t.Fatal("the flush left the directory or the epoch checkpoint unsynced")
	}

	// Epoch 7 now starts below the recovery point: only the checkpoint
	// knows it. A new epoch above the recovery point (a new leader's
	// first write) leaves the checkpoint alone and goes to the tail file,
	// without fsync; the next full flush writes the checkpoint durably,
	// before the recovery point moves, and removes the tail.
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 50, ts: 1020}), 8); err != nil {
		t.Fatal(err)
	}
	if paths, _ = rec.take(); len(paths) != 0 {
		t.Fatalf("a new epoch above the recovery point fsynced %v, want nothing", paths)
	}
	if got, _ := readEpochCheckpoint(tl.dir); !slices.Equal(got.entries, []epochEntry{{7, 0}}) {
		t.Fatalf("epoch checkpoint %v after a new epoch, want 7 at 0 alone", got.entries)
	}
	if got, ok, _ := readEpochTail(tl.dir, epochCache{entries: []epochEntry{{7, 0}}}); !ok || !slices.Equal(got.entries, []epochEntry{{7, 0}, {8, 3}}) {
		t.Fatalf("epoch tail %v (%v) after a new epoch, want 7 at 0, 8 at 3", got.entries, ok)
	}
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	paths, rps = rec.take()
	if len(paths) < 2 || paths[0] != filepath.Join(tl.dir, epochCheckpointFile+tmpSuffix) || paths[1] != tl.dir || rps[0] != 3 || rps[1] != 3 {
		t.Fatalf("the flush after a new epoch fsynced %v (recovery points %v), want the checkpoint's temporary file and the directory first, at recovery point 3", paths, rps)
	}
	if got, _ := readEpochCheckpoint(tl.dir); !slices.Equal(got.entries, []epochEntry{{7, 0}, {8, 3}}) {
		t.Fatalf("epoch checkpoint %v after the flush, want 7 at 0, 8 at 3", got.entries)
	}
	if dirExists(t, filepath.Join(tl.dir, epochTailFile)) || tl.epochsPending.Load() {
		t.Fatal("the tail file outlived the flush that wrote the checkpoint")
	}
	if rp, _ := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, 0); rp != 4 {
		t.Fatalf("recovery point %d after the second flush, want 4", rp)
	}
}

// New epochs in the tail file: a process crash before the next flush
// keeps them all (Open reads the tail), a clean close writes them into
// the checkpoint, a machine crash that loses the tail leaves them to
// recovery's scan of the batches; the earlier epochs, only in the
// checkpoint, survive all three.
func TestEpochTail(t *testing.T) {
	for _, how := range []string{"kill -9", "close", "deferred close", "tail lost"} {
		tl := openLazyTestLog(t)
		for i, epoch := range []int32{3, 5} {
			if _, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 50, ts: int64(1000 + i)}), epoch); err != nil {
				t.Fatal(err)
			}
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		for i, epoch := range []int32{9, 11} {
			if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 50, ts: int64(1010 + i)}), epoch); err != nil {
				t.Fatal(err)
			}
		}
		if !tl.epochsPending.Load() {
			t.Fatal("new leaders' first writes after a flush wrote the epoch checkpoint")
		}
		switch how {
		case "deferred close":
			// A broker's shutdown: no fsync per log, one syncfs, then
			// the markers. The tail stays; the syncfs makes it durable.
			finish, err := tl.CloseDeferSync()
			if err != nil {
				t.Fatal(err)
			}
			if err := SyncFS(tl.dir); err != nil {
				t.Fatal(err)
			}
			if err := finish(); err != nil {
				t.Fatal(err)
			}
			if got, _ := readEpochCheckpoint(tl.dir); len(got.entries) != 2 || !dirExists(t, filepath.Join(tl.dir, epochTailFile)) {
				t.Fatalf("after a deferred close: checkpoint %v, tail %v; want the checkpoint untouched and the tail kept", got.entries, dirExists(t, filepath.Join(tl.dir, epochTailFile)))
			}
			tl.Log = nil
		case "kill -9":
			tl.crash()
		case "tail lost":
			tl.crash()
			if err := os.Remove(filepath.Join(tl.dir, epochTailFile)); err != nil {
				t.Fatal(err)
			}
		}
		tl.reopen()
		want := []epochEntry{{3, 0}, {5, 2}, {9, 4}, {11, 5}}
		if !slices.Equal(tl.epochs.entries, want) {
			t.Fatalf("%s: epochs %v after reopening, want %v", how, tl.epochs.entries, want)
		}
		if e, o := tl.EndOffsetForEpoch(9, -1); e != 9 || o != 5 {
			t.Fatalf("%s: EndOffsetForEpoch(9) = %d %d, want 9 5", how, e, o)
		}
		if how == "close" {
			if got, _ := readEpochCheckpoint(tl.dir); !slices.Equal(got.entries, want) || dirExists(t, filepath.Join(tl.dir, epochTailFile)) {
				t.Fatalf("after a clean close: checkpoint %v, tail left %v", got.entries, dirExists(t, filepath.Join(tl.dir, epochTailFile)))
			}
		}
		tl.Log.Close()
		tl.Log = nil
	}
}

// A tail file that does not extend the checkpoint (overtaken by it, or
// left by an earlier truncation) is removed at Open, and a truncation
// removes a pending tail before it writes the shorter checkpoint, so that
// no tail ever brings back epochs the log no longer has.
func TestEpochTailNeverExtendsATruncation(t *testing.T) {
	tl := openLazyTestLog(t)
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 50, ts: 1000}), 3); err != nil {
		t.Fatal(err)
	}
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 50, ts: 1001}), 6); err != nil {
		t.Fatal(err)
	}
	if !dirExists(t, filepath.Join(tl.dir, epochTailFile)) {
		t.Fatal("no tail file after a new epoch")
	}
	if err := tl.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	if dirExists(t, filepath.Join(tl.dir, epochTailFile)) {
		t.Fatal("the tail file outlived a truncation of the whole log")
	}
	// A stale tail put back by hand (as a crash between a truncation's
	// checkpoint write and the tail's removal would, were the order the
	// other way round) extends the empty checkpoint; Open must not take
	// epochs below the log start from it, and removes it once the
	// checkpoint does not match.
	if err := os.WriteFile(filepath.Join(tl.dir, epochTailFile), []byte("0\n1\n9 150\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl.crash()
	tl.reopen()
	if len(tl.epochs.entries) != 0 && tl.epochs.entries[0].startOffset < 100 {
		t.Fatalf("epochs %v after reopening a log that starts at 100", tl.epochs.entries)
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 50, ts: 1002}), 7); err != nil {
		t.Fatal(err)
	}
	if e, _ := tl.LatestEpoch(); e != 7 {
		t.Fatalf("latest epoch %d after appending in epoch 7", e)
	}
	tl.Log.Close()
	tl.Log = nil
}

// log.fsync=always (Sync) makes the directory durable with the first
// record it acknowledges.
func TestFirstAppendSyncMakesDirectoryDurable(t *testing.T) {
	tl, rec := openRecordedLazyLog(t)
	tl.Log.Close()
	tl.opts.FsyncAlways = true
	tl.Log = nil
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	res, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 10, ts: 1000}), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	paths, _ := rec.take()
	for _, p := range []string{filepath.Join(tl.dir, partitionMetadataFile), tl.dir, filepath.Dir(tl.dir)} {
		if !slices.Contains(paths, p) {
			t.Fatalf("Sync of the first record fsynced %v, missing %s", paths, p)
		}
	}
}

// What a machine crash may leave of a first write whose directory and
// epoch checkpoint were never fsynced: the files torn (empty), or the
// directory gone. Either way the log opens with what the disk holds: the
// batches that reached it with their epochs (recovery scans from the
// recovery point, 0, and finds them in the batches), or nothing.
func TestFirstWriteUnsyncedFilesLostByMachineCrash(t *testing.T) {
	tl, _ := openRecordedLazyLog(t)
	var want [][]byte
	for i, ep := range []int32{4, 4, 6} {
		b := makeBatch(t, batchSpec{n: 1 + i, size: 40, ts: 1000 + int64(i)})
		if _, err := tl.Append(b, ep); err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	tl.crash()
	// The renames reached the disk, the files' data did not.
	for _, name := range []string{epochCheckpointFile, partitionMetadataFile} {
		if err := os.Truncate(filepath.Join(tl.dir, name), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	got := tl.allBatches()
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
	if e, end := tl.EndOffsetForEpoch(4, 6); e != 4 || end != 3 {
		t.Fatalf("EndOffsetForEpoch(4) = %d, %d; want 4, 3", e, end)
	}
	if c, _ := readEpochCheckpoint(tl.dir); !slices.Equal(c.entries, []epochEntry{{4, 0}, {6, 3}}) {
		t.Fatalf("epoch checkpoint after recovery %v, want 4 at 0, 6 at 3", c.entries)
	}
	if b, _ := os.ReadFile(filepath.Join(tl.dir, partitionMetadataFile)); !strings.Contains(string(b), "topic_id: ") {
		t.Fatalf("partition.metadata after recovery: %q", b)
	}

	// The directory's creation itself did not reach the disk: the log is
	// as before its first write.
	tl.crash()
	if err := os.RemoveAll(tl.dir); err != nil {
		t.Fatal(err)
	}
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if leo := tl.LogEndOffset(); leo != 0 || dirExists(t, tl.dir) {
		t.Fatalf("log end %d (directory there: %v); want an empty lazy log", leo, dirExists(t, tl.dir))
	}
}

// A log recovered after a crash does not know whether its directory was
// ever made durable: the recovery's flush fsyncs it and its parent.
func TestRecoveryMakesLazyDirectoryDurable(t *testing.T) {
	tl, rec := openRecordedLazyLog(t)
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 10, ts: 1000}), 1); err != nil {
		t.Fatal(err)
	}
	tl.crash()
	rec.take()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	paths, _ := rec.take()
	if !slices.Contains(paths, filepath.Dir(tl.dir)) {
		t.Fatalf("recovery fsynced %v, not the data dir", paths)
	}
}

// The first append after a clean restart removes the marker without an
// fsync. If a machine crash brings the marker back, load checks it against
// the active segment: one that grew is recovered (its records kept, a torn
// tail cut), one that did not is as the marker says.
func TestFirstAppendAfterCleanRestartDefersMarkerSync(t *testing.T) {
	for _, deferLoad := range []bool{false, true} {
		t.Run(map[bool]string{false: "loaded", true: "deferred"}[deferLoad], func(t *testing.T) {
			tl, rec := openRecordedLazyLog(t)
			tl.opts.DeferLoad = deferLoad
			want := tl.appendMany(4, 60)
			tl.reopen() // clean: the marker with its summary
			marker := filepath.Join(tl.dir, cleanShutdownFile)
			markerData, err := os.ReadFile(marker)
			if err != nil {
				t.Fatal(err)
			}
			seg := filepath.Join(tl.dir, fileName(0, logSuffix))
			st, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			oldSize, oldEnd := st.Size(), tl.LogEndOffset()
			rec.take()
			b := makeBatch(t, batchSpec{n: 2, size: 60, ts: 5000})
			if _, err := tl.Append(b, 0); err != nil {
				t.Fatal(err)
			}
			if paths, _ := rec.take(); len(paths) != 0 {
				t.Fatalf("the first append after a clean restart fsynced %v", paths)
			}
			if dirExists(t, marker) {
				t.Fatal("the marker is still there after the append")
			}
			want = append(want, b)

			// The append reached the disk, the marker's removal did not.
			tl.crash()
			if err := os.WriteFile(marker, markerData, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			// Before any load too: a deferred log must not answer from
			// the stale summary.
			if leo := tl.LogEndOffset(); leo != oldEnd+2 || tl.pending.Load() {
				t.Fatalf("log end %d (pending %v), want %d, loaded", leo, tl.pending.Load(), oldEnd+2)
			}
			if got := tl.allBatches(); len(got) != len(want) || !bytes.Equal(got[len(got)-1], b) {
				t.Fatalf("%d batches after the marker came back, want %d with the last append", len(got), len(want))
			}

			// Torn: the active segment grew by garbage only.
			tl.crash()
			if err := os.Truncate(seg, oldSize+10); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(marker, markerData, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			if got := len(tl.allBatches()); got != len(want)-1 || tl.LogEndOffset() != oldEnd {
				t.Fatalf("after a torn tail under a stale marker: %d batches, end %d; want %d, %d", got, tl.LogEndOffset(), len(want)-1, oldEnd)
			}
			if st, _ := os.Stat(seg); st.Size() != oldSize {
				t.Fatalf("segment size %d after recovery, want %d", st.Size(), oldSize)
			}

			// Nothing of the append reached the disk: the marker is the
			// truth, and the log opens from it.
			tl.crash()
			if err := os.WriteFile(marker, markerData, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			if tl.pending.Load() != deferLoad {
				t.Fatalf("pending %v, want %v", tl.pending.Load(), deferLoad)
			}
			if got := len(tl.allBatches()); got != len(want)-1 || tl.LogEndOffset() != oldEnd {
				t.Fatalf("%d batches, end %d; want %d, %d", got, tl.LogEndOffset(), len(want)-1, oldEnd)
			}
		})
	}
}

// A roll after a first append whose marker removal is not durable yet
// makes it durable before the new segment file exists.
func TestRollMakesMarkerRemovalDurable(t *testing.T) {
	tl, rec := openRecordedLazyLog(t)
	tl.appendMany(3, 60)
	tl.reopen()
	rec.take()
	tl.mustAppend(makeBatch(t, batchSpec{n: 1, size: 60, ts: 5000}))
	if !tl.dirUnsynced.Load() {
		t.Fatal("the marker removal was fsynced by the append")
	}
	tl.mu.Lock()
	err := tl.roll()
	tl.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if paths, _ := rec.take(); !slices.Contains(paths, tl.dir) || tl.dirUnsynced.Load() {
		t.Fatalf("the roll fsynced %v; want the log directory", paths)
	}
}

// Recovery after a crash leaves the earlier process's index files in
// place (no unlinks on the restart's path) and the next full flush
// rewrites them from the start, emptying one the rebuilt index has no
// entry for.
func TestRecoveryLeavesIndexFilesToNextFlush(t *testing.T) {
	cfg := testConfig()
	cfg.IndexIntervalBytes = 100
	tl := openTestLog(t, cfg)
	want := tl.appendMany(20, 100)
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	want = append(want, tl.appendMany(10, 100)...)
	idx := filepath.Join(tl.dir, fileName(0, indexSuffix))
	before, err := os.Stat(idx)
	if err != nil {
		t.Fatal(err)
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(idx)
	if err != nil || !os.SameFile(before, after) || after.Size() != before.Size() {
		t.Fatalf("recovery replaced or removed the offset index (err %v)", err)
	}
	check := func(what string) {
		t.Helper()
		got := tl.allBatches()
		if len(got) != len(want) {
			t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%s: batch %d differs", what, i)
			}
		}
		for off := int64(0); off < tl.LogEndOffset(); off++ {
			res, err := tl.Read(off, tl.LogEndOffset(), 1, true)
			if err != nil {
				t.Fatalf("%s: read at %d: %v", what, off, err)
			}
			hs := splitBatches(t, readBytes(t, res))
			if len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
				t.Fatalf("%s: read at %d found %v", what, off, hs)
			}
		}
	}
	check("after recovery")
	// A clean shutdown rewrites the files, which a clean load then trusts.
	tl.reopen()
	tl.mu.RLock()
	n := len(tl.segs[0].offIdx.buf)
	rebuilt := tl.rebuilt
	tl.mu.RUnlock()
	if st, _ := os.Stat(idx); st.Size() != int64(n) || rebuilt {
		t.Fatalf("offset index %d bytes on disk, %d loaded (rebuilt %v)", st.Size(), n, rebuilt)
	}
	check("after a clean restart")

	// A rebuilt index with no entry empties the earlier file.
	tl2 := openTestLog(t, testConfig())
	tl2.appendMany(1, 10)
	tl2.crash()
	idx2 := filepath.Join(tl2.dir, fileName(0, indexSuffix))
	for _, p := range []string{idx2, filepath.Join(tl2.dir, fileName(0, timeIndexSuffix))} {
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xff}, 24), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl2.reopenErr(); err != nil {
		t.Fatal(err)
	}
	tl2.reopen()
	for _, p := range []string{idx2, filepath.Join(tl2.dir, fileName(0, timeIndexSuffix))} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		tl2.mu.RLock()
		want := int64(len(tl2.segs[0].offIdx.buf))
		if p != idx2 {
			want = int64(len(tl2.segs[0].timeIdx.buf))
		}
		tl2.mu.RUnlock()
		if st.Size() != want {
			t.Fatalf("%s: %d bytes on disk after the flush, the index has %d", p, st.Size(), want)
		}
	}
}

// With DeferRecoverySync the recovery fsyncs nothing per log (the caller's
// syncfs covers the directory too); SyncRecovered, its fallback, fsyncs the
// directory and its parent.
func TestDeferredRecoveryFsyncsNothingPerLog(t *testing.T) {
	tl, rec := openRecordedLazyLog(t)
	tl.opts.DeferRecoverySync = true
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 10, ts: 1000}), 1); err != nil {
		t.Fatal(err)
	}
	tl.crash()
	rec.take()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if paths, _ := rec.take(); len(paths) != 0 || !tl.RecoveryUnsynced() {
		t.Fatalf("a deferred recovery fsynced %v (unsynced %v)", paths, tl.RecoveryUnsynced())
	}
	if err := tl.SyncRecovered(); err != nil {
		t.Fatal(err)
	}
	if paths, _ := rec.take(); !slices.Contains(paths, tl.dir) || !slices.Contains(paths, filepath.Dir(tl.dir)) {
		t.Fatalf("SyncRecovered fsynced %v; want the directory and its parent", paths)
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	tl.RecoverySynced()
	if tl.dirUnsynced.Load() || tl.RecoveryUnsynced() {
		t.Fatal("RecoverySynced left the log unsynced")
	}
}

// A file where a new log's directory would go fails its first write with
// ErrIO and stays where it is.
func TestFirstAppendFileInTheWay(t *testing.T) {
	tl := openLazyTestLog(t)
	if err := os.WriteFile(tl.dir, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 1, size: 10, ts: 1000}), 0); !errors.Is(err, ErrIO) {
		t.Fatalf("append over a file in the way: %v, want ErrIO", err)
	}
	if b, err := os.ReadFile(tl.dir); err != nil || string(b) != "in the way" {
		t.Fatalf("the file in the way: %q, %v", b, err)
	}
	if err := os.Remove(tl.dir); err != nil {
		t.Fatal(err)
	}
	tl.mustAppend(makeBatch(t, batchSpec{n: 1, size: 10, ts: 1000}))
	if tl.LogEndOffset() != 1 {
		t.Fatalf("log end %d after the file went away, want 1", tl.LogEndOffset())
	}
}
