package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// leaderBatch builds a batch as a leader stored it: base offset and
// partition leader epoch set (both outside the CRC).
func leaderBatch(t *testing.T, base int64, epoch int32, sp batchSpec) []byte {
	t.Helper()
	b := makeBatch(t, sp)
	record.SetBaseOffset(b, base)
	record.SetPartitionLeaderEpoch(b, epoch)
	return b
}

// readAll returns the bytes of the whole log through Read.
func (tl *testLog) readAll() []byte {
	tl.t.Helper()
	leo := tl.LogEndOffset()
	res, err := tl.Read(tl.LogStartOffset(), leo, 1<<30, true)
	if err != nil {
		tl.t.Fatalf("read: %v", err)
	}
	return readBytes(tl.t, res)
}

func (tl *testLog) segmentBases() []int64 {
	tl.mu.RLock()
	defer tl.mu.RUnlock()
	var bases []int64
	for _, s := range tl.segs {
		bases = append(bases, s.base)
	}
	return bases
}

// epochCheckpoint is the leader epoch checkpoint as a restart reads it.
// It holds flushMu: a flush in the background (a roll's) moves new
// epochs from the tail file into the checkpoint.
func (tl *testLog) epochCheckpoint() string {
	tl.t.Helper()
	tl.flushMu.Lock()
	defer tl.flushMu.Unlock()
	b, err := os.ReadFile(filepath.Join(tl.dir, epochCheckpointFile))
	if err != nil {
		tl.t.Fatalf("read epoch checkpoint: %v", err)
	}
	// New epochs may wait in the tail file for the next full flush (a
	// roll's runs in the background): Open reads them from there.
	if main, err := parseEpochCheckpoint(b, epochCheckpointFile); err == nil {
		if tail, ok, _ := readEpochTail(tl.dir, main); ok {
			return string(tail.encode())
		}
	}
	return string(b)
}

