package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/record"
)

// jfix is a data dir with a shared journal and logs in journal mode; crash
// abandons all of them as a kill -9 would (the journal's written frames and
// the segments' written bytes stay, the pending tails in memory are lost).
type jfix struct {
	t         *testing.T
	data      string
	clock     *manualClock
	fileBytes int64
	memBytes  int64
	durable   bool    // log.fsync=always: a durable journal, FsyncAlways logs
	io        *FileIO // the logs' and the journal's
	j         *Journal
	logs      map[string]*testLog
}

func newJFix(t *testing.T) *jfix {
	f := &jfix{t: t, data: t.TempDir(), clock: newClock(), logs: map[string]*testLog{}}
	f.start()
	return f
}

// start opens the journal and closes it and the logs when the test ends.
func (f *jfix) start() {
	f.openJournal()
	f.t.Cleanup(func() {
		for _, tl := range f.logs {
			if tl.Log != nil {
				tl.Log.Close()
			}
		}
		if f.j != nil {
			f.j.Close()
		}
	})
}

func (f *jfix) openJournal() {
	f.t.Helper()
	j, err := OpenJournal(f.data, JournalOptions{Now: f.clock.Now, WriteAge: time.Second, NoBackground: true,
		FileBytes: f.fileBytes, MemoryBytes: f.memBytes, Durable: f.durable, IO: f.io})
	if err != nil {
		f.t.Fatalf("open journal: %v", err)
	}
	f.j = j
}

// open opens (or reopens) the log name of topic id and replays the
// journal into it, as the partition manager does.
func (f *jfix) open(name string, id byte) *testLog {
	f.t.Helper()
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	tl := &testLog{t: f.t, dir: filepath.Join(f.data, name), cfg: cfg, clock: f.clock,
		opts: Options{Now: f.clock.Now, Journal: f.j, TopicID: [16]byte{id}, FsyncAlways: f.durable, IO: f.io}}
	tl.reopen()
	if _, err := f.j.Replay(tl.Log); err != nil {
		f.t.Fatalf("replay into %s: %v", name, err)
	}
	f.logs[name] = tl
	return tl
}

func (f *jfix) crash() {
	for _, tl := range f.logs {
		if tl.Log != nil {
			tl.crash()
		}
	}
	f.logs = map[string]*testLog{}
	f.j = nil // abandoned: no Close, nothing more written
}

// crashWithOneFile writes the journal, checks that it is one file, crashes
// and returns that file's path.
func (f *jfix) crashWithOneFile() string {
	f.t.Helper()
	if err := f.j.Sync(); err != nil {
		f.t.Fatal(err)
	}
	files, err := f.j.Files()
	if err != nil || len(files) != 1 {
		f.t.Fatalf("journal files %v %v, want one", files, err)
	}
	f.crash()
	return filepath.Join(f.data, JournalDirName, files[0])
}

// appendJ appends count journaled batches (value byte from seed) and
// returns copies of them as stored.
func appendJ(t *testing.T, tl *testLog, count int, seed int64) [][]byte {
	t.Helper()
	var out [][]byte
	for i := range count {
		b := makeBatch(t, batchSpec{n: 1 + i%2, size: 40, ts: seed + int64(i)})
		if _, err := tl.AppendJournaled(b, 0); err != nil {
			t.Fatalf("append journaled: %v", err)
		}
		out = append(out, b)
	}
	return out
}

// mustRead reads the log from offset with hw as the high watermark and
// returns the bytes.
func mustRead(t *testing.T, tl *testLog, offset, hw int64) []byte {
	t.Helper()
	res, err := tl.Read(offset, hw, 1<<20, true)
	if err != nil {
		t.Fatalf("read from %d: %v", offset, err)
	}
	return readBytes(t, res)
}

// journalFull is faults_test.go's fullDisk for the journal's files only.
func journalFull(full *atomic.Bool) *FileIO {
	write := fullDisk(full)
	return &FileIO{WriteAt: func(f *os.File, b []byte, off int64) (int, error) {
		if strings.HasSuffix(f.Name(), journalSuffix) {
			return write(f, b, off)
		}
		return f.WriteAt(b, off)
	}}
}

