package replication

import (
	"log/slog"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// TestJournalOnlyWithoutFollowers: with the shared journal, a produced
// batch of a partition with one replica is journaled (its segment write
// comes later); one of a partition with followers goes to its segment
// at once, since the followers' fetches would write the tail right away.
func TestJournalOnlyWithoutFollowers(t *testing.T) {
	dir := t.TempDir()
	j, err := storage.OpenJournal(dir, storage.JournalOptions{NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{NodeID: 1, DataDir: dir, Static: staticConfig(t, false), Journal: j,
		Logger: slog.New(slog.DiscardHandler), Reserved: map[string]bool{"__cluster_metadata-0": true}})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	id := metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, &metadata.TopicRecord{Name: "a", ID: id},
		&metadata.PartitionRecord{TopicID: id, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1},
		&metadata.PartitionRecord{TopicID: id, Partition: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}, Leader: 1})
	m.Apply(im0, im1)
	for _, c := range []struct {
		partition int32
		journaled bool
	}{{0, true}, {1, false}} {
		p := mustGet(t, m, "a", c.partition)
		res, err := p.AppendAsLeaderJournaled(buildBatch(t, 2), 1)
		if err != nil {
			t.Fatal(err)
		}
		if res.Journaled != c.journaled {
			t.Errorf("partition %d (replicas %v): journaled %v, want %v", c.partition, p.Replicas(), res.Journaled, c.journaled)
		}
		if err := p.SyncJournal(); err != nil {
			t.Fatal(err)
		}
	}
}
