package broker

// ListPartitionReassignments, v0 (KIP-455): the reassignments in progress,
// of the named partitions (unknown ones and those not being reassigned are
// left out, as Kafka does) or of all (null topics). Replicas is the full
// replica set (target first, then the replicas being removed). Relayed to
// the active controller like the writes; if it cannot be reached, this
// broker answers from its own image.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleListPartitionReassignments(_ context.Context, r *request) {
	req := r.body.(*kmsg.ListPartitionReassignmentsRequest)
	resp := kmsg.NewPtrListPartitionReassignmentsResponse()
	var parts map[string][]int32
	if req.Topics != nil {
		parts = map[string][]int32{}
		for _, t := range req.Topics {
			parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
		}
	}
	index := map[string]int{}
	for _, o := range b.opts.Controller.ListPartitionReassignments(parts) {
		i, ok := index[o.Topic]
		if !ok {
			i = len(resp.Topics)
			index[o.Topic] = i
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = o.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition = o.Partition
		rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = o.Replicas, o.AddingReplicas, o.RemovingReplicas
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	r.respond(resp)
}