func segmentFileSize(t *testing.T, tl *testLog) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(tl.dir, fileName(0, logSuffix)))
	if err != nil {
		t.Fatalf("stat segment: %v", err)
	}
	return st.Size()
}

func sameBatches(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: batch %d differs", what, i)
		}
	}
}

// A kill -9 after the journal write and before the segment write loses
// nothing: the next start replays the journal into each log.
func TestJournalReplayAfterKill(t *testing.T) {
	f := newJFix(t)
	a, b := f.open("a-0", 1), f.open("b-0", 2)
	wantA := appendJ(t, a, 30, 1000)
	wantB := appendJ(t, b, 20, 5000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := segmentFileSize(t, a); n != 0 {
		t.Fatalf("segment file of a holds %d bytes before any segment write; the journaled tail should be in memory only", n)
	}
	// Appended, never synced: not acknowledged, and a crash may lose it.
	appendJ(t, a, 1, 9000)
	f.crash()

	f.openJournal()
	a, b = f.open("a-0", 1), f.open("b-0", 2)
	if got := a.LogEndOffset(); got != 45 {
		t.Fatalf("a: log end %d after replay, want 45", got)
	}
	sameBatches(t, "a", a.allBatches(), wantA)
	sameBatches(t, "b", b.allBatches(), wantB)
	// Replayed once: a second crash and start change nothing.
	f.crash()
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "a after a second start", a.allBatches(), wantA)
}

// A read that reaches the journaled tail writes it to the segment first
// and sees it; the tail's write age and size bound how long it waits.
func TestJournalTailReadAndWriteAge(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	want := appendJ(t, a, 3, 1000)
	got := mustRead(t, a, 1, 100)
	if !bytes.Equal(got, bytes.Join(want[1:], nil)) {
		t.Fatalf("read from offset 1 returned %d bytes, want the last two batches (%d bytes)", len(got), len(bytes.Join(want[1:], nil)))
	}
	if n := segmentFileSize(t, a); n != int64(len(bytes.Join(want, nil))) {
		t.Fatalf("segment holds %d bytes after the read, want %d", n, len(bytes.Join(want, nil)))
	}

	more := appendJ(t, a, 2, 2000)
	before := segmentFileSize(t, a)
	f.clock.Advance(500 * time.Millisecond)
	f.j.Tick()
	if n := segmentFileSize(t, a); n != before {
		t.Fatalf("a tail younger than the write age was written (%d -> %d bytes)", before, n)
	}
	f.clock.Advance(600 * time.Millisecond)
	f.j.Tick()
	if n, w := segmentFileSize(t, a), before+int64(len(bytes.Join(more, nil))); n != w {
		t.Fatalf("after the write age the segment holds %d bytes, want %d", n, w)
	}

	// 16 KiB of tail is written at once, without waiting for the age.
	var quarter [][]byte
	for i := range 4 {
		b := makeBatch(t, batchSpec{n: 1, size: journalWriteBytes / 4, ts: 3000 + int64(i)})
		if _, err := a.AppendJournaled(b, 0); err != nil {
			t.Fatal(err)
		}
		quarter = append(quarter, b)
		if pending := a.pendLen.Load(); (i < 3) != (pending > 0) {
			t.Fatalf("after %d batches of 4 KiB, %d bytes pending", i+1, pending)
		}
	}
	// A batch of journalDirectBytes or more goes to the segment at once,
	// after the tail before it.
	small := appendJ(t, a, 1, 4000)
	big := makeBatch(t, batchSpec{n: 1, size: journalDirectBytes, ts: 5000})
	if _, err := a.AppendJournaled(big, 0); err != nil {
		t.Fatal(err)
	}
	if a.pendLen.Load() != 0 {
		t.Fatalf("%d bytes pending after a large batch", a.pendLen.Load())
	}
	all := append(append(append(append(want, more...), quarter...), small...), big)
	if n := segmentFileSize(t, a); n != int64(len(bytes.Join(all, nil))) {
		t.Fatalf("segment holds %d bytes, want %d", n, len(bytes.Join(all, nil)))
	}
	sameBatches(t, "all", a.allBatches(), all)
}