// batchStarts splits concatenated batches into their headers and byte
// positions.
func batchStarts(t *testing.T, b []byte) ([]record.Header, []int) {
	t.Helper()
	var hs []record.Header
	var starts []int
	pos := 0
	for pos < len(b) {
		n, err := record.PeekSize(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		h, err := record.ParseHeader(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		starts = append(starts, pos)
		pos += n
	}
	return hs, starts
}

// TestAppendAsFollowerCopiesLeader replicates a leader's log in fetch-sized
// chunks that end inside batches: the follower's bytes, segments, epochs
// and producer state are the leader's, also after a clean and an unclean
// reopen.
func TestAppendAsFollowerCopiesLeader(t *testing.T) {
	leader := openTestLog(t, testConfig())
	seq := int32(0)
	for i := range 90 {
		epoch := int32(1 + i/30*2) // 1, 3, 5
		sp := batchSpec{n: 1 + i%3, size: 100, ts: 1000 + int64(i)*10}
		if i%4 == 0 {
			sp.pid, sp.seq = 7, seq
			seq += int32(sp.n)
		}
		if _, err := leader.Append(makeBatch(t, sp), epoch); err != nil {
			t.Fatal(err)
		}
	}
	want := leader.readAll()
	hs, starts := batchStarts(t, want)

	follower := openTestLog(t, testConfig())
	pos := 0
	for chunk := 1; pos < len(want); chunk++ {
		end := min(len(want), pos+chunk*211) // ends mid-batch most times
		leo := follower.LogEndOffset()
		res, err := follower.AppendAsFollower(want[pos:end])
		if err != nil {
			t.Fatalf("append bytes %d..%d: %v", pos, end, err)
		}
		// The follower took exactly the whole batches of the chunk.
		i := sort.Search(len(starts), func(i int) bool { return starts[i] >= pos })
		j := i
		for j < len(hs) && starts[j]+int(hs[j].Size()) <= end {
			j++
		}
		wantLast := leo - 1
		if j > i {
			wantLast = hs[j-1].LastOffset()
			if res.BaseOffset != hs[i].BaseOffset {
				t.Fatalf("result base %d, want %d", res.BaseOffset, hs[i].BaseOffset)
			}
		}
		if res.LastOffset != wantLast || follower.LogEndOffset() != wantLast+1 {
			t.Fatalf("bytes %d..%d: result %+v, log end %d, want last %d", pos, end, res, follower.LogEndOffset(), wantLast)
		}
		if j < len(starts) {
			pos = starts[j]
		} else {
			pos = len(want)
		}
	}
	check := func(what string) {
		t.Helper()
		if got := follower.readAll(); !bytes.Equal(got, want) {
			t.Fatalf("%s: follower bytes differ from the leader's (%d vs %d bytes)", what, len(got), len(want))
		}
		if f, l := follower.LogEndOffset(), leader.LogEndOffset(); f != l {
			t.Fatalf("%s: log end %d, leader %d", what, f, l)
		}
		if f, l := follower.segmentBases(), leader.segmentBases(); !slices.Equal(f, l) {
			t.Fatalf("%s: segments %v, leader %v", what, f, l)
		}
		if f, l := follower.epochCheckpoint(), leader.epochCheckpoint(); f != l || f != "0\n3\n1 0\n3 60\n5 120\n" {
			t.Fatalf("%s: epoch checkpoint %q, leader %q", what, f, l)
		}
		if e, ok := follower.LatestEpoch(); e != 5 || !ok {
			t.Fatalf("%s: latest epoch %d %v", what, e, ok)
		}
		for e := int32(0); e <= 6; e++ {
			fe, fo := follower.EndOffsetForEpoch(e, -1)
			le, lo := leader.EndOffsetForEpoch(e, -1)
			if fe != le || fo != lo {
				t.Fatalf("%s: EndOffsetForEpoch(%d) = %d %d, leader %d %d", what, e, fe, fo, le, lo)
			}
		}
	}
	check("after replication")

	// Replicating through the leader's Read with maxOffset at its log end,
	// as a fetch does, with responses that end inside a batch.
	f2 := openTestLog(t, testConfig())
	for f2.LogEndOffset() < leader.LogEndOffset() {
		res, err := leader.Read(f2.LogEndOffset(), leader.LogEndOffset(), 1000, true)
		if err != nil {
			t.Fatal(err)
		}
		got := readBytes(t, res)
		at := bytes.Index(want, got)
		resp := want[at : at+len(got)+min(30, len(want)-at-len(got))]
		if _, err := f2.AppendAsFollower(resp); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(f2.readAll(), want) {
		t.Fatal("replication through Read: bytes differ")
	}
	if n := len(follower.segmentBases()); n < 4 {
		t.Fatalf("expected the follower to roll segments, got %d", n)
	}

	// A follower that becomes leader deduplicates the producer's retries.
	last := hs[len(hs)-1]
	for k := len(hs) - 1; k >= 0; k-- {
		if hs[k].ProducerID == 7 {
			last = hs[k]
			break
		}
	}
	dupOf := func(tl *testLog) {
		t.Helper()
		res, err := tl.Append(makeBatch(t, batchSpec{n: int(last.NumRecords), size: 100, ts: 1, pid: 7, seq: last.BaseSequence}), 6)
		if err != nil || !res.Duplicate || res.BaseOffset != last.BaseOffset || res.LastOffset != last.LastOffset() {
			t.Fatalf("retry of the last producer batch: %+v %v, original at %d", res, err, last.BaseOffset)
		}
	}
	dupOf(follower)

	follower.reopen()
	check("after a clean reopen")
	dupOf(follower)
	follower.crash()
	if err := os.Remove(filepath.Join(follower.dir, cleanShutdownFile)); err == nil {
		t.Fatal("crash left a clean shutdown marker")
	}
	if err := follower.reopenErr(); err != nil {
		t.Fatal(err)
	}
	check("after a crash")
	dupOf(follower)
}

func TestAppendAsFollowerGapsPartialAndRefusals(t *testing.T) {
	tl := openTestLog(t, testConfig())
	b1 := leaderBatch(t, 0, 1, batchSpec{n: 3, ts: 100})
	b2 := leaderBatch(t, 10, 1, batchSpec{n: 2, ts: 110}) // gap 3..9, as compaction leaves
	b3 := leaderBatch(t, 20, 2, batchSpec{n: 1, ts: 120})
	b4 := leaderBatch(t, 25, 2, batchSpec{n: 2, ts: 130})
	in := slices.Concat(b1, b2, b3, b4[:len(b4)-5])
	res, err := tl.AppendAsFollower(in)
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 0 || res.LastOffset != 20 || tl.LogEndOffset() != 21 {
		t.Fatalf("result %+v, log end %d", res, tl.LogEndOffset())
	}
	if got := tl.readAll(); !bytes.Equal(got, slices.Concat(b1, b2, b3)) {
		t.Fatal("stored bytes are not the leader's")
	}
	if cp := tl.epochCheckpoint(); cp != "0\n2\n1 0\n2 20\n" {
		t.Fatalf("epoch checkpoint %q", cp)
	}
	// Reading inside the gap starts with the next batch.
	res2, err := tl.Read(5, 21, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if hs := splitBatches(t, readBytes(t, res2)); len(hs) != 2 || hs[0].BaseOffset != 10 {
		t.Fatalf("read in the gap: %+v", hs)
	}

	// Nothing whole: nothing appended, no error.
	for _, in := range [][]byte{nil, b4[:5], b4[:40], b4[:len(b4)-1]} {
		res, err := tl.AppendAsFollower(in)
		if err != nil || res.BaseOffset != 21 || res.LastOffset != 20 {
			t.Fatalf("%d partial bytes: %+v %v", len(in), res, err)
		}
	}
	if res, err := tl.AppendAsFollower(b4); err != nil || res.BaseOffset != 25 || res.LastOffset != 26 {
		t.Fatalf("append b4: %+v %v", res, err)
	}

	// Refusals change nothing.
	corrupt := leaderBatch(t, 30, 2, batchSpec{n: 1, ts: 140})
	corrupt[len(corrupt)-1] ^= 0xff
	badMagic := leaderBatch(t, 30, 2, batchSpec{n: 1, ts: 140})
	badMagic[16] = 1
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"below the log end", leaderBatch(t, 26, 2, batchSpec{n: 1, ts: 140}), ErrUnexpectedAppendOffset},
		{"overlapping batches", slices.Concat(leaderBatch(t, 30, 2, batchSpec{n: 3, ts: 140}), leaderBatch(t, 32, 2, batchSpec{n: 1, ts: 150})), ErrUnexpectedAppendOffset},
		{"repeated batch", slices.Concat(leaderBatch(t, 30, 2, batchSpec{n: 1, ts: 140}), leaderBatch(t, 30, 2, batchSpec{n: 1, ts: 140})), ErrUnexpectedAppendOffset},
		{"bad CRC after a good batch", slices.Concat(leaderBatch(t, 30, 2, batchSpec{n: 1, ts: 140}), corrupt), record.ErrBadCRC},
		{"bad magic", badMagic, record.ErrMagic},
		{"too large", leaderBatch(t, 30, 2, batchSpec{n: 1, size: 5000, ts: 140}), ErrRecordTooLarge},
	}
	for _, tc := range tests {
		before := tl.readAll()
		_, err := tl.AppendAsFollower(tc.in)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if tl.LogEndOffset() != 27 || !bytes.Equal(tl.readAll(), before) {
			t.Fatalf("%s: the log changed", tc.name)
		}
	}

	// An offset gap wider than a segment's relative offsets rolls a
	// segment at the batch's base offset.
	far := int64(27) + 3<<30
	b5 := leaderBatch(t, far, 3, batchSpec{n: 2, ts: 150})
	if res, err := tl.AppendAsFollower(b5); err != nil || res.BaseOffset != far {
		t.Fatalf("append after a wide gap: %+v %v", res, err)
	}
	if bases := tl.segmentBases(); bases[len(bases)-1] != far {
		t.Fatalf("segments %v, want the last at %d", bases, far)
	}
	want := slices.Concat(b1, b2, b3, b4, b5)
	for _, reopen := range []func(){tl.reopen, func() {
		tl.crash()
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
	}} {
		reopen()
		if tl.LogEndOffset() != far+2 || !bytes.Equal(tl.readAll(), want) {
			t.Fatalf("after reopen: log end %d", tl.LogEndOffset())
		}
		if cp := tl.epochCheckpoint(); cp != "0\n3\n1 0\n2 20\n3 "+strconv.FormatInt(far, 10)+"\n" {
			t.Fatalf("epoch checkpoint after reopen %q", cp)
		}
	}
}

// truncateFixture is a log of 150 leader-appended batches over several
// segments with epochs 1 (batches 0-29), 2 (30-89), 3 (90-119) and 5.
type truncateFixture struct {
	tl      *testLog
	batches [][]byte
	hs      []record.Header
}

func newTruncateFixture(t *testing.T) *truncateFixture {
	tl := openTestLog(t, testConfig())
	f := &truncateFixture{tl: tl}
	for i := range 150 {
		epoch := int32(1)
		switch {
		case i >= 120:
			epoch = 5
		case i >= 90:
			epoch = 3
		case i >= 30:
			epoch = 2
		}
		b := makeBatch(t, batchSpec{n: 1 + i%3, size: 100, ts: 1000 + int64(i)*10})
		if _, err := tl.Append(b, epoch); err != nil {
			t.Fatal(err)
		}
		h, _ := record.ParseHeader(b)
		f.batches = append(f.batches, b)
		f.hs = append(f.hs, h)
	}
	return f
}

// kept returns the batches wholly below offset.
func (f *truncateFixture) kept(offset int64) ([][]byte, int64) {
	var out [][]byte
	end := int64(0)
	for i, h := range f.hs {
		if h.LastOffset() < offset {
			out = append(out, f.batches[i])
			end = h.LastOffset() + 1
		}
	}
	return out, end
}

func TestTruncateTo(t *testing.T) {
	probe := newTruncateFixture(t)
	bases := probe.tl.segmentBases()
	if len(bases) < 6 {
		t.Fatalf("fixture has %d segments", len(bases))
	}
	leo := probe.tl.LogEndOffset()
	mid := probe.hs[len(probe.hs)-10] // a batch in the active segment
	// A batch with several records in the middle of segment 2.
	var straddle record.Header
	for _, h := range probe.hs {
		if h.BaseOffset > bases[2]+3 && h.NumRecords == 3 {
			straddle = h
			break
		}
	}
	tests := []struct {
		name   string
		offset int64
	}{
		{"mid active segment at a batch boundary", mid.BaseOffset},
		{"inside a batch", straddle.BaseOffset + 1},
		{"at a segment boundary", bases[3]},
		{"across several segments", bases[1] + 5},
		{"inside the first segment", 4},
		{"to the log start", 0},
		{"at the log end", leo},
		{"past the log end", leo + 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTruncateFixture(t)
			tl := f.tl
			if err := tl.TruncateTo(tc.offset); err != nil {
				t.Fatal(err)
			}
			kept, end := f.kept(tc.offset)
			check := func(what string, extra ...[]byte) {
				t.Helper()
				wantEnd := end
				if len(extra) > 0 {
					wantEnd = end + 1
				}
				if tl.LogEndOffset() != wantEnd {
					t.Fatalf("%s: log end %d, want %d", what, tl.LogEndOffset(), wantEnd)
				}
				got := tl.allBatches()
				want := append(slices.Clone(kept), extra...)
				if len(got) != len(want) {
					t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
				}
				for i := range got {
					if !bytes.Equal(got[i], want[i]) {
						t.Fatalf("%s: batch %d differs", what, i)
					}
				}
				// Every offset is found through the trimmed indexes.
				for off := int64(0); off < wantEnd; off++ {
					res, err := tl.Read(off, wantEnd, 1<<20, true)
					if err != nil {
						t.Fatalf("%s: read %d: %v", what, off, err)
					}
					hs := splitBatches(t, readBytes(t, res))
					if len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off || hs[len(hs)-1].LastOffset() != wantEnd-1 {
						t.Fatalf("%s: read %d: %+v", what, off, hs)
					}
				}
				if len(kept) > 0 {
					wantTs := f.hs[len(kept)-1].MaxTimestamp
					if len(extra) > 0 {
						wantTs = 99_999
					}
					if _, ts, err := tl.MaxTimestamp(); err != nil || ts != wantTs {
						t.Fatalf("%s: max timestamp %d %v, want %d", what, ts, err, wantTs)
					}
				}
			}
			check("after truncation")
			if tc.offset < leo {
				// The epochs starting at or after the new end are gone.
				var want []epochEntry
				for _, e := range []epochEntry{{1, 0}, {2, f.hs[30].BaseOffset}, {3, f.hs[90].BaseOffset}, {5, f.hs[120].BaseOffset}} {
					if e.startOffset < end {
						want = append(want, e)
					}
				}
				c := epochCache{entries: want}
				if cp := tl.epochCheckpoint(); cp != string(c.encode()) {
					t.Fatalf("epoch checkpoint %q, want %q", cp, c.encode())
				}
			}

			// Appends continue at the new end, in a new epoch.
			nb := makeBatch(t, batchSpec{n: 1, size: 100, ts: 99_999})
			res, err := tl.Append(nb, 7)
			if err != nil || res.BaseOffset != end {
				t.Fatalf("append after truncation: %+v %v, want base %d", res, err, end)
			}
			if e, o := tl.EndOffsetForEpoch(7, -1); e != 7 || o != end+1 {
				t.Fatalf("EndOffsetForEpoch(7) = %d %d", e, o)
			}
			// A new epoch above the recovery point reaches the
			// checkpoint with the next full flush.
			if err := tl.Flush(); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(tl.epochCheckpoint(), "7 "+strconv.FormatInt(end, 10)+"\n") {
				t.Fatalf("epoch checkpoint %q does not start epoch 7 at %d", tl.epochCheckpoint(), end)
			}
			check("after an append", nb)
			tl.reopen()
			if tl.rebuilt {
				t.Fatal("a clean reopen after truncation rebuilt indexes: the flushed ones were wrong")
			}
			check("after a clean reopen", nb)
			tl.crash()
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			check("after a crash", nb)
			if !strings.HasSuffix(tl.epochCheckpoint(), "7 "+strconv.FormatInt(end, 10)+"\n") {
				t.Fatalf("epoch checkpoint after crash %q", tl.epochCheckpoint())
			}
		})
	}
}

func TestTruncateToCrashBeforeFlush(t *testing.T) {
	// A crash right after a truncation (nothing flushed since) recovers the
	// truncated log, not the old tail.
	f := newTruncateFixture(t)
	tl := f.tl
	if err := tl.Flush(); err != nil {
		t.Fatal(err)
	}
	bases := tl.segmentBases()
	off := bases[2] + 2
	if err := tl.TruncateTo(off); err != nil {
		t.Fatal(err)
	}
	kept, end := f.kept(off)
	if rp, err := readOffsetCheckpoint(tl.dir, recoveryCheckpointFile, -1); err != nil || rp > end {
		t.Fatalf("recovery point %d %v above the new end %d", rp, err, end)
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != end || len(tl.allBatches()) != len(kept) {
		t.Fatalf("log end %d, want %d", tl.LogEndOffset(), end)
	}
}

func TestTruncateToBelowLogStart(t *testing.T) {
	f := newTruncateFixture(t)
	tl := f.tl
	if _, err := tl.DeleteRecordsBefore(20); err != nil {
		t.Fatal(err)
	}
	leo := tl.LogEndOffset()
	if err := tl.TruncateTo(19); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("truncate below the log start: %v", err)
	}
	if tl.LogEndOffset() != leo {
		t.Fatal("a refused truncation changed the log")
	}
	// To the log start, which lies inside batch 19-20: the batch is cut
	// and the log continues empty at its start.
	if f.hs[10].BaseOffset != 19 || f.hs[10].LastOffset() != 20 {
		t.Fatalf("fixture changed: batch 10 is %d-%d", f.hs[10].BaseOffset, f.hs[10].LastOffset())
	}
	if err := tl.TruncateTo(20); err != nil {
		t.Fatal(err)
	}
	if s, e := tl.LogStartOffset(), tl.LogEndOffset(); s != 20 || e != 20 {
		t.Fatalf("start %d end %d", s, e)
	}
	b := makeBatch(t, batchSpec{n: 2, ts: 9})
	if res := tl.mustAppend(b); res.BaseOffset != 20 {
		t.Fatalf("append after truncating to the log start: %+v", res)
	}
	for _, reopen := range []func(){tl.reopen, func() {
		tl.crash()
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
	}} {
		reopen()
		if s, e := tl.LogStartOffset(), tl.LogEndOffset(); s != 20 || e != 22 {
			t.Fatalf("after reopen: start %d end %d", s, e)
		}
		if got := tl.readAll(); !bytes.Equal(got, b) {
			t.Fatal("after reopen: the appended batch is not what the log holds")
		}
	}
}

func TestTruncateToProducerState(t *testing.T) {
	cfg := testConfig()
	cfg.ProducerIDExpiryMs = 60_000
	tl := openTestLog(t, cfg)
	// Ten batches of two records, about 1.2 KB each: three per segment,
	// so rolls leave producer snapshots along the way.
	var orig []AppendResult
	for i := range 10 {
		b := makeBatch(t, batchSpec{n: 2, size: 550, ts: 1000 + int64(i), pid: 3, seq: int32(2 * i)})
		orig = append(orig, tl.mustAppend(b))
	}
	snaps, _ := listSnapshots(tl.dir)
	if len(snaps) == 0 {
		t.Fatal("expected producer snapshots from rolls")
	}
	// Keep batches 0..6: a snapshot above the new end must not be used.
	if err := tl.TruncateTo(orig[7].BaseOffset); err != nil {
		t.Fatal(err)
	}
	snaps, _ = listSnapshots(tl.dir)
	for _, s := range snaps {
		if s > orig[7].BaseOffset {
			t.Fatalf("snapshot %d above the new end %d kept", s, orig[7].BaseOffset)
		}
	}
	check := func() {
		t.Helper()
		// A retry of a kept batch is a duplicate.
		res, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 12}), 0)
		if err != nil || !res.Duplicate || res.BaseOffset != orig[6].BaseOffset {
			t.Fatalf("retry of kept batch 6: %+v %v", res, err)
		}
		// Batch 8 is out of sequence: 7 was truncated away.
		if _, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 16}), 0); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("batch 8 after truncating 7: %v", err)
		}
	}
	check()
	tl.reopen()
	check()
	// A retry of truncated batch 7 is no duplicate: it is written again.
	res, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 14}), 0)
	if err != nil || res.Duplicate || res.BaseOffset != orig[7].BaseOffset {
		t.Fatalf("retry of truncated batch 7: %+v %v", res, err)
	}
	// And is now remembered.
	res, err = tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 14}), 0)
	if err != nil || !res.Duplicate {
		t.Fatalf("second retry of batch 7: %+v %v", res, err)
	}
	// Truncating below every snapshot replays from the log start.
	if err := tl.TruncateTo(orig[1].BaseOffset); err != nil {
		t.Fatal(err)
	}
	if res, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 0}), 0); err != nil || !res.Duplicate || res.BaseOffset != 0 {
		t.Fatalf("retry of batch 0: %+v %v", res, err)
	}
	if _, err := tl.Append(makeBatch(t, batchSpec{n: 2, size: 550, ts: 1, pid: 3, seq: 4}), 0); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("batch 2 after truncating 1: %v", err)
	}
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	f := newTruncateFixture(t)
	tl := f.tl
	tl.mustAppend(makeBatch(t, batchSpec{n: 1, ts: 5000, pid: 4, seq: 0}))
	if err := tl.SaveHighWatermark(100); err != nil {
		t.Fatal(err)
	}
	const start = 1000
	if err := tl.TruncateFullyAndStartAt(start); err != nil {
		t.Fatal(err)
	}
	check := func(what string, wantEnd int64) {
		t.Helper()
		if s, e := tl.LogStartOffset(), tl.LogEndOffset(); s != start || e != wantEnd {
			t.Fatalf("%s: start %d end %d", what, s, e)
		}
		if bases := tl.segmentBases(); !slices.Equal(bases, []int64{start}) {
			t.Fatalf("%s: segments %v", what, bases)
		}
		if _, err := tl.Read(0, wantEnd, 1<<20, true); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("%s: read below the new start: %v", what, err)
		}
		if hw := tl.HighWatermarkCheckpoint(); hw != start {
			t.Fatalf("%s: high watermark %d, want it raised to the log start", what, hw)
		}
	}
	check("after truncation", start)
	if e, ok := tl.LatestEpoch(); ok || e != -1 {
		t.Fatalf("epochs left: %d %v", e, ok)
	}
	if cp := tl.epochCheckpoint(); cp != "0\n0\n" {
		t.Fatalf("epoch checkpoint %q", cp)
	}
	if snaps, _ := listSnapshots(tl.dir); len(snaps) != 0 {
		t.Fatalf("producer snapshots left: %v", snaps)
	}
	// The producer is forgotten: its old sequence is written again.
	res, err := tl.Append(makeBatch(t, batchSpec{n: 1, ts: 5000, pid: 4, seq: 0}), 9)
	if err != nil || res.Duplicate || res.BaseOffset != start {
		t.Fatalf("append after truncating fully: %+v %v", res, err)
	}
	if cp := tl.epochCheckpoint(); cp != "0\n1\n9 1000\n" {
		t.Fatalf("epoch checkpoint %q", cp)
	}
	check("after an append", start+1)
	tl.reopen()
	check("after a clean reopen", start+1)
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	check("after a crash", start+1)
	ents, _ := os.ReadDir(tl.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), logSuffix) && e.Name() != fileName(start, logSuffix) {
			t.Fatalf("old segment %s left", e.Name())
		}
	}
	// Truncating fully below the current start is allowed too.
	if err := tl.TruncateFullyAndStartAt(10); err != nil || tl.LogStartOffset() != 10 || tl.LogEndOffset() != 10 {
		t.Fatalf("truncate fully to 10: %v, start %d end %d", err, tl.LogStartOffset(), tl.LogEndOffset())
	}
}

