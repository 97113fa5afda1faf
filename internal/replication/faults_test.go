package replication

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// logLines collects log records as text, safe for concurrent use.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many lines hold every one of subs.
func (l *logLines) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.buf.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// disk is an injected disk that can be full (writes fail with ENOSPC after
// writing part of the data) or fail fsyncs with EIO.
type disk struct {
	mu        sync.Mutex
	full      bool
	failSyncs bool
}

func (d *disk) set(full, failSyncs bool) {
	d.mu.Lock()
	d.full, d.failSyncs = full, failSyncs
	d.mu.Unlock()
}

func (d *disk) io() *storage.FileIO {
	return &storage.FileIO{
		WriteAt: func(f *os.File, b []byte, off int64) (int, error) {
			d.mu.Lock()
			full := d.full
			d.mu.Unlock()
			if !full {
				return f.WriteAt(b, off)
			}
			n, _ := f.WriteAt(b[:len(b)/3], off)
			return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		},
		Sync: func(f *os.File) error {
			d.mu.Lock()
			fail := d.failSyncs
			d.mu.Unlock()
			if fail {
				return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
			}
			return f.Sync()
		},
	}
}

func faultyManager(t *testing.T, fsyncAlways bool) (*Manager, *disk, *logLines) {
	t.Helper()
	return faultyManagerDir(t, fsyncAlways, nil)
}

// faultyManagerDir is faultyManager whose manager reports to ld.
func faultyManagerDir(t *testing.T, fsyncAlways bool, ld *LogDir) (*Manager, *disk, *logLines) {
	t.Helper()
	d := &disk{}
	logs := &logLines{}
	m := NewManager(Options{
		LogDir:    ld,
		NodeID:    1,
		DataDir:   t.TempDir(),
		Static:    staticConfig(t, fsyncAlways),
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Reserved:  map[string]bool{"__cluster_metadata-0": true},
		StorageIO: d.io(),
	})
	t.Cleanup(func() { m.Close() })
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("t", metadata.NewUUID(), 1, 1)...)
	m.Apply(im0, im1)
	return m, d, logs
}

func TestFullDiskPartitionErrorState(t *testing.T) {
	m, d, logs := faultyManager(t, false)
	p0, p1 := mustGet(t, m, "t", 0), mustGet(t, m, "t", 1)
	if _, err := p0.AppendAsLeader(buildBatch(t, 2), -1); err != nil {
		t.Fatal(err)
	}

	d.set(true, false)
	for i := range 3 {
		_, err := p0.AppendAsLeader(buildBatch(t, 2), -1)
		if !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("append %d on a full disk: %v, want ErrStorage wrapping ENOSPC", i, err)
		}
	}
	if _, err := p1.AppendAsLeader(buildBatch(t, 1), -1); !errors.Is(err, ErrStorage) {
		t.Fatalf("append to another partition on the full disk: %v", err)
	}
	if n := logs.count("level=ERROR", "partition storage failed", "partition=t-0", "no space left on device", "dir="); n != 1 {
		t.Fatalf("%d ERROR lines for t-0, want 1 for three failed appends:\n%s", n, logs.buf.String())
	}
	if n := logs.count("level=ERROR", "partition=t-1"); n != 1 {
		t.Fatalf("%d ERROR lines for t-1, want 1", n)
	}
	if c := m.Counters(); c.StorageErrors != 4 {
		t.Fatalf("StorageErrors = %d, want 4", c.StorageErrors)
	}
	if f := m.StorageFailed(); len(f) != 2 {
		t.Fatalf("StorageFailed = %v, want both partitions", f)
	}
	if p0.LogEndOffset() != 2 || p0.HighWatermark() != 2 {
		t.Fatalf("log end %d, HW %d after failed appends, want 2, 2", p0.LogEndOffset(), p0.HighWatermark())
	}

	// Space returns: the next append succeeds where the last whole batch
	// ended, and the partition says it recovered, once.
	d.set(false, false)
	res, err := p0.AppendAsLeader(buildBatch(t, 2), -1)
	if err != nil || res.BaseOffset != 2 {
		t.Fatalf("append after space returned: %+v, %v", res, err)
	}
	if _, err := p0.AppendAsLeader(buildBatch(t, 1), -1); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("level=INFO", "partition storage recovered", "partition=t-0"); n != 1 {
		t.Fatalf("%d recovered lines for t-0, want 1", n)
	}
	if p0.StorageError() != nil || p1.StorageError() == nil {
		t.Fatalf("error states: t-0 %v (want none), t-1 %v (want one)", p0.StorageError(), p1.StorageError())
	}
	if f := m.StorageFailed(); len(f) != 1 {
		t.Fatalf("StorageFailed = %v, want t-1 only", f)
	}
	// A second episode logs again: once per episode, not once per life.
	d.set(true, false)
	if _, err := p0.AppendAsLeader(buildBatch(t, 1), -1); !errors.Is(err, ErrStorage) {
		t.Fatal(err)
	}
	if n := logs.count("level=ERROR", "partition=t-0"); n != 2 {
		t.Fatalf("%d ERROR lines for t-0 after a second episode, want 2", n)
	}
	d.set(false, false)
	var got int
	err = p0.ForEachBatch(0, func(b []byte) error { got++; return nil })
	if err != nil || got != 3 || p0.LogEndOffset() != 5 {
		t.Fatalf("%d batches to offset %d (%v), want 3 batches to 5", got, p0.LogEndOffset(), err)
	}
}

