package storage

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

func TestAppendReadRoundTrip(t *testing.T) {
	for _, codec := range []record.Codec{record.CodecNone, record.CodecLZ4} {
		t.Run(codec.String(), func(t *testing.T) {
			tl := openTestLog(t, testConfig())
			stored := tl.appendMany(150, 100)
			if n := tl.segmentCount(); n < 5 {
				t.Fatalf("expected several segments, got %d", n)
			}
			check := func() {
				t.Helper()
				got := tl.allBatches()
				if len(got) != len(stored) {
					t.Fatalf("ForEachBatch returned %d batches, want %d", len(got), len(stored))
				}
				for i := range got {
					if !bytes.Equal(got[i], stored[i]) {
						t.Fatalf("batch %d differs", i)
					}
				}
				leo := tl.LogEndOffset()
				// Reading from every offset finds the batch holding it.
				for off := int64(0); off < leo; off++ {
					res, err := tl.Read(off, leo, 1<<20, true)
					if err != nil {
						t.Fatalf("read %d: %v", off, err)
					}
					hs := splitBatches(t, readBytes(t, res))
					if len(hs) == 0 || hs[0].BaseOffset > off || hs[0].LastOffset() < off {
						t.Fatalf("read %d: first batch does not hold it: %+v", off, hs)
					}
					for i := 1; i < len(hs); i++ {
						if hs[i].BaseOffset != hs[i-1].LastOffset()+1 {
							t.Fatalf("read %d: batches not contiguous", off)
						}
					}
					if hs[len(hs)-1].LastOffset() != leo-1 {
						t.Fatalf("read %d with a large budget stopped at %d, log end %d", off, hs[len(hs)-1].LastOffset(), leo)
					}
				}
			}
			check()
			tl.reopen()
			check()
			tl.crash()
			if err := tl.reopenErr(); err != nil {
				t.Fatal(err)
			}
			check()
		})
	}
}

func TestAppendAssignsOffsetsAndEpoch(t *testing.T) {
	cfg := testConfig()
	tl := openTestLog(t, cfg)
	b := makeBatch(t, batchSpec{n: 3, ts: 5})
	res, err := tl.Append(b, 7)
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 0 || res.LastOffset != 2 || res.LogAppendTime != -1 {
		t.Fatalf("result %+v", res)
	}
	res, _ = tl.Append(makeBatch(t, batchSpec{n: 2, ts: 6}), 7)
	if res.BaseOffset != 3 || res.LastOffset != 4 {
		t.Fatalf("result %+v", res)
	}
	h, _ := record.Validate(b)
	if h.BaseOffset != 0 || h.PartitionLeaderEpoch != 7 {
		t.Fatalf("batch not rewritten in place: %+v", h)
	}
	if _, err := tl.Append(make([]byte, 10), 7); err == nil {
		t.Fatal("short batch accepted")
	}
	big := makeBatch(t, batchSpec{size: int(cfg.SegmentBytes)})
	if _, err := tl.Append(big, 7); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("big batch: %v", err)
	}
}

func TestLogAppendTime(t *testing.T) {
	cfg := testConfig()
	cfg.LogAppendTime = true
	tl := openTestLog(t, cfg)
	b := makeBatch(t, batchSpec{n: 2, ts: 5, tsDelta: []int64{0, 3}})
	res := tl.mustAppend(b)
	if res.LogAppendTime != tl.clock.Ms() {
		t.Fatalf("LogAppendTime %d, want %d", res.LogAppendTime, tl.clock.Ms())
	}
	h, err := record.Validate(b)
	if err != nil || !h.IsLogAppendTime() || h.MaxTimestamp != tl.clock.Ms() {
		t.Fatalf("batch %+v, %v", h, err)
	}
	off, ts, found, err := tl.OffsetForTimestamp(tl.clock.Ms())
	if err != nil || !found || off != 0 || ts != tl.clock.Ms() {
		t.Fatalf("OffsetForTimestamp: %d %d %v %v", off, ts, found, err)
	}
	off, ts, err = tl.MaxTimestamp()
	if err != nil || off != 0 || ts != tl.clock.Ms() {
		t.Fatalf("MaxTimestamp: %d %d %v", off, ts, err)
	}
}

