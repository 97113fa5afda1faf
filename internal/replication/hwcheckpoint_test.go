package replication

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
)

// The high watermarks go to one checkpoint in the data dir, not to a file
// per log; a restart takes them from there (a log's own file, if an
// earlier version left one, is not read), and falls back to the logs'
// files when the data dir's is unreadable.
func TestHighWatermarkDataDirCheckpoint(t *testing.T) {
	dir := t.TempDir()
	open := func() *Manager {
		return NewManager(Options{NodeID: 1, DataDir: dir, Static: staticConfig(t, false), Logger: slog.New(slog.DiscardHandler)})
	}
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", metadata.NewUUID(), 1, 1)...)
	m := open()
	m.Apply(im0, im1)
	for range 3 {
		if _, err := mustGet(t, m, "a", 0).Append(buildBatch(t, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := mustGet(t, m, "a", 1).Append(buildBatch(t, 2)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	hws, err := readHWCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if hws[TopicPartition{"a", 0}] != 3 || hws[TopicPartition{"a", 1}] != 2 || len(hws) != 2 {
		t.Fatalf("data dir checkpoint %v, want a-0: 3, a-1: 2", hws)
	}
	for _, p := range []string{"a-0", "a-1"} {
		if _, err := os.Stat(filepath.Join(dir, p, hwCheckpointName)); !os.IsNotExist(err) {
			t.Fatalf("%s has a high watermark file of its own: %v", p, err)
		}
	}

	// A stale file of the log's own (an earlier version's) is not read.
	perLog := filepath.Join(dir, "a-0", hwCheckpointName)
	if err := os.WriteFile(perLog, []byte("0\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = open()
	m.Apply(im0, im1)
	// (What the log loaded: as the only in-sync replica the partition
	// then moves its high watermark to the log end at once.)
	if hw := mustGet(t, m, "a", 0).log.HighWatermarkCheckpoint(); hw != 3 {
		t.Fatalf("a-0 high watermark %d after a restart, want 3 (from the data dir's checkpoint)", hw)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// An unreadable data dir checkpoint: each log reads its own.
	if err := os.WriteFile(filepath.Join(dir, hwCheckpointName), []byte("0\n2\na 0 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = open()
	defer m.Close()
	m.Apply(im0, im1)
	if hw := mustGet(t, m, "a", 0).log.HighWatermarkCheckpoint(); hw != 1 {
		t.Fatalf("a-0 high watermark %d with the data dir's checkpoint unreadable, want 1 (its own file)", hw)
	}
}

func TestParseHWCheckpoint(t *testing.T) {
	good := encodeHWCheckpoint(map[TopicPartition]int64{{"b", 1}: 7, {"a", 10}: 0, {"a", 2}: 5})
	if string(good) != "0\n3\na 2 5\na 10 0\nb 1 7\n" {
		t.Fatalf("encoded %q", good)
	}
	if hws, err := parseHWCheckpoint(good); err != nil || len(hws) != 3 || hws[TopicPartition{"b", 1}] != 7 {
		t.Fatalf("parse %q: %v %v", good, hws, err)
	}
	for _, bad := range []string{"", "1\n0\n", "0\n", "0\n-1\n", "0\n1\n", "0\n1\na 0\n", "0\n1\na x 1\n", "0\n1\na 0 -3\n", "0\n1\na 0 1\nb 0 1\n", "0\n1\na -1 1\n"} {
		if hws, err := parseHWCheckpoint([]byte(bad)); err == nil {
			t.Errorf("parse %q: %v, want an error", bad, hws)
		}
	}
}
