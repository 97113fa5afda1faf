package broker

// ElectLeaders, v0..2 (KIP-460; v0 is a preferred election, v1+ names the
// type: 0 preferred, 1 unclean). Null topics elect every partition and
// report only those where an election was needed. A metadata write: a
// broker that is not the active controller relays it there.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func (b *Broker) handleElectLeaders(_ context.Context, r *request) {
	req := r.body.(*kmsg.ElectLeadersRequest)
	resp := kmsg.NewPtrElectLeadersResponse()
	typ := controller.ElectPreferred
	if r.version >= 1 {
		typ = controller.ElectionType(req.ElectionType)
	}
	var parts map[string][]int32
	if req.Topics != nil {
		parts = map[string][]int32{}
		for _, t := range req.Topics {
			parts[t.Topic] = append(parts[t.Topic], t.Partitions...)
		}
	}
	results, err := b.opts.Controller.ElectLeaders(typ, parts)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		if r.version == 0 {
			// v0 has no top-level error: report it on every partition.
			for _, t := range req.Topics {
				for _, p := range t.Partitions {
					results = append(results, controller.ElectLeadersResult{Topic: t.Topic, Partition: p, Err: err})
				}
			}
		}
	}
	index := map[string]int{}
	for _, res := range results {
		i, ok := index[res.Topic]
		if !ok {
			i = len(resp.Topics)
			index[res.Topic] = i
			rt := kmsg.NewElectLeadersResponseTopic()
			rt.Topic = res.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewElectLeadersResponseTopicPartition()
		rp.Partition, rp.ErrorCode, rp.ErrorMessage = res.Partition, errorCode(res.Err), errorMessage(res.Err)
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, rp)
	}
	r.respond(resp)
}
