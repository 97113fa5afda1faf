package broker

// AlterPartition (v0..3, KIP-497): a partition leader asks the active
// controller to change the partition's ISR. Inter-broker: served but not
// advertised in ApiVersions; a node that is not the active controller
// answers NOT_CONTROLLER. v0..1 name topics, v2+ topic ids; v0..2 send
// NewIsr, v3 NewIsrWithEpochs (KIP-903). v0 has no INELIGIBLE_REPLICA:
// it gets OPERATION_NOT_ATTEMPTED, as from Kafka.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleAlterPartition(ctx context.Context, r *request) {
	req := r.body.(*kmsg.AlterPartitionRequest)
	resp := kmsg.NewPtrAlterPartitionResponse()
	if !b.opts.Controller.IsActive() {
		resp.ErrorCode = kerr.NotController.Code
		r.respond(resp)
		return
	}
	creq := controller.AlterPartitionRequest{BrokerID: req.BrokerID, BrokerEpoch: req.BrokerEpoch}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			item := controller.AlterPartitionItem{Partition: p.Partition, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.NewISR}
			if r.version >= 2 {
				item.TopicID = metadata.UUID(t.TopicID)
			} else {
				item.Topic = t.Topic
			}
			if r.version >= 3 {
				item.NewISR = make([]int32, len(p.NewEpochISR))
				item.NewISREpochs = make([]int64, len(p.NewEpochISR))
				for i, e := range p.NewEpochISR {
					item.NewISR[i], item.NewISREpochs[i] = e.BrokerID, e.BrokerEpoch
				}
			}
			creq.Partitions = append(creq.Partitions, item)
		}
	}
	results, err := b.opts.Controller.AlterPartition(ctx, creq)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		b.log.Info("AlterPartition refused", "node", req.BrokerID, "err", err)
		r.respond(resp)
		return
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionResponseTopic()
		rt.Topic, rt.TopidID = t.Topic, t.TopicID
		for range t.Partitions {
			res := results[i]
			i++
			rp := kmsg.NewAlterPartitionResponseTopicPartition()
			rp.Partition = res.Partition
			rp.ErrorCode = alterPartitionCode(res.Err, r.version)
			if res.Err == nil {
				rp.LeaderID, rp.LeaderEpoch, rp.ISR, rp.PartitionEpoch = res.Leader, res.LeaderEpoch, res.ISR, res.PartitionEpoch
			} else {
				b.log.Info("AlterPartition refused", "node", req.BrokerID, "topic", res.Topic, "partition", res.Partition, "err", res.Err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}

// alterPartitionCode is errorCode with the older versions' substitutes.
func alterPartitionCode(err error, version int16) int16 {
	switch {
	case version < 1 && errors.Is(err, controller.ErrIneligibleReplica):
		return kerr.OperationNotAttempted.Code
	case version < 2 && errors.Is(err, controller.ErrUnknownTopicID):
		return kerr.UnknownTopicOrPartition.Code
	}
	return errorCode(err)
}
