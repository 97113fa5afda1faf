package server

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestConsumerOffsetsReadLikeBurrow reads __consumer_offsets as Burrow and
// other lag monitors do, with a plain consumer from the start, decoding
// each record with Kafka's formats (kmsg's OffsetCommitKey/Value and
// GroupMetadataKey/Value, which are generated from Kafka's JSON): a simple
// group's committed offsets and a consumer group's metadata (protocol type,
// generation, members) come back as written.
func TestConsumerOffsetsReadLikeBurrow(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	// A consumer group with a member: its GroupMetadata record.
	prod := n.client(kgo.DefaultProduceTopic("orders"))
	for i := range 10 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := n.client(kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("shipping"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit())
	for got := 0; got < 10; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 10", got)
		}
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	// A simple group's commits (no member), as kafka-consumer-groups.sh
	// --reset-offsets writes them.
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "orders", Partition: 0, At: 7, LeaderEpoch: -1, Metadata: "m0"})
	offs.Add(kadm.Offset{Topic: "orders", Partition: 1, At: 3, LeaderEpoch: -1, Metadata: "m1"})
	resp, err := adm.CommitOffsets(ctx, "billing", offs)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}

	type commit struct {
		offset   int64
		metadata string
	}
	commits := map[string]map[int32]commit{} // group -> partition of orders -> last commit
	var shipping *kmsg.GroupMetadataValue
	reader := n.client(kgo.ConsumeTopics("__consumer_offsets"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.Now().Add(30 * time.Second)
	done := func() bool {
		s := commits["shipping"]
		return len(commits["billing"]) == 2 && s[0].offset+s[1].offset == 10 && shipping != nil
	}
	for !done() && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := reader.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Key) < 2 || r.Value == nil {
				return
			}
			switch v := int16(binary.BigEndian.Uint16(r.Key)); v {
			case 0, 1:
				var k kmsg.OffsetCommitKey
				var val kmsg.OffsetCommitValue
				if err := k.ReadFrom(r.Key); err != nil {
					t.Fatalf("offset commit key: %v", err)
				}
				if err := val.ReadFrom(r.Value); err != nil {
					t.Fatalf("offset commit value of %s: %v", k.Group, err)
				}
				if k.Topic != "orders" {
					return
				}
				if val.CommitTimestamp <= 0 {
					t.Errorf("%s %s/%d committed at %d", k.Group, k.Topic, k.Partition, val.CommitTimestamp)
				}
				if commits[k.Group] == nil {
					commits[k.Group] = map[int32]commit{}
				}
				commits[k.Group][k.Partition] = commit{val.Offset, val.Metadata}
			case 2:
				var k kmsg.GroupMetadataKey
				if err := k.ReadFrom(r.Key); err != nil {
					t.Fatalf("group metadata key: %v", err)
				}
				val := kmsg.NewGroupMetadataValue()
				if err := val.ReadFrom(r.Value); err != nil {
					t.Fatalf("group metadata value of %s: %v", k.Group, err)
				}
				if k.Group == "shipping" && len(val.Members) > 0 {
					shipping = &val
				}
			default:
				t.Fatalf("a __consumer_offsets key of version %d", v)
			}
		})
	}
	if b := commits["billing"]; b[0] != (commit{7, "m0"}) || b[1] != (commit{3, "m1"}) {
		t.Fatalf("billing's commits read back as %+v", b)
	}
	if s := commits["shipping"]; s[0].offset+s[1].offset != 10 {
		t.Fatalf("shipping's commits read back as %+v, want offsets adding up to the 10 records", s)
	}
	if shipping == nil {
		t.Fatal("no GroupMetadata record with members for shipping")
	}
	if shipping.ProtocolType != "consumer" || shipping.Generation < 1 || shipping.Protocol == nil || len(shipping.Members) != 1 ||
		shipping.Members[0].ClientID == "" || len(shipping.Members[0].Assignment) == 0 {
		t.Fatalf("shipping's group metadata: %+v", shipping)
	}
}
