package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
)

// summaryDir is a data dir of logs opened as a broker opens them, sharing
// one clean shutdown summary.
type summaryDir struct {
	t     *testing.T
	root  string
	cfg   Config
	clock *manualClock
	io    *FileIO
	sum   *DirSummary
	logs  map[string]*Log
}

func mustOpenSummary(t *testing.T, dir string, io *FileIO, j *Journal) *DirSummary {
	t.Helper()
	s, err := OpenDirSummary(dir, io, nil, j)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newSummaryDir(t *testing.T) *summaryDir {
	d := &summaryDir{t: t, root: t.TempDir(), cfg: testConfig(), clock: newClock(), io: &FileIO{}, logs: map[string]*Log{}}
	d.sum = mustOpenSummary(d.t, d.root, d.io, nil)
	t.Cleanup(func() {
		for _, l := range d.logs {
			l.Close()
		}
		d.sum.Close()
	})
	return d
}

func (d *summaryDir) open(name string) *Log {
	d.t.Helper()
	l, err := Open(filepath.Join(d.root, name), d.cfg, Options{Now: d.clock.Now, Lazy: true, DeferLoad: true, Summary: d.sum, IO: d.io})
	if err != nil {
		d.t.Fatalf("open %s: %v", name, err)
	}
	d.logs[name] = l
	return l
}

// shutdown closes every log as replication.Manager.Close does, and reads
// the summary again.
func (d *summaryDir) shutdown() {
	d.t.Helper()
	var finish []func() error
	for name, l := range d.logs {
		f, err := l.CloseDeferSync()
		if err != nil {
			d.t.Fatalf("close %s: %v", name, err)
		}
		if f != nil {
			finish = append(finish, f)
		}
	}
	if err := SyncFS(d.root); err != nil {
		d.t.Fatal(err)
	}
	for _, f := range finish {
		if err := f(); err != nil {
			d.t.Fatal(err)
		}
	}
	if err := SyncFS(d.root); err != nil {
		d.t.Fatal(err)
	}
	if err := d.sum.Commit(); err != nil {
		d.t.Fatal(err)
	}
	d.logs = map[string]*Log{}
	d.sum = mustOpenSummary(d.t, d.root, d.io, nil)
}

// crash abandons every log (a kill -9: the files stay as they are), and
// reads the summary again.
func (d *summaryDir) crash() {
	for _, l := range d.logs {
		(&testLog{Log: l, t: d.t}).crash()
	}
	d.logs = map[string]*Log{}
	d.sum.Close()
	d.sum = mustOpenSummary(d.t, d.root, d.io, nil)
}

// live reports whether the summary on disk has a live entry for name.
func (d *summaryDir) live(name string) bool {
	s, err := readDirSummary(d.root, nil, nil)
	if err != nil {
		return false
	}
	i, _, _ := s.live(name)
	return i >= 0
}

func (d *summaryDir) appendN(l *Log, n int) {
	d.t.Helper()
	for range n {
		if _, err := l.Append(makeBatch(d.t, batchSpec{n: 2, size: 100, ts: d.clock.Ms()}), 0); err != nil {
			d.t.Fatal(err)
		}
		d.clock.Advance(1)
	}
}

func batchesOf(t *testing.T, l *Log) [][]byte {
	t.Helper()
	return (&testLog{Log: l, t: t}).allBatches()
}

// TestDirSummaryCleanRestart: a shutdown writes no marker, one summary;
// the next start opens every written log pending from it, with its
// offsets and every batch, and a log untouched since keeps its entry
// through the next shutdown.
func TestDirSummaryCleanRestart(t *testing.T) {
	d := newSummaryDir(t)
	d.appendN(d.open("a-0"), 60) // several segments
	d.appendN(d.open("c-0"), 3)
	d.open("b-0") // never written: no directory, no entry
	want := map[string][][]byte{"a-0": batchesOf(t, d.logs["a-0"]), "c-0": batchesOf(t, d.logs["c-0"])}
	ends := map[string]int64{"a-0": d.logs["a-0"].LogEndOffset(), "c-0": d.logs["c-0"].LogEndOffset()}
	d.shutdown()

	for _, name := range []string{"a-0", "c-0"} {
		if _, err := os.Stat(filepath.Join(d.root, name, cleanShutdownFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s has a marker of its own after a summary shutdown: %v", name, err)
		}
		if !d.live(name) {
			t.Fatalf("no live entry for %s", name)
		}
	}
	if d.live("b-0") {
		t.Fatal("an entry for a log never written")
	}
	for round := range 2 { // the second round: nothing used in between
		for _, name := range []string{"a-0", "b-0", "c-0"} {
			d.open(name)
		}
		for _, name := range []string{"a-0", "c-0"} {
			l := d.logs[name]
			if !l.pending.Load() || l.LogEndOffset() != ends[name] {
				t.Fatalf("round %d: %s pending %v, log end %d; want pending at %d", round, name, l.pending.Load(), l.LogEndOffset(), ends[name])
			}
		}
		if !d.logs["b-0"].noDir {
			t.Fatal("b-0 has a directory")
		}
		if round == 1 {
			break
		}
		d.shutdown()
	}
	for name, w := range want {
		if got := batchesOf(t, d.logs[name]); !slices.EqualFunc(got, w, bytes.Equal) {
			t.Fatalf("%s: %d batches back, want %d", name, len(got), len(w))
		}
	}
}

// TestDirSummaryAppendThenCrash: an append voids no entry at once (the
// active segment's size tells), yet after a kill -9 the appended log's
// entry is voided when the summary is opened and the log is recovered
// with every batch, and the untouched one opens pending.
func TestDirSummaryAppendThenCrash(t *testing.T) {
	d := newSummaryDir(t)
	d.appendN(d.open("a-0"), 3)
	d.appendN(d.open("c-0"), 3)
	d.shutdown()
	a := d.open("a-0")
	d.open("c-0")
	d.appendN(a, 2)
	want := batchesOf(t, a)
	if !d.live("a-0") {
		t.Fatal("an append voided its entry durably; the next flush is to do it")
	}
	d.crash()
	// Opening the summary voided a-0's entry (its active segment grew),
	// once for every such log rather than one fdatasync each at Open.
	if d.live("a-0") || !d.live("c-0") {
		t.Fatalf("after the crash entries live: a-0 %v, c-0 %v; want false, true", d.live("a-0"), d.live("c-0"))
	}
	a, c := d.open("a-0"), d.open("c-0")
	if a.pending.Load() {
		t.Fatal("a log appended to after the summary opened pending from it")
	}
	if got := batchesOf(t, a); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("after the crash %d batches, want %d", len(got), len(want))
	}
	if !c.pending.Load() {
		t.Fatal("the untouched log did not open pending")
	}
}

// TestDirSummaryVoidsBeforeChanges: every change a marker would not
// describe voids the log's entry durably before it is made: a deletion of
// records, a roll, a flush after an append; a log deleted and created
// again voids it at Open.
func TestDirSummaryVoidsBeforeChanges(t *testing.T) {
	d := newSummaryDir(t)
	for _, name := range []string{"a-0", "c-0", "e-0", "g-0"} {
		d.appendN(d.open(name), 3)
	}
	d.shutdown()
	for _, name := range []string{"a-0", "c-0", "e-0", "g-0"} {
		d.open(name)
	}

	if _, err := d.logs["a-0"].DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	if d.live("a-0") {
		t.Fatal("DeleteRecordsBefore left the entry live")
	}

	c := d.logs["c-0"]
	if err := c.ensureLoaded(); err != nil {
		t.Fatal(err)
	}
	segs := len(c.segs)
	for len(c.segs) == segs {
		d.appendN(c, 1)
	}
	if d.live("c-0") {
		t.Fatal("a roll left the entry live")
	}

	e := d.logs["e-0"]
	d.appendN(e, 1)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if d.live("e-0") {
		t.Fatal("a flush after an append left the entry live")
	}

	// g-0 deleted while the broker was down (RemoveStray, a topic
	// recreated): Open of the name voids the entry before anything is
	// created under it.
	d.logs["g-0"].Close()
	delete(d.logs, "g-0")
	if err := os.RemoveAll(filepath.Join(d.root, "g-0")); err != nil {
		t.Fatal(err)
	}
	if !d.live("g-0") {
		t.Fatal("g-0 lost its entry before the test voided it")
	}
	d.open("g-0")
	if d.live("g-0") {
		t.Fatal("Open of a deleted log's name left its entry live")
	}

	d.crash()
	a := d.open("a-0")
	if a.pending.Load() || a.LogStartOffset() != 2 {
		t.Fatalf("a-0: pending %v, log start %d; want loaded at 2", a.pending.Load(), a.LogStartOffset())
	}
	for _, name := range []string{"c-0", "e-0"} {
		if l := d.open(name); l.pending.Load() {
			t.Fatalf("%s opened pending from a void entry", name)
		}
	}
	if g := d.open("g-0"); !g.noDir {
		t.Fatal("g-0 has a directory")
	}
}

// TestDirSummaryUnreadable: a summary that fails its checksum is ignored
// and removed (every log is recovered, with every batch), and a void byte
// torn into anything but the live one is void.
func TestDirSummaryUnreadable(t *testing.T) {
	d := newSummaryDir(t)
	d.appendN(d.open("a-0"), 20)
	d.appendN(d.open("c-0"), 3)
	want := batchesOf(t, d.logs["a-0"])
	d.shutdown()
	path := filepath.Join(d.root, dirSummaryFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	torn := slices.Clone(b)
	torn[len(torn)-1] = 0 // the last entry's void byte (c-0's or a-0's)
	if err := os.WriteFile(path, torn, 0o644); err != nil {
		t.Fatal(err)
	}
	if d.live("a-0") == d.live("c-0") {
		t.Fatal("a torn void byte: want exactly one entry live")
	}

	bad := slices.Clone(b)
	bad[bytes.Index(bad, []byte("a-0"))] = 'b' // the entry lines' checksum fails
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	d.sum = mustOpenSummary(d.t, d.root, d.io, nil)
	if d.live("a-0") || d.live("c-0") || d.live("b-0") {
		t.Fatal("a summary that fails its checksum was used")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unusable summary is still there: %v", err)
	}
	a := d.open("a-0")
	if a.pending.Load() {
		t.Fatal("opened pending without a summary")
	}
	if got := batchesOf(t, a); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("%d batches back, want %d", len(got), len(want))
	}
}

// TestDirSummaryVoidFails: a change whose void cannot be written (an I/O
// error) is not made, and is once the void goes through.
func TestDirSummaryVoidFails(t *testing.T) {
	d := newSummaryDir(t)
	d.appendN(d.open("a-0"), 3)
	d.shutdown()
	a := d.open("a-0")
	var mu sync.Mutex
	fail := true
	d.io.WriteAt = func(f *os.File, b []byte, off int64) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail && filepath.Base(f.Name()) == dirSummaryFile {
			return 0, syscall.EIO
		}
		return f.WriteAt(b, off)
	}
	if _, err := a.DeleteRecordsBefore(2); !errors.Is(err, ErrIO) {
		t.Fatalf("DeleteRecordsBefore with the void failing: %v, want ErrIO", err)
	}
	if a.LogStartOffset() != 0 || !d.live("a-0") {
		t.Fatalf("log start %d, entry live %v after the failure; want 0, live", a.LogStartOffset(), d.live("a-0"))
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if _, err := a.DeleteRecordsBefore(2); err != nil {
		t.Fatal(err)
	}
	if a.LogStartOffset() != 2 || d.live("a-0") {
		t.Fatalf("log start %d, entry live %v; want 2, void", a.LogStartOffset(), d.live("a-0"))
	}
}

// TestDirSummaryConcurrentVoids: voids from many logs at once, each
// waiting for its own to be durable, all reach the file.
func TestDirSummaryConcurrentVoids(t *testing.T) {
	d := newSummaryDir(t)
	names := make([]string, 40)
	for i := range names {
		names[i] = "t-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		d.appendN(d.open(names[i]), 1)
	}
	d.shutdown()
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	ls := make([]*Log, len(names))
	for i, name := range names {
		ls[i] = d.open(name)
	}
	for i := range names {
		wg.Go(func() {
			_, errs[i] = ls[i].DeleteRecordsBefore(1)
		})
	}
	wg.Wait()
	for i, name := range names {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if d.live(name) {
			t.Fatalf("%s still live", name)
		}
	}
}

// TestDirSummaryJournalReplay: after a clean restart from the summary, a
// log's journaled appends leave its segment as the summary says; after a
// kill -9 opening the summary with the journal voids the log's entry (the
// log is recovered, then replayed), and without it the log opens pending
// from the still-live entry and the replay loads it; either way every
// acknowledged batch is back.
func TestDirSummaryJournalReplay(t *testing.T) {
	for _, withJournal := range []bool{true, false} {
		t.Run(map[bool]string{true: "voided", false: "pending"}[withJournal], func(t *testing.T) {
			testDirSummaryJournalReplay(t, withJournal)
		})
	}
}

func testDirSummaryJournalReplay(t *testing.T, withJournal bool) {
	f := newJFix(t)
	sum := mustOpenSummary(t, f.data, nil, f.j)
	open := func(name string) *testLog {
		t.Helper()
		cfg := testConfig()
		cfg.SegmentBytes = 1 << 20
		tl := &testLog{t: t, dir: filepath.Join(f.data, name), cfg: cfg, clock: f.clock,
			opts: Options{Now: f.clock.Now, Journal: f.j, TopicID: [16]byte{1}, Lazy: true, DeferLoad: true, Summary: sum}}
		tl.reopen2()
		if _, err := f.j.Replay(tl.Log); err != nil {
			t.Fatalf("replay into %s: %v", name, err)
		}
		f.logs[name] = tl
		return tl
	}
	a := open("a-0")
	want := appendJ(t, a, 10, 1000)
	finish, err := a.CloseDeferSync()
	if err != nil || finish == nil {
		t.Fatalf("CloseDeferSync: %v", err)
	}
	if err := SyncFS(f.data); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if err := sum.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := f.j.Close(); err != nil {
		t.Fatal(err)
	}
	f.logs = map[string]*testLog{}

	f.openJournal()
	sum = mustOpenSummary(t, f.data, nil, f.j)
	a = open("a-0")
	if !a.pending.Load() {
		t.Fatal("not pending after a clean shutdown")
	}
	size := segmentFileSize(t, a)
	want = append(want, appendJ(t, a, 5, 2000)...)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if segmentFileSize(t, a) != size {
		t.Fatal("the journaled appends reached the segment; the test wants them in the journal only")
	}
	f.crash()

	f.openJournal()
	j := f.j
	if !withJournal {
		j = nil
	}
	sum = mustOpenSummary(t, f.data, nil, j)
	if i, _, _ := sum.live("a-0"); (i >= 0) == withJournal {
		t.Fatalf("entry live %v after the crash; want %v", i >= 0, !withJournal)
	}
	a = open("a-0")
	sameBatches(t, "after the kill -9", a.allBatches(), want)
	if got := a.LogEndOffset(); got != 22 {
		t.Fatalf("log end %d, want 22", got)
	}
}

// TestDirSummaryVoidsUnwritable: when opening the summary cannot write the
// voids of the logs changed since, it is removed and nothing in it is
// trusted; when it cannot be removed either, OpenDirSummary fails.
func TestDirSummaryVoidsUnwritable(t *testing.T) {
	for _, removable := range []bool{true, false} {
		d := newSummaryDir(t)
		a := d.open("a-0")
		d.appendN(a, 3)
		d.appendN(d.open("c-0"), 3)
		d.shutdown()
		d.appendN(d.open("a-0"), 1)
		d.open("c-0")
		for _, l := range d.logs { // a kill -9; the summary is read below
			(&testLog{Log: l, t: t}).crash()
		}
		d.logs = map[string]*Log{}
		d.sum.Close()
		d.io.WriteAt = func(f *os.File, b []byte, off int64) (int, error) {
			if filepath.Base(f.Name()) == dirSummaryFile {
				return 0, syscall.EIO
			}
			return f.WriteAt(b, off)
		}
		if !removable {
			d.io.SyncPath = func(path string) error {
				if path == d.root {
					return syscall.EIO
				}
				return nil
			}
		}
		s, err := OpenDirSummary(d.root, d.io, nil, nil)
		if removable != (err == nil) {
			t.Fatalf("removable %v: OpenDirSummary error %v", removable, err)
		}
		if i, _, _ := s.live("c-0"); i >= 0 {
			t.Fatalf("removable %v: an entry of a summary whose voids could not be written is live", removable)
		}
		if _, err := os.Stat(filepath.Join(d.root, dirSummaryFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("removable %v: the summary is still there: %v", removable, err)
		}
		d.io.WriteAt, d.io.SyncPath = nil, nil
	}
}