// Frames journaled before a truncation are not replayed over what the log
// holds after it: the truncation writes a barrier first.
func TestJournalTruncationBarrier(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	old := appendJ(t, a, 20, 1000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.TruncateTo(10); err != nil {
		t.Fatal(err)
	}
	fresh := appendJ(t, a, 5, 7000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	f.crash()

	f.openJournal()
	a = f.open("a-0", 1)
	if got := a.LogEndOffset(); got != 10+int64(recordsIn(t, fresh)) {
		t.Fatalf("log end %d after replay, want %d", got, 10+recordsIn(t, fresh))
	}
	sameBatches(t, "after truncation and replay", a.allBatches(), append(old[:7:7], fresh...))
}

func recordsIn(t *testing.T, bs [][]byte) int {
	n := 0
	for _, b := range bs {
		for _, h := range splitBatches(t, b) {
			n += int(h.NumRecords)
		}
	}
	return n
}

// A log deleted and created again under the same name (same topic id, a
// replica moved away and back) gets none of the old log's frames, nor does
// a log of another topic id.
func TestJournalDeleteAndOtherTopic(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	appendJ(t, a, 10, 1000)
	b := f.open("b-0", 2)
	appendJ(t, b, 4, 1000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(); err != nil {
		t.Fatal(err)
	}
	a.Log = nil
	a = f.open("a-0", 1)
	fresh := appendJ(t, a, 3, 4000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	f.crash()

	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "recreated log", a.allBatches(), fresh)
	// Another topic of b's name (deleted and created again while the
	// broker was down): the manager removes the old directory first
	// (Manager.open, on ErrInconsistentTopicID), and the journal's
	// frames of the old one stay out.
	if err := os.RemoveAll(filepath.Join(f.data, "b-0")); err != nil {
		t.Fatal(err)
	}
	b = f.open("b-0", 3)
	if got := b.LogEndOffset(); got != 0 {
		t.Fatalf("a log of another topic id got %d offsets from the journal", got)
	}
}

// A clean shutdown leaves the journal empty; a torn last frame loses only
// itself.
func TestJournalCleanCloseAndTornFrame(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	want := appendJ(t, a, 5, 1000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Log = nil
	if err := f.j.Close(); err != nil {
		t.Fatal(err)
	}
	if files, err := f.j.Files(); err != nil || len(files) != 0 {
		t.Fatalf("journal after a clean shutdown: %v %v, want no file", files, err)
	}
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "after clean restart", a.allBatches(), want)

	more := appendJ(t, a, 3, 2000)
	path := f.crashWithOneFile()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-7); err != nil {
		t.Fatal(err)
	}
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "after a torn frame", a.allBatches(), append(want, more[:2]...))
}

// Files that no pending tail needs are removed, oldest first, and what is
// left still replays correctly.
func TestJournalFilesRemoved(t *testing.T) {
	f := &jfix{t: t, data: t.TempDir(), clock: newClock(), logs: map[string]*testLog{}, fileBytes: 2048}
	f.openJournal()
	a, b := f.open("a-0", 1), f.open("b-0", 2)
	var wantA, wantB [][]byte
	for round := range 10 {
		wantA = append(wantA, appendJ(t, a, 10, int64(round)*100)...)
		if round < 9 {
			wantB = append(wantB, appendJ(t, b, 2, int64(round)*100)...)
		}
		if err := f.j.Sync(); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(300 * time.Millisecond)
		f.j.Tick()
	}
	files, err := f.j.Files()
	if err != nil {
		t.Fatal(err)
	}
	// 10 rounds of ~1.2 KiB make 6 files of 2 KiB; each tail is written
	// within about 1.2 s (4 rounds), so only the last few files remain.
	if len(files) == 0 || len(files) > 4 {
		t.Fatalf("journal files %v: want 1 to 4 (older ones removed)", files)
	}
	f.crash()
	f.openJournal()
	a, b = f.open("a-0", 1), f.open("b-0", 2)
	sameBatches(t, "a", a.allBatches(), wantA)
	sameBatches(t, "b", b.allBatches(), wantB)
	if err := f.j.Close(); err != nil {
		t.Fatal(err)
	}
	f.j = nil
}

// Journaled appends, syncs, reads and the background writer running at
// once (run with -race): every log ends with exactly what was appended.
func TestJournalConcurrent(t *testing.T) {
	t.Run("page-cache", func(t *testing.T) { testJournalConcurrent(t, false) })
	// log.fsync=always: each appender's Sync goes through the durable
	// journal, beside the background writer's fsyncs and file removals.
	t.Run("durable", func(t *testing.T) { testJournalConcurrent(t, true) })
}

func testJournalConcurrent(t *testing.T, durable bool) {
	data := t.TempDir()
	j, err := OpenJournal(data, JournalOptions{WriteAge: 2 * time.Millisecond, Tick: time.Millisecond, FileBytes: 8 << 10, Durable: durable})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	logs := make([]*Log, 4)
	for i := range logs {
		if logs[i], err = Open(filepath.Join(data, "t-"+string(rune('0'+i))), cfg, Options{Journal: j, TopicID: [16]byte{1}, FsyncAlways: durable}); err != nil {
			t.Fatal(err)
		}
	}
	const per = 300
	want := make([][][]byte, len(logs))
	errs := make(chan error, 2*len(logs))
	for i, l := range logs {
		go func() {
			for k := range per {
				b := makeBatch(t, batchSpec{n: 1, size: 30, ts: int64(k)})
				res, err := l.AppendJournaled(b, 0)
				if err != nil {
					errs <- err
					return
				}
				want[i] = append(want[i], b)
				if k%7 == 0 {
					if err := j.Sync(); err != nil {
						errs <- err
						return
					}
					if err := l.Sync(res.LastOffset); err != nil {
						errs <- err
						return
					}
					if durable && l.DurableOffset() <= res.LastOffset {
						errs <- fmt.Errorf("%s: durable offset %d after Sync(%d)", l.Dir(), l.DurableOffset(), res.LastOffset)
						return
					}
				}
			}
			errs <- nil
		}()
		go func() {
			for off := int64(0); off < per; {
				if off >= l.LogEndOffset() {
					continue // the appender is behind; spin until it moves
				}
				res, err := l.Read(off, l.LogEndOffset(), 1<<20, true)
				if err != nil {
					errs <- err
					return
				}
				for _, h := range splitBatches(t, readBytes(t, res)) {
					off = max(off, h.LastOffset()+1)
				}
			}
			errs <- nil
		}()
	}
	for range 2 * len(logs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range logs {
		var got [][]byte
		if err := l.ForEachBatch(0, func(b []byte) error { got = append(got, bytes.Clone(b)); return nil }); err != nil {
			t.Fatal(err)
		}
		sameBatches(t, l.Dir(), got, want[i])
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if files, err := j.Files(); err != nil || len(files) != 0 {
		t.Fatalf("journal files after the logs and the journal closed: %v %v", files, err)
	}
}

// A failed journal write (a full disk) answers the requests whose batches
// were in it with an error, writes every pending tail to its segment, and
// sends later batches to their segments directly; nothing is lost.
func TestJournalWriteFailure(t *testing.T) {
	data := t.TempDir()
	var full atomic.Bool
	io := journalFull(&full)
	clock := newClock()
	j, err := OpenJournal(data, JournalOptions{Now: clock.Now, NoBackground: true, IO: io})
	if err != nil {
		t.Fatal(err)
	}
	f := &jfix{t: t, data: data, clock: clock, j: j, logs: map[string]*testLog{}}
	a := f.open("a-0", 1)
	want := appendJ(t, a, 3, 1000)
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	want = append(want, appendJ(t, a, 2, 2000)...)
	if err := j.Sync(); !errors.Is(err, ErrIO) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("sync on a full disk: %v, want ErrIO wrapping ENOSPC", err)
	}
	// The tails go to their segments (on a goroutine of their own).
	deadline := time.Now().Add(10 * time.Second)
	for a.pendLen.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pending tail was not written after the journal failed")
		}
		runtime.Gosched()
	}
	b := makeBatch(t, batchSpec{n: 1, size: 40, ts: 3000})
	res, err := a.AppendJournaled(b, 0)
	if err != nil || res.Journaled {
		t.Fatalf("append after the journal failed: %+v %v, want a direct write", res, err)
	}
	want = append(want, b)
	if n := segmentFileSize(t, a); n != int64(len(bytes.Join(want, nil))) {
		t.Fatalf("segment holds %d bytes, want %d", n, len(bytes.Join(want, nil)))
	}
	f.crash()
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "after the journal failed and a crash", a.allBatches(), want)
}

