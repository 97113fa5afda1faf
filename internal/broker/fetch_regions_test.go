package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchRegionBudget: a fetch over more partitions with data than
// maxFetchRegions returns records for maxFetchRegions of them and the
// others without records and without an error (each region pins a
// descriptor until the response is sent); the next fetch gets the rest.
func TestFetchRegionBudget(t *testing.T) {
	const parts = maxFetchRegions + 10
	b := newTestBroker(t)
	conn := aliceConn()
	ct := v(kmsg.NewPtrCreateTopicsRequest(), 5)
	ct.TimeoutMillis = 10000
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "many", NumPartitions: parts, ReplicationFactor: 1}}
	resp, err := serveAsClient(t, b, conn, "admin", ct)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic: %v", kerr.ErrorForCode(code))
	}
	deadline := time.Now().Add(10 * time.Second)
	for p := int32(0); p < parts; {
		code := produceOne(t, b, conn, "many", p, []byte("x"))
		switch {
		case code == 0:
			p++
		case time.Now().After(deadline):
			t.Fatalf("produce to partition %d: %v", p, kerr.ErrorForCode(code))
		default:
			time.Sleep(10 * time.Millisecond) // the partitions are being opened
		}
	}
	fetch := func(offsets map[int32]int64) map[int32]bool {
		t.Helper()
		req := v(kmsg.NewPtrFetchRequest(), 12)
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 64<<20, -1
		rt := kmsg.FetchRequestTopic{Topic: "many"}
		for p := range int32(parts) {
			rt.Partitions = append(rt.Partitions, kmsg.FetchRequestTopicPartition{Partition: p, FetchOffset: offsets[p], PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1})
		}
		req.Topics = []kmsg.FetchRequestTopic{rt}
		resp, err := serveAsClient(t, b, conn, "reader", req)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int32]bool{}
		for _, tp := range resp.(*kmsg.FetchResponse).Topics {
			for _, p := range tp.Partitions {
				if p.ErrorCode != 0 {
					t.Fatalf("partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
				if len(p.RecordBatches) > 0 {
					got[p.Partition] = true
				}
			}
		}
		return got
	}
	first := fetch(nil)
	if len(first) != maxFetchRegions {
		t.Fatalf("first fetch: records from %d partitions, want %d", len(first), maxFetchRegions)
	}
	next := map[int32]int64{}
	for p := range first {
		next[p] = 1
	}
	second := fetch(next)
	if len(second) != parts-maxFetchRegions {
		t.Fatalf("second fetch: records from %d partitions, want the other %d", len(second), parts-maxFetchRegions)
	}
	for p := range second {
		if first[p] {
			t.Fatalf("partition %d returned twice", p)
		}
	}
}