func TestFailedFsyncKeepsPartitionInError(t *testing.T) {
	m, d, logs := faultyManager(t, true)
	p := mustGet(t, m, "t", 0)
	res, err := p.AppendAsLeader(buildBatch(t, 2), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	d.set(false, true)
	res, err = p.AppendAsLeader(buildBatch(t, 2), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(res.LastOffset); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync with a failing fsync: %v, want ErrStorage wrapping EIO", err)
	}
	if p.HighWatermark() != 2 {
		t.Fatalf("HW moved to %d past a failed fsync", p.HighWatermark())
	}
	// The disk is fine again, but the log failed for good: appends keep
	// failing (and are not logged again) until a restart.
	d.set(false, false)
	if _, err := p.AppendAsLeader(buildBatch(t, 1), -1); !errors.Is(err, ErrStorage) {
		t.Fatalf("append after a failed fsync: %v, want ErrStorage", err)
	}
	if err := p.Sync(res.LastOffset); !errors.Is(err, ErrStorage) {
		t.Fatalf("Sync after a failed fsync: %v, want ErrStorage", err)
	}
	if p.HighWatermark() != 2 {
		t.Fatalf("HW moved to %d past a failed fsync", p.HighWatermark())
	}
	if n := logs.count("level=ERROR", "partition=t-0", "after a restart"); n != 1 {
		t.Fatalf("%d ERROR lines, want 1:\n%s", n, logs.buf.String())
	}
	if p2 := mustGet(t, m, "t", 1); p2.StorageError() != nil {
		t.Fatal("another partition went into error")
	} else if _, err := p2.AppendAsLeader(buildBatch(t, 1), -1); err != nil {
		t.Fatalf("another partition refuses appends: %v", err)
	}
}

func TestMaintenanceClearsOnlyItsOwnError(t *testing.T) {
	m, d, logs := faultyManager(t, false)
	p := mustGet(t, m, "t", 0)
	ckpt := "high watermark checkpoint"
	err := p.noteMaintenance(ckpt, fmt.Errorf("%w: write replication-offset-checkpoint: %w", storage.ErrIO, syscall.ENOSPC))
	if !errors.Is(err, ErrStorage) || p.StorageError() == nil {
		t.Fatalf("a failed checkpoint: %v, state %v", err, p.StorageError())
	}
	if p.noteMaintenance("flush", nil); p.StorageError() == nil {
		t.Fatal("another operation's success cleared a checkpoint failure")
	}
	if p.noteMaintenance(ckpt, nil); p.StorageError() != nil {
		t.Fatal("the checkpoint's success did not clear its failure")
	}
	// An append failure is cleared by an append only.
	d.set(true, false)
	if _, err := p.AppendAsLeader(buildBatch(t, 1), -1); !errors.Is(err, ErrStorage) {
		t.Fatal(err)
	}
	d.set(false, false)
	if p.noteMaintenance(ckpt, nil); p.StorageError() == nil {
		t.Fatal("a checkpoint's success cleared an append failure")
	}
	if _, err := p.AppendAsLeader(buildBatch(t, 1), -1); err != nil || p.StorageError() != nil {
		t.Fatalf("append after space returned: %v, state %v", err, p.StorageError())
	}
	if e, i := logs.count("level=ERROR", "partition=t-0"), logs.count("level=INFO", "recovered", "partition=t-0"); e != 2 || i != 2 {
		t.Fatalf("%d ERROR and %d recovered lines, want 2 and 2", e, i)
	}
	// A failed log is not cleared by a maintenance no-op.
	d.set(false, true)
	if err := p.noteMaintenance("flush", p.log.Flush()); !errors.Is(err, ErrStorage) {
		t.Fatalf("flush with failing fsyncs: %v", err)
	}
	d.set(false, false)
	if p.noteMaintenance("flush", nil); p.StorageError() == nil {
		t.Fatal("a no-op flush cleared the failure of a failed log")
	}
}
