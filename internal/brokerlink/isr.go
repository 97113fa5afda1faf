package brokerlink

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/replication"
)

// AlterPartition asks the active controller to change ISRs (KIP-497): the
// local controller when this node is the active one, else an
// AlterPartition request (v3, topic ids and the members' broker epochs)
// to the active controller. The error is for the whole request (not the
// controller, stale broker epoch, no answer); each result has its own.
// Errors are the controller's sentinels (controller.ErrFencedLeaderEpoch,
// ErrInvalidUpdateVersion, ErrIneligibleReplica, ErrStaleBrokerEpoch,
// ErrNotController, ...) wherever the request was served, so callers
// (the replication layer's ISR updates) test them with errors.Is alone.
func (l *Link) AlterPartition(ctx context.Context, r controller.AlterPartitionRequest) ([]controller.AlterPartitionResult, error) {
	if l.IsActive() {
		return l.cfg.Local.AlterPartition(ctx, r)
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(3)
	req.BrokerID, req.BrokerEpoch = r.BrokerID, r.BrokerEpoch
	img := l.Image()
	out := make([]controller.AlterPartitionResult, len(r.Partitions))
	index := map[metadata.UUID]int{} // topic id -> position in req.Topics
	for i, p := range r.Partitions {
		out[i].TopicID, out[i].Topic, out[i].Partition = p.TopicID, p.Topic, p.Partition
		if out[i].TopicID.IsZero() {
			if t := img.Topics[p.Topic]; t != nil {
				out[i].TopicID = t.ID
			}
		}
		if out[i].TopicID.IsZero() {
			out[i].Err = fmt.Errorf("%w: %q", controller.ErrUnknownTopic, p.Topic)
			continue
		}
		ti, ok := index[out[i].TopicID]
		if !ok {
			ti = len(req.Topics)
			index[out[i].TopicID] = ti
			t := kmsg.NewAlterPartitionRequestTopic()
			t.TopicID = out[i].TopicID
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = p.Partition, p.LeaderEpoch, p.PartitionEpoch
		for j, id := range p.NewISR {
			e := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
			e.BrokerID = id
			if p.NewISREpochs != nil && j < len(p.NewISREpochs) {
				e.BrokerEpoch = p.NewISREpochs[j]
			}
			rp.NewEpochISR = append(rp.NewEpochISR, e)
		}
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	resp, err := l.send(ctx, broker.InterBrokerClientID, req)
	if err != nil {
		return nil, err
	}
	ar := resp.(*kmsg.AlterPartitionResponse)
	if ar.ErrorCode != 0 {
		return nil, remoteError(ar.ErrorCode, nil)
	}
	type key struct {
		id metadata.UUID
		p  int32
	}
	answers := map[key]kmsg.AlterPartitionResponseTopicPartition{}
	for _, t := range ar.Topics {
		for _, p := range t.Partitions {
			answers[key{metadata.UUID(t.TopidID), p.Partition}] = p
		}
	}
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		a, ok := answers[key{out[i].TopicID, out[i].Partition}]
		switch {
		case !ok:
			out[i].Err = fmt.Errorf("%w: the controller did not answer for partition %s-%d", controller.ErrInvalidRequest, out[i].TopicID, out[i].Partition)
		case a.ErrorCode != 0:
			out[i].Err = remoteError(a.ErrorCode, nil)
		default:
			out[i].PartitionState = controller.PartitionState{Leader: a.LeaderID, LeaderEpoch: a.LeaderEpoch, ISR: a.ISR, PartitionEpoch: a.PartitionEpoch}
		}
	}
	return out, nil
}

// ISR carries a partition leader's ISR changes to the active controller
// (replication.Controller), as this broker's current registration.
type ISR struct{ L *Link }

var _ replication.Controller = ISR{}

// AlterPartition sends one partition's ISR change.
func (c ISR) AlterPartition(ctx context.Context, ch replication.ISRChange) (replication.ISRChange, error) {
	epoch := c.L.Epoch()
	if epoch < 0 {
		return ch, fmt.Errorf("%w: this broker is not registered yet", controller.ErrBrokerNotRegistered)
	}
	res, err := c.L.AlterPartition(ctx, controller.AlterPartitionRequest{
		BrokerID:    c.L.cfg.NodeID,
		BrokerEpoch: epoch,
		Partitions: []controller.AlterPartitionItem{{TopicID: ch.TopicID, Topic: ch.Topic, Partition: ch.Partition,
			LeaderEpoch: ch.LeaderEpoch, PartitionEpoch: ch.PartitionEpoch, NewISR: ch.ISR}},
	})
	if err != nil {
		return ch, err
	}
	if len(res) != 1 {
		return ch, fmt.Errorf("%w: AlterPartition answered %d partitions for one", controller.ErrInvalidRequest, len(res))
	}
	r := res[0]
	if r.Err != nil {
		return ch, r.Err
	}
	ch.LeaderEpoch, ch.PartitionEpoch, ch.ISR = r.LeaderEpoch, r.PartitionEpoch, r.ISR
	return ch, nil
}