// TestReadResultAcrossTruncation: a ReadResult taken before a truncation
// keeps reading the bytes it found, even when the truncated segment is
// appended to again afterwards.
func TestReadResultAcrossTruncation(t *testing.T) {
	f := newTruncateFixture(t)
	tl := f.tl
	bases := tl.segmentBases()
	active := bases[len(bases)-1]
	leo := tl.LogEndOffset()
	// Held across both the deleted and the cut segment.
	held, err := tl.Read(bases[len(bases)-2], leo, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i, h := range f.hs {
		if h.BaseOffset >= bases[len(bases)-2] {
			want = append(want, f.batches[i]...)
		}
	}
	heldActive, err := tl.Read(active, leo, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the active segment in the middle, then overwrite its tail.
	cutAt := f.hs[len(f.hs)-5].BaseOffset
	if err := tl.TruncateTo(cutAt); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		tl.mustAppend(makeBatch(t, batchSpec{n: 2, size: 100, ts: 7}))
	}
	if got := readBytes(t, held); !bytes.Equal(got, want) {
		t.Fatal("held read result changed by the truncation")
	}
	if got := readBytes(t, heldActive); !bytes.Equal(got, want[len(want)-len(got):]) || len(got) == 0 {
		t.Fatal("held read of the active segment changed by the truncation")
	}
	// And the log has the new data.
	kept, _ := f.kept(cutAt)
	if got := tl.allBatches(); len(got) != len(kept)+6 {
		t.Fatalf("%d batches after truncate and append, want %d", len(got), len(kept)+6)
	}
	// A truncation without readers cuts in place; nothing is left over.
	if err := tl.TruncateTo(cutAt - 20); err != nil {
		t.Fatal(err)
	}
	tl.Close()
	tl.Log = nil
	ents, _ := os.ReadDir(tl.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), deletedSuffix) || strings.HasSuffix(e.Name(), tmpSuffix) {
			t.Fatalf("leftover %s", e.Name())
		}
	}
}

