package replication

import (
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
)

func fetcherAddr(m *Manager, leader int32) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.fetchers[leader]
	if f == nil {
		return "", false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr, true
}

// TestManagerFollowsBrokerMoves: a follower whose leader has no
// registration fetches from no one until the leader registers, and
// follows its leader to a new address, though the partition itself did
// not change.
func TestManagerFollowsBrokerMoves(t *testing.T) {
	m := newManager(t, false)
	id := metadata.UUID{7}
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, &metadata.TopicRecord{Name: "t", ID: id},
		&metadata.PartitionRecord{TopicID: id, Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 2})
	m.Apply(im0, im1)
	if p := mustGet(t, m, "t", 0); p.IsLeader() {
		t.Fatal("node 1 leads a partition led by 2")
	}
	if _, ok := fetcherAddr(m, 2); ok {
		t.Fatal("a fetcher for a leader without an address")
	}
	im2 := mustApply(t, im1, &metadata.RegisterBrokerRecord{NodeID: 2, Epoch: 1, Host: "127.0.0.1", Port: 1})
	m.Apply(im1, im2)
	if addr, ok := fetcherAddr(m, 2); !ok || addr != "127.0.0.1:1" {
		t.Fatalf("after the leader registered: fetcher %q %v, want 127.0.0.1:1", addr, ok)
	}
	im3 := mustApply(t, im2, &metadata.RegisterBrokerRecord{NodeID: 2, Epoch: 2, Host: "127.0.0.1", Port: 2})
	m.Apply(im2, im3)
	if addr, ok := fetcherAddr(m, 2); !ok || addr != "127.0.0.1:2" {
		t.Fatalf("after the leader moved: fetcher %q %v, want 127.0.0.1:2", addr, ok)
	}
	// The leader moves to node 1: no more fetcher.
	im4 := mustApply(t, im3, &metadata.PartitionRecord{TopicID: id, Replicas: []int32{2, 1}, ISR: []int32{2, 1}, Leader: 1, LeaderEpoch: 1, PartitionEpoch: 1})
	m.Apply(im3, im4)
	if !mustGet(t, m, "t", 0).IsLeader() {
		t.Fatal("node 1 does not lead after the election")
	}
	if _, ok := fetcherAddr(m, 2); ok {
		t.Fatal("the fetcher for node 2 outlived its last partition")
	}
}

// TestManagerThroughLoader: the manager as a metadata loader publisher:
// WaitApplied returns once the loader's goroutine has applied an entry,
// after AfterApply saw its image; a deletion removes the replica's log.
func TestManagerThroughLoader(t *testing.T) {
	var afterApply atomic.Int64
	afterApply.Store(-1)
	m := NewManager(Options{NodeID: 1, DataDir: t.TempDir(), Static: staticConfig(t, false), Logger: slog.New(slog.DiscardHandler),
		AfterApply: func(img *metadata.Image) { afterApply.Store(img.Offset) }})
	defer m.Close()
	l := loader.New(loader.Options{})
	l.Start()
	defer l.Close()
	apply := func(recs ...metadata.Record) int64 {
		t.Helper()
		data, err := metadata.EncodeEntry(recs)
		if err != nil {
			t.Fatal(err)
		}
		off := l.Image().Offset + 1
		if err := l.Apply(uint64(off), data); err != nil {
			t.Fatal(err)
		}
		return off
	}
	// Entries before the manager registers reach it as one delta.
	apply(topicRecs("a", metadata.UUID{1}, 1, 1)...)
	off := apply(topicRecs("b", metadata.UUID{2}, 1)...)
	l.Register(m)
	if !m.WaitApplied(off, 10*time.Second) {
		t.Fatalf("WaitApplied(%d) timed out", off)
	}
	if got := afterApply.Load(); got != off {
		t.Fatalf("AfterApply saw offset %d before WaitApplied returned, want %d", got, off)
	}
	for _, tp := range []TopicPartition{{"a", 0}, {"a", 1}, {"b", 0}} {
		if !mustGet(t, m, tp.Topic, tp.Partition).IsLeader() {
			t.Fatalf("%s not led", tp.DirName())
		}
	}
	off = apply(&metadata.RemoveTopicRecord{ID: metadata.UUID{1}})
	if !m.WaitApplied(off, 10*time.Second) {
		t.Fatalf("WaitApplied(%d) timed out", off)
	}
	if p, err := m.Get("a", 0); p != nil || err != nil {
		t.Fatalf("a-0 after its topic was deleted: %v %v", p, err)
	}
	if exists(t, filepath.Join(m.opts.DataDir, "a-0")) {
		t.Fatal("a-0's directory is still there")
	}
	mustGet(t, m, "b", 0)
}
