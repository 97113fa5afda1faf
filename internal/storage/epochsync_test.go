package storage

import (
	"os"
	"path/filepath"
	"testing"
)

// The leader epoch checkpoint is written without fsync on the append path
// (issue 14) and fsynced by the next full flush before the recovery point
// moves; a machine crash that loses the unsynced write is repaired by
// recovery, which scans the batches above the recovery point.

func epochAppend(tl *testLog, epoch int32, n int) {
	tl.t.Helper()
	for range n {
		if _, err := tl.Append(makeBatch(tl.t, batchSpec{ts: 1000}), epoch); err != nil {
			tl.t.Fatalf("append in epoch %d: %v", epoch, err)
		}
	}
}

func checkpointedEpochs(t *testing.T, dir string) []epochEntry {
	t.Helper()
	c, err := readEpochCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.entries
}

func TestEpochCheckpointWrittenUnsyncedThenFlushed(t *testing.T) {
	tl := openTestLog(t, testConfig())
	epochAppend(tl, 3, 2)
	if got := checkpointedEpochs(t, tl.dir); len(got) != 1 || got[0] != (epochEntry{3, 0}) {
		t.Fatalf("checkpoint after the first append: %v", got)
	}
	tl.mu.RLock()
	unsynced := tl.epochsUnsynced
	tl.mu.RUnlock()
	if !unsynced {
		t.Fatal("the append path's checkpoint write is not marked unsynced")
	}
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	tl.mu.RLock()
	unsynced = tl.epochsUnsynced
	tl.mu.RUnlock()
	if unsynced {
		t.Fatal("a full flush left the epoch checkpoint unsynced")
	}
	if rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1); err != nil || rp != 2 {
		t.Fatalf("recovery point %d %v, want 2", rp, err)
	}
	// A process crash (kill -9) keeps what was written, synced or not.
	epochAppend(tl, 5, 1)
	tl.crash()
	tl.reopen()
	if got := checkpointedEpochs(t, tl.dir); len(got) != 2 || got[1] != (epochEntry{5, 2}) {
		t.Fatalf("checkpoint after kill -9: %v", got)
	}
	if e, ok := tl.epochs.latest(); !ok || e != (epochEntry{5, 2}) {
		t.Fatalf("latest epoch after kill -9: %v %v", e, ok)
	}
}

// TestEpochCheckpointLostInMachineCrash: the unsynced write of a new epoch
// is lost (the file holds what the last full flush made durable); recovery
// scans from the recovery point and assigns the lost epoch again.
func TestEpochCheckpointLostInMachineCrash(t *testing.T) {
	tl := openTestLog(t, testConfig())
	epochAppend(tl, 1, 3)
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	durable, err := os.ReadFile(filepath.Join(tl.dir, epochCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	epochAppend(tl, 2, 2)
	epochAppend(tl, 4, 1)
	tl.crash()
	if err := os.WriteFile(filepath.Join(tl.dir, epochCheckpointFile), durable, 0o644); err != nil {
		t.Fatal(err)
	}
	tl.reopen()
	want := []epochEntry{{1, 0}, {2, 3}, {4, 5}}
	if got := tl.epochs.entries; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("epochs after recovery %v, want %v", got, want)
	}
	if ep, end := tl.EndOffsetForEpoch(2, 4); ep != 2 || end != 5 {
		t.Fatalf("end offset for epoch 2: %d %d, want 2 5", ep, end)
	}
}

// TestFullFlushWaitsForEpochCheckpoint: if the epoch checkpoint cannot be
// made durable, a full flush fails and the recovery point stays where it
// was; the next flush that can write it moves it.
func TestFullFlushWaitsForEpochCheckpoint(t *testing.T) {
	tl := openTestLog(t, testConfig())
	epochAppend(tl, 1, 2)
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	epochAppend(tl, 2, 2)
	// The checkpoint's temporary file cannot be created: a directory is
	// in its way (not empty, so the failed write's cleanup leaves it).
	block := filepath.Join(tl.dir, epochCheckpointFile+tmpSuffix)
	if err := os.MkdirAll(filepath.Join(block, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tl.Flush(); err == nil {
		t.Fatal("full flush succeeded without a durable epoch checkpoint")
	}
	if rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1); err != nil || rp != 2 {
		t.Fatalf("recovery point %d %v, want it left at 2", rp, err)
	}
	if err := os.RemoveAll(block); err != nil {
		t.Fatal(err)
	}
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	if rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1); err != nil || rp != 4 {
		t.Fatalf("recovery point %d %v, want 4", rp, err)
	}
	if got := checkpointedEpochs(t, tl.dir); len(got) != 2 || got[1] != (epochEntry{2, 2}) {
		t.Fatalf("checkpoint %v", got)
	}
}
