package broker

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/record"
)

// TestProduceToManyNewPartitions: one request's first writes to many new
// partitions (each creates its log, storage/lazy.go) land at offset 0 of
// each, in the right log; a partition whose log cannot be created answers
// KAFKA_STORAGE_ERROR, alone, and takes the next write once it can be
// created.
func TestProduceToManyNewPartitions(t *testing.T) {
	b := newTestBroker(t)
	const parts = 40
	if res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: "many", Partitions: parts, ReplicationFactor: 1}}, false); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if !b.opts.Partitions.WaitApplied(b.opts.Controller.Image().Offset, 10*time.Second) {
		t.Fatal("the partitions did not follow the image")
	}
	dataDir := b.opts.Static.DataDir()
	// A file where partition 7's directory would go: its log cannot be
	// created.
	blocker := filepath.Join(dataDir, "many-7")
	if err := os.WriteFile(blocker, []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	produce := func(only ...int32) *kmsg.ProduceResponse {
		t.Helper()
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.ProduceRequestTopic{Topic: "many"}
		for p := range int32(parts) {
			if len(only) > 0 && p != only[0] {
				continue
			}
			batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(),
				[]record.Record{{Value: fmt.Appendf(nil, "p%d", p)}, {OffsetDelta: 1, Value: fmt.Appendf(nil, "p%d again", p)}})
			if err != nil {
				t.Fatal(err)
			}
			rt.Partitions = append(rt.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: batch})
		}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		return roundTrip(t, b, req).(*kmsg.ProduceResponse)
	}
	resp := produce()
	for _, rp := range resp.Topics[0].Partitions {
		if rp.Partition == 7 {
			if rp.ErrorCode != kerr.KafkaStorageError.Code {
				t.Fatalf("partition 7 (log cannot be created): %v, want KAFKA_STORAGE_ERROR", kerr.ErrorForCode(rp.ErrorCode))
			}
			continue
		}
		if rp.ErrorCode != 0 || rp.BaseOffset != 0 {
			t.Fatalf("partition %d: %v at offset %d, want offset 0", rp.Partition, kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
		}
	}
	for p := range int32(parts) {
		if p == 7 {
			continue
		}
		pt, err := b.opts.Partitions.Get("many", p)
		if err != nil || pt == nil {
			t.Fatalf("partition %d: %v", p, err)
		}
		if end := pt.LogEndOffset(); end != 2 {
			t.Fatalf("partition %d: log end %d, want 2", p, end)
		}
		seg := filepath.Join(dataDir, fmt.Sprintf("many-%d", p), fmt.Sprintf("%020d.log", 0))
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Appendf(nil, "p%d again", p)
		if !bytes.Contains(data, want) || bytes.Contains(data, fmt.Appendf(nil, "p%d again", (p+1)%parts)) {
			t.Fatalf("partition %d's segment does not hold its own records", p)
		}
	}
	// Space for partition 7 again: its next write creates the log.
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	rp := produce(7).Topics[0].Partitions[0]
	if rp.ErrorCode != 0 || rp.BaseOffset != 0 {
		t.Fatalf("partition 7 after the blocker went: %v at offset %d, want offset 0", kerr.ErrorForCode(rp.ErrorCode), rp.BaseOffset)
	}
}