func TestLatestEpoch(t *testing.T) {
	tl := openTestLog(t, testConfig())
	if e, ok := tl.LatestEpoch(); ok || e != -1 {
		t.Fatalf("empty log: %d %v", e, ok)
	}
	for i, epoch := range []int32{2, 2, 4, 6} {
		if _, err := tl.Append(makeBatch(t, batchSpec{ts: int64(i)}), epoch); err != nil {
			t.Fatal(err)
		}
	}
	if e, ok := tl.LatestEpoch(); !ok || e != 6 {
		t.Fatalf("latest %d %v", e, ok)
	}
	if err := tl.TruncateTo(3); err != nil {
		t.Fatal(err)
	}
	if e, ok := tl.LatestEpoch(); !ok || e != 4 {
		t.Fatalf("latest after truncating epoch 6 away: %d %v", e, ok)
	}
}

func TestHighWatermarkCheckpoint(t *testing.T) {
	tl := openTestLog(t, testConfig())
	if hw := tl.HighWatermarkCheckpoint(); hw != 0 {
		t.Fatalf("no checkpoint: %d", hw)
	}
	for i := range 10 {
		tl.mustAppend(makeBatch(t, batchSpec{ts: int64(i)}))
	}
	if err := tl.SaveHighWatermark(7); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(tl.dir, replicationCheckpointFile)); err != nil || string(b) != "0\n7\n" {
		t.Fatalf("checkpoint file %q %v", b, err)
	}
	tl.reopen()
	if hw := tl.HighWatermarkCheckpoint(); hw != 7 {
		t.Fatalf("after reopen: %d", hw)
	}
	// Bounded by the log end and start.
	if err := tl.SaveHighWatermark(50); err != nil {
		t.Fatal(err)
	}
	if hw := tl.HighWatermarkCheckpoint(); hw != 10 {
		t.Fatalf("above the log end: %d", hw)
	}
	if err := tl.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if hw := tl.HighWatermarkCheckpoint(); hw != 4 {
		t.Fatalf("after truncation: %d", hw)
	}
	if err := tl.SaveHighWatermark(0); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	if hw := tl.HighWatermarkCheckpoint(); hw != 2 {
		t.Fatalf("below the log start: %d", hw)
	}
	// An unreadable checkpoint (it is not fsynced) is ignored.
	tl.crash()
	if err := os.WriteFile(filepath.Join(tl.dir, replicationCheckpointFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if hw := tl.HighWatermarkCheckpoint(); hw != 2 {
		t.Fatalf("unreadable checkpoint: %d", hw)
	}
	tl.Close()
	if err := tl.SaveHighWatermark(3); !errors.Is(err, ErrClosed) {
		t.Fatalf("save after close: %v", err)
	}
}

// TestTruncateConcurrent truncates while appends, reads (holding their
// results a while), ForEachBatch and cleaner passes run; with -race it also
// checks the locking. Every batch read must be whole and valid, and the log
// must reopen after a crash with the same end.
func TestTruncateConcurrent(t *testing.T) {
	cfg := testConfig()
	cfg.Compact = true
	cfg.MinCleanableDirtyRatio = 0
	tl := openTestLog(t, cfg)
	for i := range 40 {
		tl.mustAppend(makeBatch(t, batchSpec{n: 1 + i%3, size: 60, ts: int64(i)}))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	fail := make(chan error, 16)
	loop := func(fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(i); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
					fail <- err
					return
				}
			}
		}()
	}
	loop(func(i int) error { // appender
		_, err := tl.Append(makeBatch(t, batchSpec{n: 1 + i%3, size: 60, ts: int64(1000 + i)}), int32(i/200))
		return err
	})
	loop(func(i int) error { // reader holding its result across other work
		leo := tl.LogEndOffset()
		start := tl.LogStartOffset()
		off := start + int64(i)%(leo-start+1)
		res, err := tl.Read(off, leo, 2048, true)
		if err != nil {
			return err
		}
		defer res.Release()
		runtime.Gosched()
		for _, r := range res.Regions {
			b := make([]byte, r.Len)
			if _, err := r.File.ReadAt(b, r.Offset); err != nil {
				return err
			}
			if err := record.Split(b, func(batch []byte) error { _, err := validateStored(batch); return err }); err != nil {
				return err
			}
		}
		return nil
	})
	loop(func(int) error {
		// Batches are checked (CRC) by ForEachBatch. Their offsets may
		// overlap across a truncation: a batch read before it was cut can
		// be followed by its replacement.
		return tl.ForEachBatch(0, func([]byte) error { return nil })
	})
	loop(func(int) error { // cleaner
		_, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true})
		return err
	})
	for i := range 60 {
		for tl.LogEndOffset() < 60 {
			runtime.Gosched()
		}
		leo := tl.LogEndOffset()
		if err := tl.TruncateTo(leo - 1 - int64(i%25)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	prev := int64(-1)
	for _, b := range tl.allBatches() {
		h, _ := record.ParseHeader(b)
		if h.BaseOffset <= prev {
			t.Fatalf("batch at %d after one ending at %d", h.BaseOffset, prev)
		}
		prev = h.LastOffset()
	}
	if prev+1 != tl.LogEndOffset() {
		t.Fatalf("last batch ends at %d, log end %d", prev, tl.LogEndOffset())
	}
	leo := tl.LogEndOffset()
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() != leo {
		t.Fatalf("log end after crash %d, want %d", tl.LogEndOffset(), leo)
	}
}

func TestAppendAsFollowerFlushMessages(t *testing.T) {
	cfg := testConfig()
	cfg.FlushMessages = 4
	tl := openTestLog(t, cfg)
	rounds := tl.fsyncRounds.Load()
	if _, err := tl.AppendAsFollower(leaderBatch(t, 0, 1, batchSpec{n: 3, ts: 1})); err != nil {
		t.Fatal(err)
	}
	if tl.fsyncRounds.Load() != rounds {
		t.Fatal("flushed before flush.messages was reached")
	}
	if _, err := tl.AppendAsFollower(leaderBatch(t, 3, 1, batchSpec{n: 1, ts: 2})); err != nil {
		t.Fatal(err)
	}
	if tl.fsyncRounds.Load() != rounds+1 {
		t.Fatal("flush.messages reached by follower appends did not flush")
	}
}

func compactedFixture(t *testing.T) *testLog {
	cfg := testConfig()
	cfg.Compact = true
	cfg.MinCleanableDirtyRatio = 0
	tl := openTestLog(t, cfg)
	tl.appendMany(120, 100)
	return tl
}

func TestTruncateToLowersCleanerCheckpoint(t *testing.T) {
	tl := compactedFixture(t)
	st, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true})
	if err != nil || !st.Cleaned {
		t.Fatalf("clean: %+v %v", st, err)
	}
	readCP := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(tl.dir, cleanerCheckpointFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if !strings.HasPrefix(readCP(), "1\n"+strconv.FormatInt(st.End, 10)+" ") {
		t.Fatalf("checkpoint %q after cleaning to %d", readCP(), st.End)
	}
	if err := tl.TruncateTo(st.End - 10); err != nil {
		t.Fatal(err)
	}
	leo := tl.LogEndOffset()
	if cp := readCP(); !strings.HasPrefix(cp, "1\n"+strconv.FormatInt(leo, 10)+" ") {
		t.Fatalf("checkpoint %q after truncating to %d", cp, leo)
	}
	// Cleaning goes on from there.
	tl.appendMany(60, 100)
	if _, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	prev := int64(-1)
	for _, b := range tl.allBatches() {
		h, _ := record.ParseHeader(b)
		if h.BaseOffset <= prev {
			t.Fatal("offsets not increasing after truncate and clean")
		}
		prev = h.LastOffset()
	}
}

