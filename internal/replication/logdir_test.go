package replication

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

func TestLogDirOfflineUntilProbe(t *testing.T) {
	now := time.Unix(100, 0)
	logs := &logLines{}
	probeErr := error(syscall.ENOSPC)
	probes := 0
	id := metadata.NewUUID()
	d := NewLogDir(LogDirConfig{ID: id, Path: "/data", ProbeEvery: time.Second,
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Probe:  func() error { probes++; return probeErr }})
	if d.Offline() != nil || d.IsOffline() || probes != 0 {
		t.Fatal("a new directory is offline, or probed")
	}
	cause := errors.New("write: no space left on device")
	for range 3 {
		d.Fail("append", cause, false)
	}
	if got := d.Offline(); !slices.Equal(got, []metadata.UUID{id}) || probes != 0 {
		t.Fatalf("Offline after failures = %v (%d probes), want [id] and no probe before ProbeEvery", got, probes)
	}
	if n := logs.count("level=ERROR", "log directory offline", "dir=/data", "op=append", "no space left"); n != 1 {
		t.Fatalf("%d ERROR lines for three failures, want 1:\n%s", n, logs.buf.String())
	}
	now = now.Add(999 * time.Millisecond)
	if d.Offline() == nil || probes != 0 {
		t.Fatalf("probed %d times before ProbeEvery", probes)
	}
	// The probe fails: offline, and the next probe waits again.
	now = now.Add(time.Millisecond)
	if d.Offline() == nil || probes != 1 {
		t.Fatalf("after a failed probe: offline=%t, %d probes", d.IsOffline(), probes)
	}
	if d.Offline() == nil || probes != 1 {
		t.Fatalf("probed again at once (%d probes)", probes)
	}
	// A failure resets the wait.
	now = now.Add(900 * time.Millisecond)
	d.Fail("fetch append", cause, false)
	now = now.Add(900 * time.Millisecond)
	if d.Offline() == nil || probes != 1 {
		t.Fatalf("probed %d times within ProbeEvery of a failure", probes)
	}
	now = now.Add(100 * time.Millisecond)
	probeErr = nil
	if got := d.Offline(); got != nil || d.IsOffline() || d.Cause() != nil || probes != 2 {
		t.Fatalf("after a probe that succeeded: Offline=%v, %d probes", got, probes)
	}
	if n := logs.count("level=INFO", "log directory online again", "failures=4"); n != 1 {
		t.Fatalf("%d online lines, want 1:\n%s", n, logs.buf.String())
	}
	// A second episode logs again.
	d.Fail("append", cause, false)
	if n := logs.count("level=ERROR", "log directory offline"); n != 2 {
		t.Fatalf("%d ERROR lines after a second episode, want 2", n)
	}
}

func TestLogDirPermanent(t *testing.T) {
	now := time.Unix(100, 0)
	probes := 0
	d := NewLogDir(LogDirConfig{ID: metadata.NewUUID(), Path: "/data", Now: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler), Probe: func() error { probes++; return nil }})
	d.Fail("append", errors.New("no space"), false)
	d.Fail("fsync", errors.New("input/output error"), true)
	now = now.Add(time.Hour)
	if d.Offline() == nil || probes != 0 {
		t.Fatalf("a directory with a log failed for good came back (%d probes)", probes)
	}
	var nilDir *LogDir
	nilDir.Fail("append", errors.New("x"), false)
	if nilDir.Offline() != nil || nilDir.IsOffline() {
		t.Fatal("a nil LogDir is offline")
	}
}

func TestLogDirProbeWrite(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(100, 0)
	d := NewLogDir(LogDirConfig{ID: metadata.NewUUID(), Path: dir, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	d.Fail("append", errors.New("no space"), false)
	now = now.Add(time.Second)
	if d.Offline() != nil {
		t.Fatal("the probe write in a working directory failed")
	}
	if _, err := os.Stat(filepath.Join(dir, LogDirProbeFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the probe file was left behind: %v", err)
	}
	// A directory that cannot be written to stays offline.
	gone := NewLogDir(LogDirConfig{ID: metadata.NewUUID(), Path: filepath.Join(dir, "missing"), Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	gone.Fail("append", errors.New("no space"), false)
	now = now.Add(time.Second)
	if gone.Offline() == nil {
		t.Fatal("a probe in a missing directory succeeded")
	}
}

// TestLogDirFromPartitions: the partitions' storage failures take the
// directory offline, a failed fsync for good.
func TestLogDirFromPartitions(t *testing.T) {
	now := time.Unix(100, 0)
	ld := NewLogDir(LogDirConfig{ID: metadata.NewUUID(), Path: "/data", Now: func() time.Time { return now },
		Logger: slog.New(slog.DiscardHandler), Probe: func() error { return nil }})
	m, d, _ := faultyManagerDir(t, true, ld)
	p := mustGet(t, m, "t", 0)
	if _, err := p.AppendAsLeader(buildBatch(t, 1), -1); err != nil || ld.IsOffline() {
		t.Fatalf("append: %v, offline %t", err, ld.IsOffline())
	}
	// A verdict on the data is no failure of the directory.
	if _, err := p.AppendAsLeader([]byte{1, 2, 3}, -1); err == nil || ld.IsOffline() {
		t.Fatalf("a malformed batch: %v, offline %t", err, ld.IsOffline())
	}
	d.set(true, false)
	if _, err := p.AppendAsLeader(buildBatch(t, 1), -1); !errors.Is(err, ErrStorage) || !ld.IsOffline() || !errors.Is(ld.Cause(), syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, offline %t, cause %v", err, ld.IsOffline(), ld.Cause())
	}
	d.set(false, false)
	now = now.Add(time.Second)
	if ld.Offline() != nil {
		t.Fatal("still offline after a probe succeeded")
	}
	// A failed fsync fails the log, and the directory, until a restart.
	d.set(false, true)
	res, err := p.AppendAsLeader(buildBatch(t, 1), -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(res.LastOffset); !errors.Is(err, ErrStorage) {
		t.Fatalf("Sync with a failing fsync: %v", err)
	}
	d.set(false, false)
	now = now.Add(time.Hour)
	if ld.Offline() == nil {
		t.Fatal("the directory came back after a failed fsync")
	}
}
