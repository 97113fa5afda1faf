package broker

// OffsetForLeaderEpoch, v0..4: for each partition, the largest epoch at or
// below the requested one and the offset where it ends (KIP-101/279),
// answered from the log's leader-epoch cache. v2+ checks the caller's
// current leader epoch (KIP-320).
//
// Kafka's leader puts its epoch in the cache when it becomes leader; ours
// gains an epoch only with the epoch's first write, so the log is given the
// current epoch to answer as Kafka's cache would (a consumer validating its
// position after the epoch moved without writes, or on an empty partition,
// must not be told the epoch is unknown: clients treat that as truncation
// and reset).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleOffsetForLeaderEpoch(_ context.Context, r *request) {
	req := r.body.(*kmsg.OffsetForLeaderEpochRequest)
	img := b.image()
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rq := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rq.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			if img.Topics[rt.Topic] == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p, err := b.partition(rt.Topic, rq.Partition)
			if err != nil {
				sp.ErrorCode = errorCode(err)
			} else if err := p.CheckLeaderEpoch(rq.CurrentLeaderEpoch); err != nil {
				sp.ErrorCode = errorCode(err)
			} else if !p.IsLeader() && req.ReplicaID < 0 {
				// Only the leader answers consumers; a follower answers
				// other brokers (replica id >= 0), as Kafka's.
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			} else {
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rq.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.respond(resp)
}
