package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
)

func staticConfig(t *testing.T, fsyncAlways bool) *config.Broker {
	t.Helper()
	fsync := config.FsyncInterval
	if fsyncAlways {
		fsync = config.FsyncAlways
	}
	b, err := config.LoadBroker("", nil, map[string]string{"log.fsync": fsync})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newManager(t *testing.T, fsyncAlways bool) *Manager {
	t.Helper()
	m := NewManager(Options{
		NodeID:   1,
		DataDir:  t.TempDir(),
		Static:   staticConfig(t, fsyncAlways),
		Logger:   slog.New(slog.DiscardHandler),
		Reserved: map[string]bool{"__cluster_metadata-0": true},
	})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

func mustApply(t *testing.T, im *metadata.Image, recs ...metadata.Record) *metadata.Image {
	t.Helper()
	next, err := im.Apply(im.Offset+1, recs)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

// topicRecs creates a topic whose partition i is led by leaders[i].
func topicRecs(name string, id metadata.UUID, leaders ...int32) []metadata.Record {
	recs := []metadata.Record{&metadata.TopicRecord{Name: name, ID: id}}
	for i, l := range leaders {
		recs = append(recs, &metadata.PartitionRecord{TopicID: id, Partition: int32(i), Replicas: []int32{l}, ISR: []int32{l}, Leader: l})
	}
	return recs
}

func strp(s string) *string { return &s }

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func mustGet(t *testing.T, m *Manager, topic string, p int32) *Partition {
	t.Helper()
	part, err := m.Get(topic, p)
	if err != nil || part == nil {
		t.Fatalf("Get(%s, %d) = %v, %v", topic, p, part, err)
	}
	return part
}

func TestManagerApplyLifecycle(t *testing.T) {
	m := newManager(t, false)
	dir := m.opts.DataDir
	id := metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, append(topicRecs("a", id, 1, 2, 1),
		&metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("1000")})...)
	m.Apply(im0, im1)

	p0, p2 := mustGet(t, m, "a", 0), mustGet(t, m, "a", 2)
	if p1, err := m.Get("a", 1); p1 != nil || err != nil {
		t.Fatalf("partition led elsewhere: Get = %v, %v", p1, err)
	}
	if p, err := m.Get("nope", 0); p != nil || err != nil {
		t.Fatalf("unknown topic: Get = %v, %v", p, err)
	}
	// Logs are created on disk by their first write (storage.Options.Lazy).
	if exists(t, filepath.Join(dir, "a-0")) || exists(t, filepath.Join(dir, "a-1")) || exists(t, filepath.Join(dir, "a-2")) {
		t.Fatal("partition directories created before any write")
	}
	for _, p := range []*Partition{p0, p2} {
		if _, err := p.Append(buildBatch(t, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if !exists(t, filepath.Join(dir, "a-0")) || exists(t, filepath.Join(dir, "a-1")) || !exists(t, filepath.Join(dir, "a-2")) {
		t.Fatal("wrong partition directories")
	}
	if p0.Topic != "a" || p0.TopicID != id || p0.Index != 0 || p2.Index != 2 || len(m.All()) != 2 {
		t.Fatalf("p0 = %+v, %d hosted", p0, len(m.All()))
	}
	if got := p0.Config().RetentionMs; got != 1000 {
		t.Fatalf("RetentionMs = %d, want 1000", got)
	}

	// A config change reaches the hosted partitions; they are not reopened.
	im2 := mustApply(t, im1,
		&metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("2000")},
		&metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, ResourceName: "", Name: "log.segment.bytes", Value: strp("4096")})
	m.Apply(im1, im2)
	if mustGet(t, m, "a", 0) != p0 {
		t.Fatal("partition reopened on a config change")
	}
	if c := p0.Config(); c.RetentionMs != 2000 || c.SegmentBytes != 4096 || p2.Config().RetentionMs != 2000 {
		t.Fatalf("config after change: retention %d segment %d", c.RetentionMs, c.SegmentBytes)
	}
	// A broker-level dynamic config for this node overrides the default.
	im3 := mustApply(t, im2, &metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, ResourceName: "1", Name: "log.segment.bytes", Value: strp("8192")})
	m.Apply(im2, im3)
	if got := p0.Config().SegmentBytes; got != 8192 {
		t.Fatalf("SegmentBytes = %d, want 8192", got)
	}

	// A new leader epoch reaches the partition.
	im4 := mustApply(t, im3, &metadata.PartitionRecord{TopicID: id, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 3})
	m.Apply(im3, im4)
	if p0.LeaderEpoch() != 3 || p2.LeaderEpoch() != 0 {
		t.Fatalf("leader epochs %d %d", p0.LeaderEpoch(), p2.LeaderEpoch())
	}

	// Removing the topic deletes its logs and wakes waiters.
	wait := p0.Wait()
	im5 := mustApply(t, im4, &metadata.RemoveTopicRecord{ID: id})
	m.Apply(im4, im5)
	select {
	case <-wait:
	default:
		t.Fatal("waiter not woken when the partition went away")
	}
	if p, err := m.Get("a", 0); p != nil || err != nil {
		t.Fatalf("after delete: Get = %v, %v", p, err)
	}
	if len(m.All()) != 0 {
		t.Fatalf("%d partitions still hosted", len(m.All()))
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("data dir still holds %v", ents)
	}
}

func TestManagerRecreateTopic(t *testing.T) {
	m := newManager(t, false)
	id1, id2 := metadata.NewUUID(), metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", id1, 1)...)
	m.Apply(im0, im1)
	old := mustGet(t, m, "a", 0)
	if _, err := old.Append(buildBatch(t, 3)); err != nil {
		t.Fatal(err)
	}
	// Deleted and recreated under the same name in one step.
	im2 := mustApply(t, im1, append([]metadata.Record{&metadata.RemoveTopicRecord{ID: id1}}, topicRecs("a", id2, 1)...)...)
	m.Apply(im1, im2)
	p := mustGet(t, m, "a", 0)
	if p == old || p.TopicID != id2 || p.LogEndOffset() != 0 || p.HighWatermark() != 0 {
		t.Fatalf("recreated partition id %v leo %d", p.TopicID, p.LogEndOffset())
	}
}

// A topic deleted and created again under the same name while this broker
// was down: at start its directory holds the earlier topic's log, which is
// removed, and the partition starts empty with the new topic id, whether
// the earlier log was shut down cleanly (its entry in the data dir's
// summary names the topic id), by a version whose per-log marker does not,
// or uncleanly (no summary, no marker).
func TestManagerTopicRecreatedWhileDown(t *testing.T) {
	for _, shutdown := range []string{"clean", "older-marker", "crash"} {
		t.Run(shutdown, func(t *testing.T) {
			dir := t.TempDir()
			open := func() *Manager {
				return NewManager(Options{NodeID: 1, DataDir: dir, Static: staticConfig(t, false), Logger: slog.New(slog.DiscardHandler)})
			}
			id1, id2 := metadata.NewUUID(), metadata.NewUUID()
			im0 := metadata.Empty()
			im1 := mustApply(t, im0, topicRecs("a", id1, 1)...)
			m := open()
			m.Apply(im0, im1)
			for range 3 {
				if _, err := mustGet(t, m, "a", 0).Append(buildBatch(t, 2)); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			summary := filepath.Join(dir, "clean-shutdown-summary")
			b, err := os.ReadFile(summary)
			if err != nil {
				t.Fatal(err)
			}
			var entry []string
			for line := range strings.Lines(string(b)) {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "a-0" {
					entry = f[1:]
				}
			}
			if len(entry) != 6 {
				t.Fatalf("clean shutdown summary %q: want a-0 with 6 fields", b)
			}
			switch shutdown {
			case "older-marker":
				// An older broker's shutdown: a marker of its own, without
				// the topic id, and no summary.
				marker := filepath.Join(dir, "a-0", ".clean-shutdown")
				if err := os.WriteFile(marker, []byte("strata-clean-shutdown 1\n"+strings.Join(entry[:5], " ")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(summary); err != nil {
					t.Fatal(err)
				}
			case "crash":
				if err := os.Remove(summary); err != nil {
					t.Fatal(err)
				}
			}

			im2 := mustApply(t, im0, topicRecs("a", id2, 1)...)
			m = open()
			defer m.Close()
			m.Apply(im0, im2)
			p := mustGet(t, m, "a", 0)
			if p.TopicID != id2 || p.LogEndOffset() != 0 || p.HighWatermark() != 0 {
				t.Fatalf("partition of the new topic: id %v (want %v), log end %d, high watermark %d; want an empty log",
					p.TopicID, id2, p.LogEndOffset(), p.HighWatermark())
			}
			if _, err := p.Append(buildBatch(t, 1)); err != nil {
				t.Fatal(err)
			}
			b, err = os.ReadFile(filepath.Join(dir, "a-0", "partition.metadata"))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := id2.MarshalText()
			if !strings.Contains(string(b), string(want)) {
				t.Fatalf("partition.metadata %q does not name the new topic id %s", b, want)
			}
		})
	}
}

func TestRemoveStray(t *testing.T) {
	m := newManager(t, false)
	dir := m.opts.DataDir
	mkdir := func(name string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"gone-0", "gone-12", "a-1", "x-0.123-delete", "__cluster_metadata-0", "notapartition", "foo-bar", "-1"} {
		mkdir(d)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone-3"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.properties"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	id := metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", id, 1, 2)...)
	m.Apply(im0, im1)
	// a-0 is created on disk by its first write.
	if _, err := mustGet(t, m, "a", 0).Append(buildBatch(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveStray(im1); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"a-0": true, "__cluster_metadata-0": true, "notapartition": true, "foo-bar": true, "-1": true,
		"gone-3": true, "meta.properties": true,
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		got[e.Name()] = true
	}
	for n := range want {
		if !got[n] {
			t.Errorf("%s was removed", n)
		}
	}
	for n := range got {
		if !want[n] {
			t.Errorf("%s was kept", n)
		}
	}
	// The hosted partition still works.
	if _, err := mustGet(t, m, "a", 0).Append(buildBatch(t, 1)); err != nil {
		t.Fatal(err)
	}
}

func writePartitionMetadata(t *testing.T, dir string, body string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "partition.metadata"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestManagerRemovesLogOfOtherTopic(t *testing.T) {
	m := newManager(t, false)
	dir := m.opts.DataDir
	same, other := metadata.NewUUID(), metadata.NewUUID()
	// b-0 belongs to an earlier topic "b"; a-0 to this very topic "a".
	writePartitionMetadata(t, filepath.Join(dir, "b-0"), "version: 0\ntopic_id: "+other.String()+"\n")
	writePartitionMetadata(t, filepath.Join(dir, "a-0"), "version: 0\ntopic_id: "+same.String()+"\n")
	// c-0 has an unreadable topic id: it is left alone, and the log refuses to open.
	writePartitionMetadata(t, filepath.Join(dir, "c-0"), "version: 0\ntopic_id: !!\n")

	bID, cID := metadata.NewUUID(), metadata.NewUUID()
	im0 := metadata.Empty()
	recs := topicRecs("a", same, 1)
	recs = append(recs, topicRecs("b", bID, 1)...)
	recs = append(recs, topicRecs("c", cID, 1)...)
	im1 := mustApply(t, im0, recs...)
	m.Apply(im0, im1)

	mustGet(t, m, "a", 0)
	if !exists(t, filepath.Join(dir, "a-0", "marker")) {
		t.Fatal("log of the same topic id was removed")
	}
	pb := mustGet(t, m, "b", 0)
	if exists(t, filepath.Join(dir, "b-0", "marker")) {
		t.Fatal("log of another topic id was kept")
	}
	// The new log is created on disk by its first write.
	if _, err := pb.Append(buildBatch(t, 1)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "b-0", "partition.metadata"))
	if err != nil || !strings.Contains(string(b), bID.String()) {
		t.Fatalf("partition.metadata = %q, %v; want id %s", b, err, bID)
	}
	if _, err := m.Get("c", 0); !errors.Is(err, ErrStorage) {
		t.Fatalf("Get(c, 0) error %v, want ErrStorage", err)
	}
	if !exists(t, filepath.Join(dir, "c-0", "marker")) {
		t.Fatal("log with an unreadable topic id was removed")
	}
}

func TestManagerOpenFailure(t *testing.T) {
	m := newManager(t, false)
	dir := m.opts.DataDir
	// a-0 is a regular file: its log cannot be opened.
	if err := os.WriteFile(filepath.Join(dir, "a-0"), []byte("not a dir"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", id, 1, 1)...)
	m.Apply(im0, im1)
	p, err := m.Get("a", 0)
	if p != nil || !errors.Is(err, ErrStorage) || !strings.Contains(err.Error(), "a-0") {
		t.Fatalf("Get(a, 0) = %v, %v; want ErrStorage naming a-0", p, err)
	}
	mustGet(t, m, "a", 1) // the other partition is fine
	if len(m.All()) != 1 {
		t.Fatalf("%d hosted", len(m.All()))
	}
	// A later Apply does not retry or change the failed partition.
	im2 := mustApply(t, im1, &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "a", Name: "retention.ms", Value: strp("5")})
	m.Apply(im1, im2)
	if _, err := m.Get("a", 0); !errors.Is(err, ErrStorage) {
		t.Fatalf("after config change: %v", err)
	}
	// RemoveStray keeps it.
	if err := m.RemoveStray(im2); err != nil {
		t.Fatal(err)
	}
	if !exists(t, filepath.Join(dir, "a-0")) {
		t.Fatal("RemoveStray removed the failed partition's file")
	}
	// Deleting the topic forgets the failure.
	im3 := mustApply(t, im2, &metadata.RemoveTopicRecord{ID: id})
	m.Apply(im2, im3)
	if p, err := m.Get("a", 0); p != nil || err != nil {
		t.Fatalf("after delete: Get = %v, %v", p, err)
	}
	if exists(t, filepath.Join(dir, "a-1")) {
		t.Fatal("a-1 not deleted")
	}
}

func TestManagerClose(t *testing.T) {
	m := NewManager(Options{NodeID: 1, DataDir: t.TempDir(), Static: staticConfig(t, false), Logger: slog.New(slog.DiscardHandler)})
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", metadata.NewUUID(), 1)...)
	m.Apply(im0, im1)
	p := mustGet(t, m, "a", 0)
	wait := p.Wait()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait:
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken on Close")
	}
	if len(m.All()) != 0 {
		t.Fatal("partitions hosted after Close")
	}
	// Apply after Close does nothing.
	im2 := mustApply(t, im1, topicRecs("b", metadata.NewUUID(), 1)...)
	m.Apply(im1, im2)
	if p, _ := m.Get("b", 0); p != nil {
		t.Fatal("Apply after Close opened a partition")
	}
	// The log was closed cleanly: appending fails.
	if _, err := p.Append(buildBatch(t, 1)); err == nil {
		t.Fatal("append to a closed partition succeeded")
	}
}

// TestManagerCloseBoundsErrors: when many logs cannot be closed cleanly
// (here their directories are gone; in the field, a full disk), Close
// names the first few and counts the rest, rather than one error per
// partition (at 100,000 partitions some 10 MB in one log line).
func TestManagerCloseBoundsErrors(t *testing.T) {
	dir := t.TempDir()
	m := NewManager(Options{NodeID: 1, DataDir: dir, Static: staticConfig(t, false), Logger: slog.New(slog.DiscardHandler)})
	const n = closeErrorsShown + 3
	im0 := metadata.Empty()
	leaders := make([]int32, n)
	for i := range leaders {
		leaders[i] = 1
	}
	im1 := mustApply(t, im0, topicRecs("a", metadata.NewUUID(), leaders...)...)
	m.Apply(im0, im1)
	for i := range n {
		p := mustGet(t, m, "a", int32(i))
		if _, err := p.Append(buildBatch(t, 1)); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("a-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	err := m.Close()
	if err == nil {
		t.Fatal("Close succeeded with every log directory gone")
	}
	msg := err.Error()
	if got := strings.Count(msg, "close a-"); got != closeErrorsShown {
		t.Fatalf("%d partitions named, want %d:\n%s", got, closeErrorsShown, msg)
	}
	if !strings.Contains(msg, "and 3 more partitions not closed cleanly") {
		t.Fatalf("no count of the others:\n%s", msg)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the cause is lost: %v", err)
	}
}

func buildBatch(t testing.TB, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte("v")}
	}
	b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLeadershipMovesAwayAndBack: a partition whose leader becomes another
// broker (or none, when this one is fenced) stays hosted as a follower,
// keeps its data, refuses appends, survives RemoveStray, and leads again
// with its records when leadership returns with a new epoch.
func TestLeadershipMovesAwayAndBack(t *testing.T) {
	m := newManager(t, false)
	id := metadata.NewUUID()
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, topicRecs("a", id, 1)...)
	m.Apply(im0, im1)
	p := mustGet(t, m, "a", 0)
	if _, err := p.Append(buildBatch(t, 3)); err != nil {
		t.Fatal(err)
	}
	im2 := mustApply(t, im1, &metadata.PartitionRecord{TopicID: id, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: -1, LeaderEpoch: 1})
	m.Apply(im1, im2)
	if q := mustGet(t, m, "a", 0); q != p || q.IsLeader() {
		t.Fatalf("after leadership moved: same partition %t, leader %t; want the same follower", q == p, q.IsLeader())
	}
	if _, err := p.Append(buildBatch(t, 1)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("append to a partition no longer led here: %v, want ErrNotLeader", err)
	}
	if err := m.RemoveStray(im2); err != nil {
		t.Fatal(err)
	}
	if !exists(t, filepath.Join(m.opts.DataDir, "a-0")) {
		t.Fatal("RemoveStray removed the log of a partition this broker is a replica of")
	}
	im3 := mustApply(t, im2, &metadata.PartitionRecord{TopicID: id, Partition: 0, Replicas: []int32{1}, ISR: []int32{1}, Leader: 1, LeaderEpoch: 2})
	m.Apply(im2, im3)
	q := mustGet(t, m, "a", 0)
	if !q.IsLeader() || q.LogEndOffset() != 3 || q.LeaderEpoch() != 2 {
		t.Fatalf("leading again: leader %t, log end %d epoch %d, want true, 3 and 2", q.IsLeader(), q.LogEndOffset(), q.LeaderEpoch())
	}
}
