package storage

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func pbatch(t *testing.T, pid int64, epoch int16, seq int32, n int) []byte {
	return makeBatch(t, batchSpec{n: n, size: 50, ts: 1000 + int64(seq), pid: pid, epoch: epoch, seq: seq})
}

func TestProducerIdempotence(t *testing.T) {
	cfg := testConfig()
	cfg.ProducerIDExpiryMs = 60_000
	tl := openTestLog(t, cfg)

	// Six batches of two records: sequences 0-1, 2-3, ... 10-11.
	var first []AppendResult
	for i := range 6 {
		first = append(first, tl.mustAppend(pbatch(t, 1, 0, int32(2*i), 2)))
	}
	// Interleave another producer so offsets are not trivially sequential.
	tl.mustAppend(pbatch(t, 2, 0, 42, 1)) // unknown producer: any sequence

	checkDups := func(t *testing.T) {
		t.Helper()
		leo := tl.LogEndOffset()
		for i := 1; i < 6; i++ {
			res, err := tl.Append(pbatch(t, 1, 0, int32(2*i), 2), 0)
			if err != nil || !res.Duplicate || res.BaseOffset != first[i].BaseOffset || res.LastOffset != first[i].LastOffset {
				t.Fatalf("duplicate of batch %d: %+v %v, original %+v", i, res, err, first[i])
			}
		}
		if tl.LogEndOffset() != leo {
			t.Fatal("a duplicate was written")
		}
		// The sixth-oldest batch is no longer remembered.
		if _, err := tl.Append(pbatch(t, 1, 0, 0, 2), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("sixth-oldest batch: %v", err)
		}
		// A partial overlap is not a duplicate.
		if _, err := tl.Append(pbatch(t, 1, 0, 10, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("overlapping batch: %v", err)
		}
	}
	checkDups(t)

	tests := []struct {
		name  string
		epoch int16
		seq   int32
		want  error
	}{
		{"gap", 0, 14, ErrOutOfOrderSequence},
		{"old sequence", 0, 11, ErrOutOfOrderSequence},
		{"stale epoch", -1, 12, ErrInvalidProducerEpoch},
	}
	for _, tc := range tests {
		if _, err := tl.Append(pbatch(t, 1, tc.epoch, tc.seq, 1), 0); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	t.Run("survives clean reopen", func(t *testing.T) {
		tl.reopen()
		checkDups(t)
	})
	t.Run("survives unclean reopen without snapshots", func(t *testing.T) {
		tl.crash()
		matches, _ := filepath.Glob(filepath.Join(tl.dir, "*.snapshot"))
		for _, m := range matches {
			os.Remove(m)
		}
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
		checkDups(t)
	})
	t.Run("in sequence", func(t *testing.T) {
		tl.mustAppend(pbatch(t, 1, 0, 12, 3))
		if _, err := tl.Append(pbatch(t, 1, 0, 16, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("gap after in-sequence batch: %v", err)
		}
	})
	t.Run("epoch bump", func(t *testing.T) {
		if _, err := tl.Append(pbatch(t, 1, 1, 5, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("new epoch not at 0: %v", err)
		}
		tl.mustAppend(pbatch(t, 1, 1, 0, 1))
		if _, err := tl.Append(pbatch(t, 1, 0, 15, 1), 0); !errors.Is(err, ErrInvalidProducerEpoch) {
			t.Fatalf("old epoch: %v", err)
		}
		tl.mustAppend(pbatch(t, 1, 1, 1, 1))
	})
	t.Run("sequence wraps", func(t *testing.T) {
		tl.mustAppend(pbatch(t, 3, 0, math.MaxInt32-1, 2)) // unknown producer, last seq MaxInt32
		tl.mustAppend(pbatch(t, 3, 0, 0, 1))
		if _, err := tl.Append(pbatch(t, 3, 0, 2, 1), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("gap after wrap: %v", err)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		tl.clock.Advance(time.Minute)
		tl.mustAppend(pbatch(t, 1, 0, 500, 1)) // forgotten: any sequence, any epoch
	})
}

func TestProducerStateWithSnapshotsAndRolls(t *testing.T) {
	tl := openTestLog(t, testConfig())
	var res []AppendResult
	for i := range 80 { // many segment rolls, each writing a snapshot
		res = append(res, tl.mustAppend(pbatch(t, 7, 3, int32(i), 1)))
	}
	snaps, _ := listSnapshots(tl.dir)
	if len(snaps) == 0 || len(snaps) > 2 {
		t.Fatalf("snapshots %v", snaps)
	}
	check := func() {
		t.Helper()
		for i := 75; i < 80; i++ {
			r, err := tl.Append(pbatch(t, 7, 3, int32(i), 1), 0)
			if err != nil || !r.Duplicate || r.BaseOffset != res[i].BaseOffset {
				t.Fatalf("dup %d: %+v %v", i, r, err)
			}
		}
	}
	check()
	tl.crash() // snapshot at the last roll, replay after it
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	check()
	// A corrupt newest snapshot falls back to an older one or a replay.
	tl.reopen()
	snaps, _ = listSnapshots(tl.dir)
	newest := filepath.Join(tl.dir, fileName(snaps[len(snaps)-1], snapshotSuffix))
	tl.crash()
	b, _ := os.ReadFile(newest)
	b[len(b)-1] ^= 0xff
	os.WriteFile(newest, b, 0o644)
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	check()
	// DeleteRecords past all of a producer's batches forgets it.
	if _, err := tl.DeleteRecordsBefore(tl.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	tl.mustAppend(pbatch(t, 7, 3, 1000, 1))
}

func TestSnapshotEncoding(t *testing.T) {
	p := newProducerState()
	p.m[5] = &producerEntry{epoch: 2, lastOffset: 99, lastWriteMs: 123, batches: []batchMeta{{1, 2, 10, 11, 500}, {3, 3, 98, 99, 501}}}
	p.m[-9] = &producerEntry{epoch: 0, lastOffset: 7}
	b := p.encode(100)
	q, err := decodeSnapshot(b, 100)
	if err != nil || len(q.m) != 2 || q.m[5].batches[1] != p.m[5].batches[1] || q.m[5].lastWriteMs != 123 {
		t.Fatalf("round trip: %+v %v", q.m, err)
	}
	if _, err := decodeSnapshot(b, 101); err == nil {
		t.Fatal("offset mismatch accepted")
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, err := decodeSnapshot(c, 100); err == nil {
			t.Fatalf("flip at %d accepted", i)
		}
	}
	if _, err := decodeSnapshot(b[:len(b)-1], 100); err == nil {
		t.Fatal("truncated snapshot accepted")
	}
}

// TestSnapListFollowsDirectory: what a log knows of its producer snapshot
// files (snapList, which spares writeSnapshot a directory listing) is what
// the directory holds, through rolls, truncations, a full truncation,
// crashes, clean closes (plain and deferred) and a torn snapshot; and the
// list is known once the log has been loaded and has rolled.
func TestSnapListFollowsDirectory(t *testing.T) {
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) {
			var tl *testLog
			if lazy {
				tl = openLazyTestLog(t)
			} else {
				tl = openTestLog(t, testConfig())
			}
			rng := rand.New(rand.NewPCG(14, 7))
			pid := int64(100)
			check := func(op string) {
				t.Helper()
				if tl.Log == nil {
					return
				}
				tl.mu.RLock()
				sl := snapList{offs: slices.Clone(tl.snaps.offs), known: tl.snaps.known}
				tl.mu.RUnlock()
				if !sl.known {
					return
				}
				onDisk, err := listSnapshots(tl.dir)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if !slices.Equal(sl.offs, onDisk) && !(len(sl.offs) == 0 && len(onDisk) == 0) {
					t.Fatalf("after %s: the log knows snapshots %v, the directory has %v", op, sl.offs, onDisk)
				}
			}
			rolled := false
			for step := range 300 {
				switch r := rng.IntN(100); {
				case r < 70:
					segs := tl.segmentCount()
					pid++
					tl.mustAppend(pbatch(t, pid, 0, 0, 1+rng.IntN(3)))
					if tl.segmentCount() > segs {
						rolled = true
						tl.mu.RLock()
						known := tl.snaps.known
						tl.mu.RUnlock()
						if !known {
							t.Fatalf("step %d: a roll left the snapshot list unknown", step)
						}
					}
					check("append")
				case r < 78:
					if leo, start := tl.LogEndOffset(), tl.LogStartOffset(); leo > start {
						if err := tl.TruncateTo(leo - rng.Int64N(min(leo-start, 40)+1)); err != nil {
							t.Fatal(err)
						}
					}
					check("truncate")
				case r < 80:
					if err := tl.TruncateFullyAndStartAt(tl.LogEndOffset() + 5); err != nil {
						t.Fatal(err)
					}
					check("full truncation")
				case r < 86:
					tl.crash()
					if err := tl.reopenErr(); err != nil {
						t.Fatal(err)
					}
					check("crash")
				case r < 92:
					tl.reopen()
					check("clean reopen")
				case r < 97:
					finish, err := tl.CloseDeferSync()
					if err != nil {
						t.Fatal(err)
					}
					tl.Log = nil
					if finish != nil {
						if err := finish(); err != nil {
							t.Fatal(err)
						}
					}
					if err := tl.reopenErr(); err != nil {
						t.Fatal(err)
					}
					check("deferred close")
				default:
					// Tear the newest snapshot, then crash: the load drops it.
					if snaps, _ := listSnapshots(tl.dir); len(snaps) > 0 {
						tl.crash()
						name := filepath.Join(tl.dir, fileName(snaps[len(snaps)-1], snapshotSuffix))
						if err := os.WriteFile(name, []byte("torn"), 0o644); err != nil {
							t.Fatal(err)
						}
						if err := tl.reopenErr(); err != nil {
							t.Fatal(err)
						}
						check("torn snapshot")
					}
				}
			}
			if !rolled {
				t.Fatal("no roll in the run: the case does not hold")
			}
		})
	}
}