// A journaled tail that cannot be written to its segment stays pending
// (the journal keeps it) and fails what needs it, until the disk has
// room again.
func TestJournalTailWriteFailure(t *testing.T) {
	f := newJFix(t)
	var full atomic.Bool
	a := f.open("a-0", 1)
	a.Log.io = &FileIO{WriteAt: fullDisk(&full)}
	want := appendJ(t, a, 2, 1000)                 // offsets 0-2
	mustRead(t, a, 0, 100)                         // the read wrote the tail to the segment
	want = append(want, appendJ(t, a, 2, 2000)...) // offsets 3-5, pending
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	mustRead(t, a, 0, 3) // bounded below the tail: nothing to write for it
	if _, err := a.Read(0, 100, 1<<20, true); !errors.Is(err, ErrIO) {
		t.Fatalf("a read of the tail with the disk full: %v, want ErrIO", err)
	}
	if err := a.Failed(); err != nil {
		t.Fatalf("the log failed for good: %v", err)
	}
	full.Store(false)
	mustRead(t, a, 3, 100) // the disk has room again
	sameBatches(t, "after the disk had room again", a.allBatches(), want)
}

// A read that starts below the tail and may see into it (a long poll's
// re-read from its first offset) gets the tail too, not only what was in
// the file.
func TestJournalReadBelowTailSeesTail(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	first := appendJ(t, a, 1, 1000)
	mustRead(t, a, 0, 1)
	second := appendJ(t, a, 1, 2000)
	if got, want := mustRead(t, a, 0, 100), bytes.Join(append(first, second...), nil); !bytes.Equal(got, want) {
		t.Fatalf("read from offset 0 returned %d bytes, want both batches (%d bytes)", len(got), len(want))
	}
}