// TestTruncateAbortsCleaning: a truncation stops a running cleaner pass,
// which then changes nothing, instead of waiting for it to finish.
func TestTruncateAbortsCleaning(t *testing.T) {
	tl := compactedFixture(t)
	leo := tl.LogEndOffset()
	release := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	th := &Throttle{rate: 1, now: tl.clock.Now, sleep: func(time.Duration) {
		once.Do(func() { close(started) })
		<-release
	}}
	type result struct {
		st  CleanStats
		err error
	}
	done := make(chan result)
	go func() {
		st, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true, Throttle: th})
		done <- result{st, err}
	}()
	<-started
	truncated := make(chan error)
	go func() { truncated <- tl.TruncateTo(leo - 5) }()
	for tl.clean.abort.Load() == 0 {
		runtime.Gosched()
	}
	close(release) // the pass goes on and sees the truncation waiting
	r := <-done
	if r.err != nil || r.st.Cleaned {
		t.Fatalf("aborted pass: %+v %v", r.st, r.err)
	}
	if err := <-truncated; err != nil {
		t.Fatal(err)
	}
	if tl.LogEndOffset() >= leo-4 {
		t.Fatalf("log end %d after truncating to %d", tl.LogEndOffset(), leo-5)
	}
	if _, err := os.Stat(filepath.Join(tl.dir, cleanerCheckpointFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an aborted pass wrote its checkpoint: %v", err)
	}
}

