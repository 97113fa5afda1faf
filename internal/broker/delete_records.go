package broker

// DeleteRecords, v0..2: move a partition's log start offset forward; -1
// means the high watermark. Offsets past the high watermark answer
// OFFSET_OUT_OF_RANGE. Whole segments below the new start are deleted.
// Internal topics answer INVALID_TOPIC_EXCEPTION, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDeleteRecords(_ context.Context, r *request) {
	req := r.body.(*kmsg.DeleteRecordsRequest)
	img := b.image()
	resp := kmsg.NewPtrDeleteRecordsResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rq := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rq.Partition
			sp.LowWatermark = -1
			if img.Topics[rt.Topic] == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p, err := b.partition(rt.Topic, rq.Partition)
			if err == nil && internalTopic(rt.Topic) {
				err = kerr.InvalidTopicException // as Kafka: no deleting records of internal topics
			}
			if err == nil {
				sp.LowWatermark, err = p.DeleteRecordsBefore(rq.Offset)
			}
			sp.ErrorCode = errorCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.respond(resp)
}