// A start with the journal off after a crash with it on still replays it,
// takes no new frame, and removes the old files once they are replayed.
func TestJournalReplayOnly(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	want := appendJ(t, a, 6, 1000)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	f.crash()
	if !HasJournal(f.data) {
		t.Fatal("HasJournal is false with a crashed journal's file in place")
	}
	j, err := OpenJournal(f.data, JournalOptions{Now: f.clock.Now, NoBackground: true, ReplayOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	f.j = j
	a = f.open("a-0", 1)
	b := makeBatch(t, batchSpec{n: 1, size: 40, ts: 3000})
	if res, err := a.AppendJournaled(b, 0); err != nil || res.Journaled {
		t.Fatalf("append with a replay-only journal: %+v %v, want a direct write", res, err)
	}
	sameBatches(t, "replayed", a.allBatches(), append(want, b))
	j.Tick()
	if HasJournal(f.data) {
		files, _ := j.Files()
		t.Fatalf("journal files %v left after the replay", files)
	}
}

// A truncation after the journal failed (a follower on a full disk) waits
// until every tail is in its segment, then goes through without a
// barrier: the journal's files are removed instead.
func TestJournalTruncateAfterFailure(t *testing.T) {
	data := t.TempDir()
	var full atomic.Bool
	io := &FileIO{WriteAt: fullDisk(&full)}
	clock := newClock()
	j, err := OpenJournal(data, JournalOptions{Now: clock.Now, NoBackground: true, IO: io})
	if err != nil {
		t.Fatal(err)
	}
	f := &jfix{t: t, data: data, clock: clock, j: j, logs: map[string]*testLog{}}
	a, b := f.open("a-0", 1), f.open("b-0", 2)
	b.Log.io = io
	want := appendJ(t, a, 6, 1000)
	appendJ(t, b, 2, 1000)
	if err := j.Sync(); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	appendJ(t, a, 1, 2000)
	if err := j.Sync(); err == nil {
		t.Fatal("sync on a full disk succeeded")
	}
	// b's tail cannot be written yet: the truncation of a waits.
	deadline := time.Now().Add(10 * time.Second)
	for a.pendLen.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("a's tail was not written after the journal failed")
		}
		runtime.Gosched()
	}
	if err := a.TruncateTo(3); !errors.Is(err, ErrIO) {
		t.Fatalf("truncation with another log's tail unwritten: %v, want ErrIO", err)
	}
	full.Store(false)
	clock.Advance(2 * time.Second)
	j.Tick() // writes b's tail
	if err := a.TruncateTo(3); err != nil {
		t.Fatalf("truncation once every tail is written: %v", err)
	}
	if HasJournal(data) {
		t.Fatal("the failed journal's files are still there after it retired")
	}
	f.crash()
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "after truncation and a crash", a.allBatches(), want[:2])
}

