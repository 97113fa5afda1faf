package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/stratalog/strata/internal/record"
)

// TestCleanerDataDriven runs the scripts in testdata/cleaner. Commands:
//
//	open [segment-bytes=N] [delete-retention=DUR] [min-ratio=F] [min-lag=DUR] [max-lag=DUR] [segment-ms=DUR] [log-append-time]
//	    a fresh compacted log; the clock starts at 0 (printed times are ms since then)
//	append [codec=zstd] [pid=N] [epoch=N] [seq=N] [expect-dup]
//	    one batch per input line; tokens: k=v (value), k=! (tombstone), =v (no key);
//	    batches of a pid get consecutive sequences unless seq= is given
//	commit pid=N      a transaction commit marker (control batch) of producer N
//	roll              start a new active segment
//	advance d=DUR     move the clock
//	clean [force] [map-entries=N]
//	dump              segments, batches and records
//	read from=N       records a Read from offset N returns
//	ts ts=MS          OffsetForTimestamp
//	reopen | crash [drop-snapshots]    close cleanly (or abandon, optionally losing the producer snapshots) and open again
func TestCleanerDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/cleaner", func(t *testing.T, path string) {
		var e *cleanEnv
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd == "open" {
				e = newCleanEnv(t, td)
				return ""
			}
			if e == nil {
				t.Fatalf("%s: open first", td.Pos)
			}
			return e.run(t, td)
		})
	})
}

type cleanEnv struct {
	tl    *testLog
	start int64
	seqs  map[int64]int32
	guard uint64 // the last transaction verification's (txn_test.go)
}

func dur(t *testing.T, td *datadriven.TestData, key string, def int64) int64 {
	if !td.HasArg(key) {
		return def
	}
	var s string
	td.ScanArgs(t, key, &s)
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %s: %v", td.Pos, key, err)
	}
	return d.Milliseconds()
}

func intArg(t *testing.T, td *datadriven.TestData, key string, def int64) int64 {
	if !td.HasArg(key) {
		return def
	}
	var v int64
	td.ScanArgs(t, key, &v)
	return v
}

func newCleanEnv(t *testing.T, td *datadriven.TestData) *cleanEnv {
	cfg := testConfig()
	cfg.Compact = true
	cfg.SegmentBytes = intArg(t, td, "segment-bytes", 1<<20)
	cfg.DeleteRetentionMs = dur(t, td, "delete-retention", 24*3600*1000)
	cfg.MinCompactionLagMs = dur(t, td, "min-lag", 0)
	cfg.MaxCompactionLagMs = dur(t, td, "max-lag", 1<<63-1)
	cfg.SegmentMs = dur(t, td, "segment-ms", cfg.SegmentMs)
	cfg.LogAppendTime = td.HasArg("log-append-time")
	cfg.MinCleanableDirtyRatio = 0.5
	if td.HasArg("min-ratio") {
		var s string
		td.ScanArgs(t, "min-ratio", &s)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatal(err)
		}
		cfg.MinCleanableDirtyRatio = f
	}
	tl := openTestLog(t, cfg)
	return &cleanEnv{tl: tl, start: tl.clock.Ms(), seqs: map[int64]int32{}}
}

