package broker

// DescribeQuorum, v0..2: the state of the metadata quorum (Raft) for the
// __cluster_metadata partition, as kafka-metadata-quorum shows it: leader,
// its epoch (the Raft term), the high watermark (commit index), and per
// voter its log end offset as the leader knows it. Any broker answers from
// its own view; the leader's view has the voters' progress.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MetadataTopic is the name of the metadata log, as in KRaft.
const MetadataTopic = "__cluster_metadata"

func (b *Broker) handleDescribeQuorum(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeQuorumRequest)
	resp := kmsg.NewPtrDescribeQuorumResponse()
	for _, rt := range req.Topics {
		t := kmsg.NewDescribeQuorumResponseTopic()
		t.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			p := kmsg.NewDescribeQuorumResponseTopicPartition()
			p.Partition = rp.Partition
			if rt.Topic != MetadataTopic || rp.Partition != 0 {
				p.ErrorCode = kerr.UnknownTopicOrPartition.Code
				t.Partitions = append(t.Partitions, p)
				continue
			}
			q := b.opts.Controller.QuorumState()
			p.LeaderID, p.LeaderEpoch, p.HighWatermark = q.LeaderID, q.LeaderEpoch, q.HighWatermark
			for _, v := range q.Voters {
				rs := kmsg.NewDescribeQuorumResponseTopicPartitionReplicaState()
				rs.ReplicaID, rs.LogEndOffset = v.ID, v.LogEndOffset
				rs.LastFetchTimestamp, rs.LastCaughtUpTimestamp = v.LastFetchTimestamp, v.LastCaughtUpTimestamp
				p.CurrentVoters = append(p.CurrentVoters, rs)
			}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	r.respond(resp)
}
