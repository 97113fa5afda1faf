package storage

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// diskModel is a FileIO that records, for each file, the size its last
// fsync (or a syncfs of the data dir) made durable, and counts the calls;
// machineCrash then cuts every file back to that size, as a power loss
// may: what was never made durable is gone.
type diskModel struct {
	data string

	mu        sync.Mutex
	synced    map[string]int64
	fsyncs    map[string]int // by file suffix: ".log", ".journal", ...
	syncfs    int
	failSyncs bool // the syncfs fails
}

func newDiskModel(data string) *diskModel {
	return &diskModel{data: data, synced: map[string]int64{}, fsyncs: map[string]int{}}
}

func (d *diskModel) record(path string) {
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		d.synced[path] = st.Size()
	}
}

func (d *diskModel) io() *FileIO {
	return &FileIO{
		Sync: func(f *os.File) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.fsyncs[filepath.Ext(f.Name())]++
			d.record(f.Name())
			return nil
		},
		SyncPath: func(path string) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.record(path)
			return nil
		},
		SyncFS: func(string) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.failSyncs {
				return syscall.EIO
			}
			d.syncfs++
			return filepath.WalkDir(d.data, func(path string, e fs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() {
					d.record(path)
				}
				return err
			})
		},
	}
}

func (d *diskModel) count(suffix string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fsyncs[suffix]
}

// machineCrash cuts every file of the data dir back to its durable size
// (an empty file if it was never made durable).
func (d *diskModel) machineCrash(t *testing.T) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	err := filepath.WalkDir(d.data, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		return os.Truncate(path, d.synced[path])
	})
	if err != nil {
		t.Fatal(err)
	}
}

// With log.fsync=always the journal is durable: a journaled batch is
// acknowledged after one fsync of the journal, no fsync of its segment; a
// batch written directly still fsyncs its segment; a journal file goes
// only after a syncfs made its tails' segment writes durable; and a
// machine crash that loses everything not made durable loses no batch
// that Sync returned for.
func TestJournalDurableMachineCrash(t *testing.T) {
	data := t.TempDir()
	disk := newDiskModel(data)
	f := &jfix{t: t, data: data, clock: newClock(), logs: map[string]*testLog{}, fileBytes: 2048, durable: true, io: disk.io()}
	f.start()
	a, b := f.open("a-0", 1), f.open("b-0", 2)
	acked := map[string][][]byte{}
	// produce appends to both logs, then syncs as the broker does (one
	// journal write for the request, then each partition's Sync).
	produce := func(count int, seed int64) {
		t.Helper()
		for _, tl := range []*testLog{a, b} {
			acked[filepath.Base(tl.dir)] = append(acked[filepath.Base(tl.dir)], appendJ(t, tl, count, seed)...)
		}
		if err := f.j.Sync(); err != nil {
			t.Fatal(err)
		}
		for _, tl := range []*testLog{a, b} {
			if err := tl.Sync(tl.LogEndOffset() - 1); err != nil {
				t.Fatal(err)
			}
			if d, leo := tl.DurableOffset(), tl.LogEndOffset(); d != leo {
				t.Fatalf("%s: durable offset %d after Sync, log end %d", tl.dir, d, leo)
			}
		}
	}

	produce(5, 100)
	if n := disk.count(logSuffix); n != 0 {
		t.Fatalf("%d segment fsyncs for journaled batches; the journal's fsync makes them durable", n)
	}
	if n := disk.count(journalSuffix); n == 0 {
		t.Fatal("no journal fsync before Sync returned")
	}

	// A batch too large for the journal goes to the segment directly:
	// its Sync fsyncs the segment.
	big := makeBatch(t, batchSpec{n: 1, size: journalDirectBytes, ts: 7})
	if res, err := a.AppendJournaled(big, 0); err != nil || res.Journaled {
		t.Fatalf("append of a large batch: journaled %v, err %v", res.Journaled, err)
	}
	acked["a-0"] = append(acked["a-0"], big)
	if err := a.Sync(a.LogEndOffset() - 1); err != nil {
		t.Fatal(err)
	}
	if n := disk.count(logSuffix); n != 1 {
		t.Fatalf("%d segment fsyncs after a direct write's Sync, want 1", n)
	}
	// A journaled batch after it, unsynced direct data none: the journal
	// alone again.
	produce(3, 200)
	if n := disk.count(logSuffix); n != 1 {
		t.Fatalf("%d segment fsyncs, want still 1", n)
	}

	// Enough rounds to fill several files; the tails go to their segments
	// as they age. While the syncfs fails, no file is removed.
	disk.mu.Lock()
	disk.failSyncs = true
	disk.mu.Unlock()
	for round := range 6 {
		produce(4, 300+int64(round)*10)
		f.clock.Advance(600 * time.Millisecond)
		f.j.Tick()
	}
	kept, err := f.j.Files()
	if err != nil {
		t.Fatal(err)
	}
	if first := journalStart(t, kept[0]); first != 0 {
		t.Fatalf("journal files %v: the first was removed while the syncfs failed", kept)
	}
	disk.mu.Lock()
	disk.failSyncs = false
	disk.mu.Unlock()
	f.clock.Advance(2 * time.Second)
	f.j.Tick()
	left, err := f.j.Files()
	if err != nil {
		t.Fatal(err)
	}
	if disk.syncfs == 0 || len(left) >= len(kept) {
		t.Fatalf("after a syncfs that works (%d): journal files %v, before %v; want older ones removed", disk.syncfs, left, kept)
	}

	// More batches, some tails written to their segments after the
	// syncfs (not durable there), the last ones only in the journal.
	produce(4, 500)
	f.clock.Advance(2 * time.Second)
	f.j.Tick()
	produce(2, 600)
	// A log first written after the last syncfs: its directory was
	// created by that write and never made durable.
	c := f.open("c-0", 3)
	acked["c-0"] = appendJ(t, c, 3, 700)
	if err := f.j.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := c.Sync(c.LogEndOffset() - 1); err != nil {
		t.Fatal(err)
	}
	f.crash()
	disk.machineCrash(t)
	if err := os.RemoveAll(filepath.Join(data, "c-0")); err != nil {
		t.Fatal(err)
	}

	f.openJournal()
	a, b, c = f.open("a-0", 1), f.open("b-0", 2), f.open("c-0", 3)
	sameBatches(t, "a after a machine crash", a.allBatches(), acked["a-0"])
	sameBatches(t, "b after a machine crash", b.allBatches(), acked["b-0"])
	sameBatches(t, "c, its directory lost, after a machine crash", c.allBatches(), acked["c-0"])
	for _, tl := range []*testLog{a, b, c} {
		if d, leo := tl.DurableOffset(), tl.LogEndOffset(); d != leo {
			t.Fatalf("%s: durable offset %d after the replay, log end %d: the high watermark would stay below what was acknowledged", tl.dir, d, leo)
		}
	}
}

// journalStart is the journal position a file name starts at.
func journalStart(t *testing.T, name string) int64 {
	t.Helper()
	pos, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(name), journalSuffix), 10, 64)
	if err != nil {
		t.Fatalf("journal file name %s: %v", name, err)
	}
	return pos
}
