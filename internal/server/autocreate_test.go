package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFranzGoFirstProduceToNewTopic: auto-creation answers the first
// Metadata LEADER_NOT_AVAILABLE (as Kafka); a franz-go producer allowed to
// auto-create still gets its first record to a never-seen topic acked on
// the first try, promptly.
func TestFranzGoFirstProduceToNewTopic(t *testing.T) {
	n := startNode(t, "", map[string]string{"num.partitions": "2"})
	cl := n.client(kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("never-seen"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first"), Partition: 1}).First()
	if err != nil {
		t.Fatalf("first produce to a new topic: %v", err)
	}
	if r.Offset != 0 || r.Partition != 1 {
		t.Fatalf("first record at %d/%d", r.Partition, r.Offset)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("first produce took %v", d)
	}
	c := n.client(kgo.ConsumeTopics("never-seen"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := c.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "first" {
		t.Fatalf("consumed %+v", recs)
	}
}

// TestAutoCreateFailureReported: a creation that cannot succeed (the name
// collides with an existing topic's) is answered LEADER_NOT_AVAILABLE
// when it starts, then reported once with its error, then tried again.
func TestAutoCreateFailureReported(t *testing.T) {
	n := startNode(t, "", nil)
	if _, err := n.admin().CreateTopic(ctxT(t), 1, 1, nil, "a.b"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	name := "a_b"
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 9
	req.AllowAutoTopicCreation = true
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
	code := func() int16 { return c.roundTrip(req).(*kmsg.MetadataResponse).Topics[0].ErrorCode }
	if got := code(); got != kerr.LeaderNotAvailable.Code {
		t.Fatalf("first answer %v", kerr.ErrorForCode(got))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := code()
		if got == kerr.InvalidTopicException.Code {
			break
		}
		if got != kerr.LeaderNotAvailable.Code || time.Now().After(deadline) {
			t.Fatalf("while the creation fails: %v", kerr.ErrorForCode(got))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := code(); got != kerr.LeaderNotAvailable.Code {
		t.Fatalf("after the failure was reported: %v, want a new attempt", kerr.ErrorForCode(got))
	}
}
