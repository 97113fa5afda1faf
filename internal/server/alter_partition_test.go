package server

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/brokerlink"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata/loader"
)

// followerQuorum makes a controller that is not the active one: node 1 is.
type followerQuorum struct{}

func (followerQuorum) Propose(context.Context, []byte) (uint64, error) {
	return 0, controller.ErrNotController
}
func (followerQuorum) Leader() int32                 { return 1 }
func (followerQuorum) State() controller.QuorumState { return controller.QuorumState{LeaderID: 1} }

// TestAlterPartitionRemote: a broker that is not the active controller
// sends AlterPartition to it, and gets the answers back as the
// controller's own errors.
func TestAlterPartitionRemote(t *testing.T) {
	n := startNode(t, "", nil)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctxT(t), 2, 1, nil, "ap"); err != nil {
		t.Fatal(err)
	}
	// A second controller with node 1's image, not active.
	images := loader.New(loader.Options{Logger: testLogger(t)})
	other := controller.NewReplicated(images, controller.Options{NodeID: 2, Logger: testLogger(t)})
	other.Attach(followerQuorum{})
	snap, err := n.srv.loader.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := images.Restore(snap, uint64(n.srv.loader.Image().Offset)); err != nil {
		t.Fatal(err)
	}
	rpc := kclient.New(forwardTimeout)
	defer rpc.Close()
	cc := brokerlink.New(brokerlink.Config{NodeID: 2, Local: other, Quorum: followerQuorum{}, Images: images, Client: rpc, Logger: testLogger(t)})
	img := other.Image()
	tp := img.Topics["ap"]
	epoch := img.Brokers[1].Epoch
	p0, p1 := tp.Partitions[0], tp.Partitions[1]
	res, err := cc.AlterPartition(ctxT(t), controller.AlterPartitionRequest{BrokerID: 1, BrokerEpoch: epoch, Partitions: []controller.AlterPartitionItem{
		{Topic: "ap", Partition: 0, LeaderEpoch: p0.LeaderEpoch, PartitionEpoch: p0.PartitionEpoch, NewISR: []int32{1}},
		{TopicID: tp.ID, Partition: 1, LeaderEpoch: p1.LeaderEpoch + 1, PartitionEpoch: p1.PartitionEpoch, NewISR: []int32{1}},
		{Topic: "nope", Partition: 0, NewISR: []int32{1}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Leader != 1 || len(res[0].ISR) != 1 || res[0].PartitionEpoch != p0.PartitionEpoch {
		t.Errorf("partition 0: %+v", res[0])
	}
	if !errors.Is(res[1].Err, controller.ErrFencedLeaderEpoch) || !errors.Is(res[1].Err, kerr.FencedLeaderEpoch) {
		t.Errorf("partition 1 with a stale leader epoch: %v", res[1].Err)
	}
	if !errors.Is(res[2].Err, controller.ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", res[2].Err)
	}
	_, err = cc.AlterPartition(ctxT(t), controller.AlterPartitionRequest{BrokerID: 1, BrokerEpoch: epoch + 7, Partitions: []controller.AlterPartitionItem{
		{TopicID: tp.ID, Partition: 0, NewISR: []int32{1}},
	}})
	if !errors.Is(err, controller.ErrStaleBrokerEpoch) {
		t.Errorf("stale broker epoch: %v", err)
	}
}