// The background writer finds the tail it queued even when the clock
// moves between the calls that read it (a real clock always does).
func TestJournalAgeWithMovingClock(t *testing.T) {
	var ns atomic.Int64
	now := func() time.Time { return time.Unix(1_700_000_000, ns.Add(1)) }
	data := t.TempDir()
	j, err := OpenJournal(data, JournalOptions{Now: now, WriteAge: time.Second, NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	l, err := Open(filepath.Join(data, "a-0"), testConfig(), Options{Now: now, Journal: j, TopicID: [16]byte{1}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b := makeBatch(t, batchSpec{n: 1, size: 40, ts: 1000})
	if _, err := l.AppendJournaled(b, 0); err != nil {
		t.Fatal(err)
	}
	ns.Add(int64(2 * time.Second))
	j.Tick()
	if l.pendLen.Load() != 0 {
		t.Fatal("the background writer left a tail older than the write age pending")
	}
}

// A pending tail points into the journal's chunks: a chunk is not reused
// while a tail holds a batch in it, however many chunks other logs fill
// and the journal writes meanwhile, and a log that has no tail writes to
// its segment directly while the chunks in use hold the memory bound
// (log.journal.memory.bytes), and journals again once they are free.
func TestJournalTailChunksAndMemoryBound(t *testing.T) {
	f := newJFix(t)
	f.j.Close()
	f.memBytes = 3 * journalChunkBytes
	f.openJournal()
	a, b, c, d := f.open("a-0", 1), f.open("b-0", 2), f.open("c-0", 3), f.open("d-0", 4)

	wantA := appendJ(t, a, 1, 100) // a's tail holds the first chunk
	var wantB [][]byte
	for i := range 3 * journalChunkBytes / 6000 {
		// b fills three chunks (its tail is written every 16 KiB), and
		// the journal writes them: the chunks a does not hold are
		// reused, in this loop, for b's frames.
		x := makeBatch(t, batchSpec{n: 1, size: 6000, ts: 1000 + int64(i)})
		if _, err := b.AppendJournaled(x, 0); err != nil {
			t.Fatal(err)
		}
		wantB = append(wantB, x)
		if i%10 == 0 {
			if err := f.j.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if a.pendLen.Load() == 0 {
		t.Fatal("a's tail was written; the test needs it pending")
	}
	a.mu.RLock()
	kept := bytes.Equal(bytes.Join(a.pend, nil), wantA[0])
	a.mu.RUnlock()
	if !kept {
		t.Fatal("a's pending batch changed in its chunk: the chunk was reused while the tail held it")
	}
	if in := f.j.inUse.Load(); in > 3 {
		t.Fatalf("%d chunks in use, over the bound of 3", in)
	}

	// c starts a tail in the chunk being filled: with a's, two chunks
	// are held by tails. b fills the current chunk so that a third is
	// in use; then the bound is reached and d, which has no tail, writes
	// directly.
	wantC := appendJ(t, c, 1, 200)
	for i := 0; f.j.inUse.Load() < 3; i++ {
		if i > 2*journalChunkBytes/6000 {
			t.Fatalf("b wrote two chunks of batches and %d chunks are in use, want 3 (a's, c's and the current one)", f.j.inUse.Load())
		}
		x := makeBatch(t, batchSpec{n: 1, size: 6000, ts: 5000 + int64(i)})
		if _, err := b.AppendJournaled(x, 0); err != nil {
			t.Fatal(err)
		}
		wantB = append(wantB, x)
		if err := f.j.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	wantD := appendJ(t, d, 1, 300)
	if d.pendLen.Load() != 0 || segmentFileSize(t, d) != int64(len(wantD[0])) {
		t.Fatalf("with the chunks at the bound, d's batch is pending (%d bytes) instead of in its segment (%d bytes)",
			d.pendLen.Load(), segmentFileSize(t, d))
	}

	// The write age passes: every tail is written from its chunks, the
	// chunks are free but the one the journal's last write kept for its
	// next frames, and d journals again.
	f.clock.Advance(2 * time.Second)
	f.j.Tick()
	if in := f.j.inUse.Load(); in != 1 {
		t.Fatalf("%d chunks in use after every tail was written, want 1 (the journal's current chunk)", in)
	}
	wantD = append(wantD, appendJ(t, d, 1, 400)...)
	if d.pendLen.Load() == 0 {
		t.Fatal("d did not journal once the chunks were free")
	}
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		name string
		tl   *testLog
		want [][]byte
	}{{"a", a, wantA}, {"b", b, wantB}, {"c", c, wantC}, {"d", d, wantD}} {
		sameBatches(t, x.name, x.tl.allBatches(), x.want)
	}
}

// Close unmaps the chunks' slabs once nothing points into them, and
// leaves them mapped while a log's tail still does (here a log that is
// not closed), so that writing that tail later stays safe.
func TestJournalCloseUnmapsSlabs(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	want := appendJ(t, a, 2, 100)
	if err := f.j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(f.j.slabs) == 0 {
		t.Fatal("the journal unmapped its slabs while a log's tail pointed into them")
	}
	sameBatches(t, "a", a.allBatches(), want) // writes the tail out of its chunk
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	g := newJFix(t)
	b := g.open("b-0", 2)
	appendJ(t, b, 2, 200)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(g.j.slabs) != 0 || g.j.inUse.Load() != 0 {
		t.Fatalf("after every log and the journal closed: %d slabs mapped, %d chunks in use", len(g.j.slabs), g.j.inUse.Load())
	}
}

// TestJournalSmallRequestsShareChunks: requests of one small batch each,
// to many logs, fill the journal's chunks together. A write used to hand
// its chunks over and start the next request in a fresh 1 MiB chunk, which
// the request's tail then held: with one-batch requests to 1,000
// partitions the broker's RSS reached 4.6 GB under a 256 MiB
// log.journal.memory.bytes (BENCHMARKS.md, "The journal as the default").
// After the run, a crash replays every batch from the shared chunks.
func TestJournalSmallRequestsShareChunks(t *testing.T) {
	f := newJFix(t)
	logs := make([]*testLog, 50)
	want := make([][][]byte, len(logs))
	for i := range logs {
		logs[i] = f.open(fmt.Sprintf("t-%d", i), 1)
	}
	for round := range 20 {
		for i, tl := range logs {
			want[i] = append(want[i], appendJ(t, tl, 1, int64(round*1000+i))...)
			if err := f.j.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tl := range logs {
		if tl.pendLen.Load() == 0 {
			t.Fatalf("%s wrote its tail; the test needs every tail pending", tl.dir)
		}
	}
	// 1,000 batches of about 100 bytes: one chunk holds them all.
	if in := f.j.inUse.Load(); in != 1 {
		t.Fatalf("%d chunks in use after 1,000 one-batch writes, want 1", in)
	}
	f.crash()
	f.openJournal()
	for i := range logs {
		tl := f.open(fmt.Sprintf("t-%d", i), 1)
		sameBatches(t, tl.dir, tl.allBatches(), want[i])
	}
}

// A retried idempotent batch whose original is in the journaled tail and
// that arrives by the direct path (a produce request to one partition)
// is answered as a duplicate only once the tail is in the segment: that
// answer writes no journal frame, and the original's frame may not be
// written yet (its request still on the way to its journal write).
func TestJournalDuplicateByDirectPathWritesTail(t *testing.T) {
	f := newJFix(t)
	tl := f.open("a-0", 1)
	orig := makeBatch(t, batchSpec{n: 2, size: 40, ts: 1, pid: 7, seq: 0})
	retry := append([]byte(nil), orig...)
	if res, err := tl.AppendJournaled(orig, 0); err != nil || !res.Journaled {
		t.Fatalf("journaled append: %+v, %v", res, err)
	}
	if got := segmentFileSize(t, tl); got != 0 {
		t.Fatalf("the segment has %d bytes before any tail write", got)
	}
	res, err := tl.Append(retry, 0)
	if err != nil || !res.Duplicate || res.Journaled || res.BaseOffset != 0 {
		t.Fatalf("the retry by the direct path: %+v, %v; want a duplicate of offset 0, not journaled", res, err)
	}
	if got, want := segmentFileSize(t, tl), int64(len(orig)); got != want {
		t.Fatalf("after the duplicate's answer the segment has %d bytes, want the original's %d", got, want)
	}
}

// A batch frame's own CRC covers its header only up to the batch's CRC;
// the batch's CRC covers the rest. A frame whose batch is damaged past
// that point (its frame CRC still good) ends the replay there, as a torn
// frame does.
func TestJournalDamagedBatchBody(t *testing.T) {
	f := newJFix(t)
	a := f.open("a-0", 1)
	want := appendJ(t, a, 4, 3000)
	path := f.crashWithOneFile()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The last byte of the file is the last record's last byte.
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f.openJournal()
	a = f.open("a-0", 1)
	sameBatches(t, "after a damaged batch", a.allBatches(), want[:3])
}

// Frames written by an earlier version (frameKindBatch: the frame's CRC
// over the whole batch) are replayed.
func TestJournalReplaysEarlierFrameKind(t *testing.T) {
	f := newJFix(t)
	f.crash() // the journal opened by newJFix stays empty
	var want [][]byte
	var file []byte
	for i := range 3 {
		b := makeBatch(t, batchSpec{n: 2, size: 30, ts: int64(4000 + i)})
		record.SetBaseOffset(b, int64(2*i))
		want = append(want, b)
		file = appendFrame(file, frameKindBatch, [16]byte{1}, "a-0", b)
	}
	if err := os.WriteFile(filepath.Join(f.data, JournalDirName, fileName(0, journalSuffix)), file, 0o644); err != nil {
		t.Fatal(err)
	}
	f.openJournal()
	a := f.open("a-0", 1)
	sameBatches(t, "replayed from frames of the earlier kind", a.allBatches(), want)
}

// A topic with log-append time: the log rewrites each batch's timestamp
// and so its CRC before journaling it, and the frame's CRC relies on the
// batch's own. Batches journaled that way replay after a kill.
func TestJournalReplaysLogAppendTimeBatches(t *testing.T) {
	f := newJFix(t)
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.LogAppendTime = true
	tl := &testLog{t: t, dir: filepath.Join(f.data, "a-0"), cfg: cfg, clock: f.clock,
		opts: Options{Now: f.clock.Now, Journal: f.j, TopicID: [16]byte{1}, IO: f.io}}
	tl.reopen()
	f.logs["a-0"] = tl
	for i := range 3 {
		res, err := tl.AppendJournaled(makeBatch(t, batchSpec{n: 2, size: 40, ts: int64(10 + i)}), 0)
		if err != nil || !res.Journaled || res.LogAppendTime < 0 {
			t.Fatalf("append %d: %+v, %v; want journaled with a log-append time", i, res, err)
		}
	}
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := segmentFileSize(t, tl); n != 0 {
		t.Fatalf("the segment has %d bytes before the kill: the replay would have nothing to do", n)
	}
	f.crash()
	f.openJournal()
	a := f.open("a-0", 1)
	got := a.allBatches()
	if len(got) != 3 {
		t.Fatalf("%d batches replayed, want 3", len(got))
	}
	for i, b := range got {
		h, err := record.Validate(b)
		if err != nil {
			t.Fatalf("replayed batch %d: %v", i, err)
		}
		if h.BaseOffset != int64(2*i) || h.Attributes&record.AttrTimestampType == 0 || h.MaxTimestamp != f.clock.Now().UnixMilli() {
			t.Fatalf("replayed batch %d: base offset %d, attributes %#x, max timestamp %d", i, h.BaseOffset, h.Attributes, h.MaxTimestamp)
		}
	}
}
