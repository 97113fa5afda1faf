package controller

import (
	"context"
	"errors"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
)

// TestAlterPartitionBatch: partitions of one request succeed or fail on
// their own; the successful ones commit in one entry.
func TestAlterPartitionBatch(t *testing.T) {
	l, c, cl := openCounting(t, t.TempDir())
	defer l.Close()
	if _, err := c.Bootstrap("c", "h1", 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterBroker(BrokerRegistration{NodeID: 2, Host: "h2", Port: 1, Incarnation: metadata.UUID{1}}); err != nil {
		t.Fatal(err)
	}
	res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: -1, ReplicationFactor: -1, Assignment: map[int32][]int32{0: {1, 2}, 1: {1, 2}, 2: {2, 1}}}}, false)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	id := res[0].ID
	before := cl.appends
	out, err := c.AlterPartition(context.Background(), AlterPartitionRequest{BrokerID: 1, BrokerEpoch: 0, Partitions: []AlterPartitionItem{
		{TopicID: id, Partition: 0, NewISR: []int32{1}},
		{TopicID: id, Partition: 1, NewISR: []int32{1}},
		{TopicID: id, Partition: 2, NewISR: []int32{2}},               // led by 2
		{TopicID: id, Partition: 0, NewISR: []int32{1}},               // twice
		{TopicID: metadata.UUID{9}, Partition: 0, NewISR: []int32{1}}, // unknown id
		{Topic: "a", Partition: 1, NewISR: []int32{1}},                // by name: the same partition as item 1
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []error{nil, nil, ErrFencedLeaderEpoch, ErrInvalidRequest, ErrUnknownTopicID, ErrInvalidRequest}
	for i, w := range want {
		if w == nil && out[i].Err != nil || w != nil && !errors.Is(out[i].Err, w) {
			t.Errorf("item %d: %v, want %v", i, out[i].Err, w)
		}
	}
	if out[0].PartitionEpoch != 1 || len(out[0].ISR) != 1 || out[0].Leader != 1 {
		t.Errorf("item 0 state %+v", out[0].PartitionState)
	}
	if n := cl.appends - before; n != 1 {
		t.Errorf("%d entries written, want 1", n)
	}
	p := c.Image().Topics["a"].Partitions
	if len(p[0].ISR) != 1 || len(p[1].ISR) != 1 || len(p[2].ISR) != 2 {
		t.Errorf("ISRs %v %v %v", p[0].ISR, p[1].ISR, p[2].ISR)
	}
}
