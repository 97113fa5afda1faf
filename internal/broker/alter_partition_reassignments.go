package broker

// AlterPartitionReassignments, v0..1 (KIP-455; v1 adds
// AllowReplicationFactorChange, KIP-860, true by default). A partition
// with replicas starts (or replaces) a reassignment to them; null
// replicas cancel it. See controller/reassign.go for the semantics. A
// metadata write: a broker that is not the active controller relays it
// there. A request-wide error (NOT_CONTROLLER, a failed commit) is the
// top-level error and every partition's, as Kafka's controller answers.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func (b *Broker) handleAlterPartitionReassignments(ctx context.Context, r *request) {
	req := r.body.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := kmsg.NewPtrAlterPartitionAssignmentsResponse()
	allowRF := true
	if r.version >= 1 {
		allowRF = req.AllowReplicationFactorChange
	}
	resp.AllowReplicationFactorChange = allowRF
	var reqs []controller.Reassignment
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			reqs = append(reqs, controller.Reassignment{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas})
		}
	}
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	results, err := b.opts.Controller.AlterPartitionReassignments(ctx, reqs, allowRF)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
		results = make([]controller.ReassignmentResult, len(reqs))
		for i, q := range reqs {
			results[i] = controller.ReassignmentResult{Topic: q.Topic, Partition: q.Partition, Err: err}
		}
	}
	index := map[string]int{}
	for _, res := range results {
		i, ok := index[res.Topic]
		if !ok {
			i = len(resp.Topics)
			index[res.Topic] = i
			rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			rt.Topic = res.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
		rp.Partition, rp.ErrorCode, rp.ErrorMessage = res.Partition, errorCode(res.Err), errorMessage(res.Err)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	r.respond(resp)
}