// TestFollowerConcurrentReads replicates a leader (fetch, append, now and
// then a truncation and refetch, serialized as a replica fetcher does)
// while readers read the follower; run with -race.
func TestFollowerConcurrentReads(t *testing.T) {
	leader := openTestLog(t, testConfig())
	for i := range 300 {
		if _, err := leader.Append(makeBatch(t, batchSpec{n: 1 + i%3, size: 80, ts: int64(i)}), int32(i/50)); err != nil {
			t.Fatal(err)
		}
	}
	follower := openTestLog(t, testConfig())
	stop := make(chan struct{})
	fail := make(chan error, 4)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				leo := follower.LogEndOffset()
				res, err := follower.Read(int64(i)%(leo+1), leo, 3000, true)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue
				}
				if err != nil {
					fail <- err
					return
				}
				for _, r := range res.Regions {
					b := make([]byte, r.Len)
					if _, err := r.File.ReadAt(b, r.Offset); err != nil {
						fail <- err
						break
					}
					if err := record.Split(b, func(batch []byte) error { _, err := record.Validate(batch); return err }); err != nil {
						fail <- err
						break
					}
				}
				res.Release()
			}
		}()
	}
	for n := 0; follower.LogEndOffset() < leader.LogEndOffset(); n++ {
		res, err := leader.Read(follower.LogEndOffset(), leader.LogEndOffset(), 1500, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := follower.AppendAsFollower(readBytes(t, res)); err != nil {
			t.Fatal(err)
		}
		if n%7 == 6 {
			if err := follower.TruncateTo(follower.LogEndOffset() - 4); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(fail)
	for err := range fail {
		t.Fatal(err)
	}
	if !bytes.Equal(follower.readAll(), leader.readAll()) || follower.epochCheckpoint() != leader.epochCheckpoint() {
		t.Fatal("follower differs from the leader")
	}
}

// TestHighWatermarkCheckpointLengths: the checkpoint is overwritten in
// place and truncated only when its content gets shorter (issue 14: a
// growing offset costs one write); a file left longer by an earlier
// process is truncated by the first write, and a failed write makes the
// next one truncate.
func TestHighWatermarkCheckpointLengths(t *testing.T) {
	tl := openTestLog(t, testConfig())
	for i := range 1200 {
		tl.mustAppend(makeBatch(t, batchSpec{ts: int64(i)}))
	}
	path := filepath.Join(tl.dir, replicationCheckpointFile)
	check := func(hw int64) {
		t.Helper()
		if err := tl.SaveHighWatermark(hw); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "0\n"+itoa(hw)+"\n" {
			t.Fatalf("after saving %d: checkpoint file %q %v", hw, b, err)
		}
	}
	for _, hw := range []int64{9, 10, 11, 999, 1000, 5, 1100, 1099, 0, 1200} {
		check(hw)
	}
	// An earlier process left a longer file than this one wrote.
	tl.reopen()
	if err := os.WriteFile(path, []byte("0\n123456789\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	check(7)
	// A failed write leaves the length unknown: the next write truncates.
	if err := os.WriteFile(path, []byte("0\n987654321\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tl.hwMu.Lock()
	tl.hwFileLen = -1
	tl.hwMu.Unlock()
	check(8)
}