func TestReadLimits(t *testing.T) {
	tl := openTestLog(t, testConfig())
	var sizes []int64
	for i := range 6 {
		b := makeBatch(t, batchSpec{n: 2, size: 100, ts: int64(i)})
		sizes = append(sizes, int64(len(b)))
		tl.mustAppend(b) // offsets 2i, 2i+1; all in one segment
	}
	tests := []struct {
		name        string
		offset, max int64
		maxBytes    int
		minOne      bool
		wantBatches []int64 // base offsets
	}{
		{"all", 0, 12, 1 << 20, true, []int64{0, 2, 4, 6, 8, 10}},
		{"mid batch start", 3, 12, 1 << 20, true, []int64{2, 4, 6, 8, 10}},
		{"hw cap", 0, 5, 1 << 20, true, []int64{0, 2, 4}},
		{"hw cap at batch start", 0, 4, 1 << 20, true, []int64{0, 2}},
		{"at hw", 4, 4, 1 << 20, true, nil},
		{"past hw below leo", 7, 4, 1 << 20, true, nil},
		{"at leo", 12, 12, 1 << 20, true, nil},
		{"kip74 one batch", 0, 12, 10, true, []int64{0}},
		{"kip74 off", 0, 12, 10, false, nil},
		{"budget 2.5 batches", 0, 12, int(sizes[0] * 5 / 2), false, []int64{0, 2}},
		{"budget 2.5 batches minOne", 4, 12, int(sizes[0] * 5 / 2), true, []int64{4, 6}},
		{"exact budget", 0, 12, int(sizes[0] + sizes[1]), false, []int64{0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tl.Read(tc.offset, tc.max, tc.maxBytes, tc.minOne)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, h := range splitBatches(t, readBytes(t, res)) {
				got = append(got, h.BaseOffset)
			}
			if !equalInts(got, tc.wantBatches) {
				t.Fatalf("got batches %v, want %v", got, tc.wantBatches)
			}
		})
	}
	for _, off := range []int64{-1, 13, 100} {
		if _, err := tl.Read(off, 12, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read %d: %v", off, err)
		}
	}
	if _, err := tl.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Read(4, 12, 100, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below log start: %v", err)
	}
	if _, err := tl.Read(5, 12, 100, true); err != nil {
		t.Fatalf("read at log start: %v", err)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// recordsOf lists (offset, timestamp) of every record in the log.
func recordsOf(t *testing.T, tl *testLog) (offs, tss []int64) {
	t.Helper()
	for _, b := range tl.allBatches() {
		h, _ := record.ParseHeader(b)
		err := record.ForEach(b, func(r *record.Record) error {
			offs = append(offs, h.BaseOffset+int64(r.OffsetDelta))
			tss = append(tss, h.FirstTimestamp+r.TimestampDelta)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return offs, tss
}

func TestOffsetForTimestampAndMaxTimestamp(t *testing.T) {
	cfg := testConfig()
	cfg.IndexIntervalBytes = 1000
	tl := openTestLog(t, cfg)
	// Timestamps mostly increase, with some going back, and records inside
	// a batch out of order.
	for i := range 120 {
		ts := int64(1000 + i*10)
		if i%7 == 3 {
			ts -= 200
		}
		tl.mustAppend(makeBatch(t, batchSpec{n: 3, size: 40, ts: ts, tsDelta: []int64{5, 0, 9}}))
	}
	check := func() {
		t.Helper()
		offs, tss := recordsOf(t, tl)
		start := tl.LogStartOffset()
		for target := int64(700); target <= 2300; target += 3 {
			wantOff, wantTs, wantFound := int64(-1), int64(-1), false
			for i := range offs {
				if offs[i] >= start && tss[i] >= target {
					wantOff, wantTs, wantFound = offs[i], tss[i], true
					break
				}
			}
			off, ts, found, err := tl.OffsetForTimestamp(target)
			if err != nil || off != wantOff || ts != wantTs || found != wantFound {
				t.Fatalf("OffsetForTimestamp(%d) = %d %d %v %v, want %d %d %v", target, off, ts, found, err, wantOff, wantTs, wantFound)
			}
		}
		bestOff, bestTs := int64(-1), int64(-1)
		for i := range offs {
			if tss[i] > bestTs {
				bestOff, bestTs = offs[i], tss[i]
			}
		}
		off, ts, err := tl.MaxTimestamp()
		if err != nil || off != bestOff || ts != bestTs {
			t.Fatalf("MaxTimestamp = %d %d %v, want %d %d", off, ts, err, bestOff, bestTs)
		}
	}
	check()
	tl.reopen()
	check()
	// Recover every segment (no recovery point), then reopen cleanly: the
	// segments' largest timestamps must survive both.
	tl.crash()
	os.Remove(filepath.Join(tl.dir, recoveryCheckpointFile))
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	check()
	tl.reopen()
	check()
	if _, err := tl.DeleteRecordsBefore(100); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestEmptyLog(t *testing.T) {
	tl := openTestLog(t, testConfig())
	if off, ts, err := tl.MaxTimestamp(); err != nil || off != -1 || ts != -1 {
		t.Fatalf("MaxTimestamp on empty log: %d %d %v", off, ts, err)
	}
	if _, _, found, err := tl.OffsetForTimestamp(0); err != nil || found {
		t.Fatalf("OffsetForTimestamp on empty log: %v %v", found, err)
	}
	res, err := tl.Read(0, 0, 100, true)
	if err != nil || res.Size != 0 {
		t.Fatalf("read empty: %+v %v", res, err)
	}
	if err := tl.ForEachBatch(0, func([]byte) error { t.Fatal("called"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestEndOffsetForEpoch(t *testing.T) {
	tl := openTestLog(t, testConfig())
	if e, o := tl.EndOffsetForEpoch(0, -1); e != -1 || o != -1 {
		t.Fatalf("empty cache: %d %d", e, o)
	}
	// epoch 2 at 0..2, epoch 4 at 3..5, epoch 7 at 6..
	for i, epoch := range []int32{2, 2, 4, 4, 4, 7} {
		if _, err := tl.Append(makeBatch(t, batchSpec{ts: int64(i)}), epoch); err != nil {
			t.Fatal(err)
		}
	}
	// A stale epoch does not enter the cache.
	if _, err := tl.Append(makeBatch(t, batchSpec{ts: 9}), 5); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		epoch     int32
		wantEpoch int32
		wantOff   int64
	}{
		{-1, -1, -1},
		{1, 1, 0},
		{2, 2, 2},
		{3, 2, 2},
		{4, 4, 5},
		{5, 4, 5},
		{6, 4, 5},
		{7, 7, 7},
		{8, -1, -1},
	}
	check := func() {
		t.Helper()
		for _, tc := range tests {
			if e, o := tl.EndOffsetForEpoch(tc.epoch, -1); e != tc.wantEpoch || o != tc.wantOff {
				t.Errorf("EndOffsetForEpoch(%d) = %d %d, want %d %d", tc.epoch, e, o, tc.wantEpoch, tc.wantOff)
			}
		}
	}
	check()
	if cp := tl.epochCheckpoint(); cp != "0\n3\n2 0\n4 2\n7 5\n" {
		t.Fatalf("checkpoint %q", cp)
	}
	tl.reopen()
	check()
	// Losing the checkpoint: an unclean open rebuilds it from the batches
	// of the recovered segments. The stale-epoch batch at 6 has an epoch
	// lower than the one before it, which a replica's log never has (the
	// partition appends under its role lock): recovery takes it for
	// damage and drops it.
	tl.crash()
	os.Remove(filepath.Join(tl.dir, epochCheckpointFile))
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if leo := tl.LogEndOffset(); leo != 6 {
		t.Fatalf("log end after recovering a batch with a stale epoch: %d, want 6", leo)
	}
	tests[7].wantOff = 6
	check()
	if _, err := tl.DeleteRecordsBefore(3); err != nil {
		t.Fatal(err)
	}
	if e, o := tl.EndOffsetForEpoch(2, -1); e != 2 || o != 3 {
		t.Fatalf("after delete records, epoch 4 should start at 3: %d %d", e, o)
	}
}

// TestEndOffsetForEpochCurrentEpoch: a leader epoch newer than every cached
// one (no write in it yet) answers as Kafka's cache, which holds it from
// the moment the broker became leader, would.
func TestEndOffsetForEpochCurrentEpoch(t *testing.T) {
	empty := openTestLog(t, testConfig())
	tl := openTestLog(t, testConfig())
	for i, epoch := range []int32{2, 2, 4, 4, 4, 7} { // 2@0, 4@2, 7@5; end 6
		if _, err := tl.Append(makeBatch(t, batchSpec{ts: int64(i)}), epoch); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name           string
		log            *testLog
		epoch, current int32
		wantEpoch      int32
		wantOff        int64
	}{
		{"empty, current", empty, 3, 3, 3, 0},
		{"empty, older", empty, 1, 3, 1, 0},
		{"empty, newer", empty, 4, 3, -1, -1},
		{"current, no write yet", tl, 9, 9, 9, 6},
		{"between latest cached and current", tl, 8, 9, 7, 6},
		{"latest cached, current newer", tl, 7, 9, 7, 6},
		{"older, cache answers", tl, 5, 9, 4, 5},
		{"newer than current", tl, 10, 9, -1, -1},
		{"current is the latest cached", tl, 7, 7, 7, 6},
		{"no current epoch given", tl, 8, -1, -1, -1},
	}
	for _, tc := range tests {
		if e, o := tc.log.EndOffsetForEpoch(tc.epoch, tc.current); e != tc.wantEpoch || o != tc.wantOff {
			t.Errorf("%s: EndOffsetForEpoch(%d, current %d) = %d %d, want %d %d", tc.name, tc.epoch, tc.current, e, o, tc.wantEpoch, tc.wantOff)
		}
	}
}

func TestDeleteRecordsBefore(t *testing.T) {
	tl := openTestLog(t, testConfig())
	tl.appendMany(100, 100)
	leo := tl.LogEndOffset()
	segs := tl.segmentCount()
	if _, err := tl.DeleteRecordsBefore(leo + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("past end: %v", err)
	}
	start, err := tl.DeleteRecordsBefore(leo / 2)
	if err != nil || start != leo/2 {
		t.Fatalf("delete: %d %v", start, err)
	}
	if tl.segmentCount() >= segs {
		t.Fatal("no segment deleted")
	}
	if start, _ := tl.DeleteRecordsBefore(3); start != leo/2 {
		t.Fatalf("moving back: %d", start)
	}
	got := tl.allBatches()
	if h, _ := record.ParseHeader(got[0]); h.BaseOffset > leo/2 || h.LastOffset() < leo/2 {
		t.Fatalf("first batch after delete %+v", h)
	}
	tl.reopen()
	if s := tl.LogStartOffset(); s != leo/2 {
		t.Fatalf("log start after reopen %d", s)
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if s := tl.LogStartOffset(); s != leo/2 {
		t.Fatalf("log start after unclean reopen %d", s)
	}
	// Deleting up to the end keeps an empty log that continues at leo.
	if start, err := tl.DeleteRecordsBefore(leo); err != nil || start != leo {
		t.Fatalf("delete all: %d %v", start, err)
	}
	res := tl.mustAppend(makeBatch(t, batchSpec{ts: 1}))
	if res.BaseOffset != leo {
		t.Fatalf("append after delete all at %d", res.BaseOffset)
	}
}

func TestRetention(t *testing.T) {
	t.Run("not above the high watermark", func(t *testing.T) {
		cfg := testConfig()
		tl := openTestLog(t, cfg)
		tl.appendMany(200, 100)
		cfg.RetentionBytes = 0
		tl.SetConfig(cfg)
		tl.mu.RLock()
		second := tl.segs[1].base
		tl.mu.RUnlock()
		// Only the first segment lies wholly below the high watermark.
		if err := tl.EnforceRetention(second); err != nil {
			t.Fatal(err)
		}
		if tl.LogStartOffset() != second {
			t.Fatalf("log start %d, want %d: retention went past (or stopped short of) the high watermark", tl.LogStartOffset(), second)
		}
		if err := tl.EnforceRetention(second + 1); err != nil {
			t.Fatal(err)
		}
		if tl.LogStartOffset() != second {
			t.Fatalf("log start %d: a segment ending above the high watermark was deleted", tl.LogStartOffset())
		}
	})
	t.Run("bytes", func(t *testing.T) {
		cfg := testConfig()
		tl := openTestLog(t, cfg)
		tl.appendMany(200, 100)
		cfg.RetentionBytes = 3 * cfg.SegmentBytes
		tl.SetConfig(cfg)
		if err := tl.EnforceRetention(math.MaxInt64); err != nil {
			t.Fatal(err)
		}
		size := tl.Size()
		if size < cfg.RetentionBytes || size > cfg.RetentionBytes+cfg.SegmentBytes {
			t.Fatalf("size %d after retention of %d bytes", size, cfg.RetentionBytes)
		}
		tl.mu.RLock()
		first := tl.segs[0].base
		tl.mu.RUnlock()
		if tl.LogStartOffset() != first || first == 0 {
			t.Fatalf("log start %d, first segment %d", tl.LogStartOffset(), first)
		}
		ents, _ := os.ReadDir(tl.dir)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), deletedSuffix) {
				t.Fatalf("leftover %s", e.Name())
			}
		}
	})
	t.Run("time", func(t *testing.T) {
		cfg := testConfig()
		cfg.RetentionMs = 1000
		tl := openTestLog(t, cfg)
		now := tl.clock.Ms()
		// Old batches, then new ones in later segments.
		for i := range 60 {
			tl.mustAppend(makeBatch(t, batchSpec{size: 200, ts: now - 5000 + int64(i)}))
		}
		tl.mu.Lock()
		if err := tl.roll(); err != nil {
			t.Fatal(err)
		}
		tl.mu.Unlock()
		oldEnd := tl.LogEndOffset()
		for i := range 30 {
			tl.mustAppend(makeBatch(t, batchSpec{size: 200, ts: now + int64(i)}))
		}
		if err := tl.EnforceRetention(math.MaxInt64); err != nil {
			t.Fatal(err)
		}
		if s := tl.LogStartOffset(); s != oldEnd {
			t.Fatalf("log start %d, want %d", s, oldEnd)
		}
		// Later, everything expires; a new empty active segment remains.
		tl.clock.Advance(time.Hour)
		if err := tl.EnforceRetention(math.MaxInt64); err != nil {
			t.Fatal(err)
		}
		leo := tl.LogEndOffset()
		if s := tl.LogStartOffset(); s != leo || tl.Size() != 0 || tl.segmentCount() != 1 {
			t.Fatalf("after full expiry: start %d leo %d size %d segs %d", s, leo, tl.Size(), tl.segmentCount())
		}
		if res := tl.mustAppend(makeBatch(t, batchSpec{ts: tl.clock.Ms()})); res.BaseOffset != leo {
			t.Fatalf("append after expiry at %d, want %d", res.BaseOffset, leo)
		}
	})
}

func TestReadSurvivesSegmentDeletion(t *testing.T) {
	tl := openTestLog(t, testConfig())
	stored := tl.appendMany(100, 100)
	res, err := tl.Read(0, tl.LogEndOffset(), 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.DeleteRecordsBefore(tl.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	tl.Log = nil
	got := readBytes(t, res) // releases
	hs := splitBatches(t, got)
	if len(hs) == 0 || !bytes.Equal(got[:len(stored[0])], stored[0]) {
		t.Fatalf("data after deletion: %d batches", len(hs))
	}
	ents, _ := os.ReadDir(tl.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			t.Fatalf("deleted file %s not removed after release", e.Name())
		}
	}
}

func TestSegmentRollByTime(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.SegmentMs = 1000
	tl := openTestLog(t, cfg)
	tl.mustAppend(makeBatch(t, batchSpec{ts: 10_000}))
	tl.mustAppend(makeBatch(t, batchSpec{ts: 10_900}))
	if n := tl.segmentCount(); n != 1 {
		t.Fatalf("%d segments", n)
	}
	tl.mustAppend(makeBatch(t, batchSpec{ts: 11_001}))
	if n := tl.segmentCount(); n != 2 {
		t.Fatalf("%d segments after segment.ms passed", n)
	}
}

func TestPartitionMetadataAndDelete(t *testing.T) {
	clock := newClock()
	dir := filepath.Join(t.TempDir(), "topic-0")
	id := [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	l, err := Open(dir, testConfig(), Options{Now: clock.Now, TopicID: id})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, partitionMetadataFile))
	if string(b) != "version: 0\ntopic_id: AQIDBAUGBwgJCgsMDQ4PEA\n" {
		t.Fatalf("partition.metadata %q", b)
	}
	l.Close()
	if _, err := Open(dir, testConfig(), Options{Now: clock.Now, TopicID: [16]byte{9}}); !errors.Is(err, ErrInconsistentTopicID) {
		t.Fatalf("other topic id: %v", err)
	}
	l, err = Open(dir, testConfig(), Options{Now: clock.Now, TopicID: id})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if _, err := l.Append(makeBatch(t, batchSpec{}), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
}
