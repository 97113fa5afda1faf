package broker

// OffsetDelete, v0: removes a group's committed offsets for partitions of
// topics its members do not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC
// otherwise); GROUP_ID_NOT_FOUND for an unknown group.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleOffsetDelete(_ context.Context, r *request) {
	req := r.body.(*kmsg.OffsetDeleteRequest)
	resp := kmsg.NewPtrOffsetDeleteResponse()
	var tps []group.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	errs, err := b.opts.Groups.DeleteOffsets(req.Group, tps)
	if err != nil {
		resp.ErrorCode = errorCode(err)
		r.respond(resp)
		return
	}
	k := 0
	for _, t := range req.Topics {
		st := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			st.Partitions = append(st.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: errorCode(errs[k])})
			k++
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.respond(resp)
}