func (e *cleanEnv) run(t *testing.T, td *datadriven.TestData) string {
	tl := e.tl
	switch td.Cmd {
	case "append":
		return e.appendBatches(t, td)
	case "commit":
		pid := intArg(t, td, "pid", 1)
		opts := record.NewBatchOptions(record.CodecNone)
		opts.ProducerID, opts.ProducerEpoch, opts.Control, opts.Transactional = pid, 0, true, true
		b, err := record.Build(nil, opts, tl.clock.Ms(), []record.Record{{Key: []byte{0, 0, 0, 1}, Value: []byte{0, 0, 0, 0, 0, 0}}})
		if err != nil {
			t.Fatal(err)
		}
		res := tl.mustAppend(b)
		return fmt.Sprintf("marker at %d\n", res.BaseOffset)
	case "roll":
		tl.mu.Lock()
		err := tl.roll()
		tl.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		return ""
	case "advance":
		tl.clock.Advance(time.Duration(dur(t, td, "d", 0)) * time.Millisecond)
		return ""
	case "clean":
		opts := CleanOptions{Force: td.HasArg("force"), MaxMapEntries: int(intArg(t, td, "map-entries", 0))}
		st, err := tl.Clean(tl.clock.Now(), opts)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		if !st.Eligible {
			return fmt.Sprintf("not eligible: dirty ratio %.2f, first dirty %d, uncleanable %d\n", st.DirtyRatio, st.FirstDirty, st.Uncleanable)
		}
		return fmt.Sprintf("cleaned [%d, %d) of [%d, %d) ratio %.2f partial=%t keys=%d segments %d->%d removed %d records (%d tombstones), %d batches\n",
			st.FirstDirty, st.End, st.FirstDirty, st.Uncleanable, st.DirtyRatio, st.Partial, st.Keys,
			st.SegmentsRead, st.SegmentsWritten, st.RecordsRemoved, st.TombstonesRemoved, st.BatchesRemoved)
	case "dump":
		return e.dump(t)
	case "read":
		res, err := tl.Read(intArg(t, td, "from", 0), 1<<62, 1<<30, true)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		var sb strings.Builder
		data := readBytes(t, res)
		if err := record.Split(data, func(b []byte) error {
			h, err := validateStored(b)
			if err != nil || h.IsControl() {
				return err
			}
			return record.ForEach(b, func(r *record.Record) error {
				fmt.Fprintf(&sb, "%d %s\n", h.BaseOffset+int64(r.OffsetDelta), kv(r))
				return nil
			})
		}); err != nil {
			t.Fatalf("read data: %v", err)
		}
		return sb.String()
	case "ts":
		off, ts, found, err := tl.OffsetForTimestamp(intArg(t, td, "ts", 0) + e.start)
		if err != nil || !found {
			return fmt.Sprintf("found=%t err=%v\n", found, err)
		}
		return fmt.Sprintf("offset %d @%d\n", off, ts-e.start)
	case "reopen":
		tl.reopen()
		return ""
	case "crash":
		tl.crash()
		if td.HasArg("drop-snapshots") {
			names, err := readDirNames(tl.dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if strings.HasSuffix(n, snapshotSuffix) {
					if err := os.Remove(filepath.Join(tl.dir, n)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
		return ""
	}
	t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	return ""
}

func kv(r *record.Record) string {
	k, v := "", "!"
	if r.Key != nil {
		k = string(r.Key)
	}
	if r.Value != nil {
		v = string(r.Value)
	}
	return k + "=" + v
}

func (e *cleanEnv) appendBatches(t *testing.T, td *datadriven.TestData) string {
	tl := e.tl
	codec := record.CodecNone
	if td.HasArg("codec") {
		var s string
		td.ScanArgs(t, "codec", &s)
		c, ok := record.ParseCodec(s)
		if !ok {
			t.Fatalf("codec %s", s)
		}
		codec = c
	}
	pid := intArg(t, td, "pid", -1)
	var sb strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
		var recs []record.Record
		for i, tok := range strings.Fields(line) {
			k, v, ok := strings.Cut(tok, "=")
			if !ok {
				t.Fatalf("%s: bad token %q", td.Pos, tok)
			}
			r := record.Record{OffsetDelta: int32(i), TimestampDelta: int64(i)}
			if k != "" {
				r.Key = []byte(k)
			}
			if v != "!" {
				r.Value = []byte(v)
			}
			recs = append(recs, r)
		}
		opts := record.NewBatchOptions(codec)
		if pid >= 0 {
			seq := int32(intArg(t, td, "seq", int64(e.seqs[pid])))
			opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, int16(intArg(t, td, "epoch", 0)), seq
			if !td.HasArg("expect-dup") {
				e.seqs[pid] = seq + int32(len(recs))
			}
		}
		opts.Transactional = td.HasArg("txn")
		b, err := record.Build(nil, opts, tl.clock.Ms(), recs)
		if err != nil {
			t.Fatal(err)
		}
		var res AppendResult
		if td.HasArg("verified") {
			res, err = tl.AppendVerified(b, 0, uint64(intArg(t, td, "guard", int64(e.guard))))
		} else {
			res, err = tl.Append(b, 0)
		}
		if err != nil {
			if pid >= 0 && !td.HasArg("expect-dup") {
				e.seqs[pid] = opts.BaseSequence
			}
			fmt.Fprintf(&sb, "error: %v\n", err)
			continue
		}
		dup := ""
		if res.Duplicate {
			dup = " (duplicate)"
		}
		fmt.Fprintf(&sb, "%d-%d%s\n", res.BaseOffset, res.LastOffset, dup)
	}
	return sb.String()
}

// dump prints every segment with its batches and records, reading the
// files directly, and checks the in-memory segment bounds.
func (e *cleanEnv) dump(t *testing.T) string {
	tl := e.tl
	tl.mu.RLock()
	segs := append([]*segment(nil), tl.segs...)
	logStart := tl.logStart
	tl.mu.RUnlock()
	var sb strings.Builder
	fmt.Fprintf(&sb, "log start %d, end %d\n", logStart, tl.LogEndOffset())
	for i, s := range segs {
		active := ""
		if i == len(segs)-1 {
			active = " (active)"
		}
		fmt.Fprintf(&sb, "segment %d%s\n", s.base, active)
		buf := make([]byte, s.size.Load())
		if _, err := s.f.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		next := s.base
		err := record.Split(buf, func(b []byte) error {
			h, err := validateStored(b)
			if err != nil {
				return err
			}
			var flags []string
			if h.Codec() != record.CodecNone {
				flags = append(flags, h.Codec().String())
			}
			if h.HasProducerID() {
				flags = append(flags, fmt.Sprintf("pid=%d seq=%d-%d", h.ProducerID, h.BaseSequence, h.LastSequence()))
			}
			if h.IsTransactional() {
				flags = append(flags, "txn")
			}
			if h.IsControl() {
				flags = append(flags, "control")
				if ci, marker, err := parseControl(b); err == nil && marker {
					flags = append(flags, map[bool]string{true: "commit", false: "abort"}[ci.commit])
				}
			}
			if h.Attributes&record.AttrDeleteHorizon != 0 {
				flags = append(flags, fmt.Sprintf("horizon=@%d", h.FirstTimestamp-e.start))
			}
			if h.NumRecords == 0 {
				flags = append(flags, "empty")
			}
			fmt.Fprintf(&sb, "  batch %d-%d %s\n", h.BaseOffset, h.LastOffset(), strings.Join(flags, " "))
			next = h.LastOffset() + 1
			if h.IsControl() {
				return nil
			}
			return record.ForEach(b, func(r *record.Record) error {
				ts := h.FirstTimestamp + r.TimestampDelta
				if h.IsLogAppendTime() {
					ts = h.MaxTimestamp
				}
				fmt.Fprintf(&sb, "    %d %s @%d\n", h.BaseOffset+int64(r.OffsetDelta), kv(r), ts-e.start)
				return nil
			})
		})
		if err != nil {
			t.Fatalf("segment %d: %v", s.base, err)
		}
		tl.mu.RLock()
		memNext := s.next
		tl.mu.RUnlock()
		if memNext != next {
			t.Fatalf("segment %d: next is %d in memory, %d on disk", s.base, memNext, next)
		}
	}
	return sb.String()
}

// latestValues reads the whole log and returns each key's last value (tombstoned keys
// absent) and checks offsets strictly increase.
func latestValues(t *testing.T, tl *testLog) map[string]string {
	t.Helper()
	m := map[string]string{}
	prev := int64(-1)
	for _, b := range tl.allBatches() {
		h, err := validateStored(b)
		if err != nil {
			t.Fatal(err)
		}
		if h.IsControl() {
			continue
		}
		err = record.ForEach(b, func(r *record.Record) error {
			off := h.BaseOffset + int64(r.OffsetDelta)
			if off <= prev {
				return fmt.Errorf("offset %d after %d", off, prev)
			}
			prev = off
			if r.Value == nil {
				delete(m, string(r.Key))
			} else {
				m[string(r.Key)] = string(r.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// countRecords counts the records per key in the log.
func countRecords(t *testing.T, tl *testLog) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, b := range tl.allBatches() {
		h, _ := validateStored(b)
		if h.IsControl() {
			continue
		}
		if err := record.ForEach(b, func(r *record.Record) error { n[string(r.Key)]++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// fillLog appends versions of keys k0..k(keys-1) in batches of 10, rolling
// every segEvery batches, with some tombstones, and returns the expected
// latest values.
func fillLog(t *testing.T, tl *testLog, keys, versions int, codec record.Codec) map[string]string {
	t.Helper()
	want := map[string]string{}
	var recs []record.Record
	flush := func() {
		if len(recs) == 0 {
			return
		}
		b, err := record.Build(nil, record.NewBatchOptions(codec), tl.clock.Ms(), recs)
		if err != nil {
			t.Fatal(err)
		}
		tl.mustAppend(b)
		recs = recs[:0]
	}
	batches := 0
	for v := range versions {
		for k := range keys {
			key := fmt.Sprintf("k%d", k)
			r := record.Record{OffsetDelta: int32(len(recs)), Key: []byte(key)}
			if (k+v)%7 == 3 {
				delete(want, key)
			} else {
				val := fmt.Sprintf("v%d-%d", k, v)
				r.Value = []byte(val)
				want[key] = val
			}
			recs = append(recs, r)
			if len(recs) == 10 {
				flush()
				batches++
				if batches%5 == 0 {
					tl.mu.Lock()
					if err := tl.roll(); err != nil {
						t.Fatal(err)
					}
					tl.mu.Unlock()
				}
			}
		}
	}
	flush()
	tl.mu.Lock()
	if err := tl.roll(); err != nil {
		t.Fatal(err)
	}
	tl.mu.Unlock()
	return want
}

func compactConfig() Config {
	cfg := testConfig()
	cfg.Compact = true
	cfg.SegmentBytes = 1024 // several groups per pass
	cfg.MinCleanableDirtyRatio = 0.5
	cfg.DeleteRetentionMs = 1000
	cfg.MaxCompactionLagMs = 1<<63 - 1
	return cfg
}

// TestCleanerCrashDuringSwap stops a swap at each step, as a crash would,
// reopens without a clean shutdown and checks the log: valid, the same
// latest value per key, no duplicated offsets, and cleanable again to the
// same result as an uninterrupted clean.
func TestCleanerCrashDuringSwap(t *testing.T) {
	steps := []string{"cleaned", "cleaned-torn", "marker", "index-swapped", "committed", "old-deleted", "index-final", "log-final"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			tl := openTestLog(t, compactConfig())
			want := fillLog(t, tl, 30, 8, record.CodecZstd)
			if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("before cleaning: got %v, want %v", got, want)
			}
			calls := 0
			tl.clean.crashAt = func(s string) bool {
				if s == strings.TrimSuffix(step, "-torn") {
					calls++
					if step == "cleaned-torn" {
						return calls >= 2 && cleanedSize(t, tl.dir) > 1
					}
					return calls == 2 // crash in the second group
				}
				return false
			}
			_, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true})
			if !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("clean: %v, want the simulated crash", err)
			}
			if step == "cleaned-torn" {
				// A kill -9 while the cleaned file was being written.
				tornCleaned(t, tl)
			}
			tl.crash()
			if err := tl.reopenErr(); err != nil {
				t.Fatalf("reopen: %v", err)
			}
			assertNoLeftovers(t, tl.dir)
			if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after crash: got %v, want %v", got, want)
			}
			if _, err := tl.Clean(tl.clock.Now(), CleanOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after the next clean: got %v, want %v", got, want)
			}
			for k, n := range countRecords(t, tl) {
				if _, live := want[k]; n != 1 {
					// Tombstones are still within delete.retention.ms.
					if live || n > 1 {
						t.Errorf("key %s has %d records after cleaning", k, n)
					}
				}
			}
			tl.reopen()
			if got := latestValues(t, tl); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after reopen: got %v, want %v", got, want)
			}
		})
	}
}

func tornCleaned(t *testing.T, tl *testLog) {
	t.Helper()
	names := dirNames(t, tl.dir)
	for _, n := range names {
		if strings.HasSuffix(n, logSuffix+cleanedSuffix) {
			if err := truncateHalf(tl.dir + "/" + n); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no cleaned log file in %v", names)
}

func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	for _, n := range dirNames(t, dir) {
		if strings.HasSuffix(n, cleanedSuffix) || strings.HasSuffix(n, swapSuffix) || n == cleanerSwapFile || strings.HasSuffix(n, deletedSuffix) {
			t.Errorf("leftover %s after open", n)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := readDirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ents)
	return ents
}
