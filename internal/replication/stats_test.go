package replication

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

// TestCounters: produce appends count bytes and messages in, failures
// count per partition and broker-wide, consumer reads count bytes out once
// sent, follower reads count as replication, and fsyncs reach the observer.
func TestCounters(t *testing.T) {
	m := newManager(t, true)
	var fsyncs atomic.Int64
	m.SetFsyncObserver(func(time.Duration) { fsyncs.Add(1) })
	im0 := metadata.Empty()
	m.Apply(im0, mustApply(t, im0, topicRecs("t", metadata.NewUUID(), 1)...))
	p := mustGet(t, m, "t", 0)

	batch := buildBatch(t, 3)
	res, err := p.AppendAsLeader(batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(res.LastOffset); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AppendAsLeader([]byte("not a batch"), 1); err == nil {
		t.Fatal("garbage appended")
	}
	got := p.Counters()
	want := PartitionCounters{BytesIn: int64(len(batch)), MessagesIn: 3, ProduceFailures: 1}
	if got != want {
		t.Fatalf("partition counters %+v, want %+v", got, want)
	}

	fr, err := p.Read(FetchParams{Offset: 0, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Counters().BytesOut != 0 {
		t.Fatal("bytes out counted before the response was sent")
	}
	fr.Sent()
	fr.Release()
	if _, err := p.Read(FetchParams{Offset: 99, MaxBytes: 1 << 20, ReplicaID: -1, CurrentLeaderEpoch: -1}); err == nil {
		t.Fatal("read past the log end succeeded")
	}
	got = p.Counters()
	if got.BytesOut != fr.Records.Size || got.BytesOut == 0 || got.FetchFailures != 1 {
		t.Fatalf("after a read of %d bytes and a failed read: %+v", fr.Records.Size, got)
	}
	b := m.Counters()
	if b.BytesIn != int64(len(batch)) || b.MessagesIn != 3 || b.BytesOut != fr.Records.Size || b.ProduceFailures != 1 ||
		b.FetchFailures != 1 || b.StorageErrors != 0 || b.ReplicationBytesOut != 0 {
		t.Fatalf("broker counters %+v", b)
	}
	if fsyncs.Load() == 0 {
		t.Fatal("no fsync observed with log.fsync=always")
	}
}
