package broker

// OffsetFetch, v0..9. v0-7 ask for one group (v2+: null topics means all of
// them, and errors are also given at the top level); v8+ ask for many
// groups. Partitions without a committed offset answer -1. require_stable
// (v7+, KIP-447): a partition with a transactional commit waiting for its
// marker answers UNSTABLE_OFFSET_COMMIT (offset -1), and the client
// retries.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleOffsetFetch(_ context.Context, r *request) {
	req := r.body.(*kmsg.OffsetFetchRequest)
	resp := kmsg.NewPtrOffsetFetchResponse()
	if r.version >= 8 {
		for _, rg := range req.Groups {
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group = rg.Group
			offsets, err := b.opts.Groups.Offsets(rg.Group)
			sg.ErrorCode = errorCode(err)
			if err == nil {
				want := make([]fetchTopic, len(rg.Topics))
				for i, t := range rg.Topics {
					want[i] = fetchTopic{t.Topic, t.Partitions}
				}
				if rg.Topics == nil {
					want = allTopics(offsets)
				}
				unstable := b.unstableOffsets(req.RequireStable, rg.Group, want)
				for _, t := range want {
					st := kmsg.OffsetFetchResponseGroupTopic{Topic: t.topic}
					for _, p := range t.partitions {
						o := lookupOffset(offsets, t.topic, p)
						sp := kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: &o.Metadata}
						if unstable[group.TopicPartition{Topic: t.topic, Partition: p}] {
							sp.Offset, sp.LeaderEpoch, sp.ErrorCode = -1, -1, kerr.UnstableOffsetCommit.Code
						}
						st.Partitions = append(st.Partitions, sp)
					}
					sg.Topics = append(sg.Topics, st)
				}
			}
			resp.Groups = append(resp.Groups, sg)
		}
		r.respond(resp)
		return
	}
	offsets, err := b.opts.Groups.Offsets(req.Group)
	want := make([]fetchTopic, len(req.Topics))
	for i, t := range req.Topics {
		want[i] = fetchTopic{t.Topic, t.Partitions}
	}
	if req.Topics == nil && r.version >= 2 {
		want = allTopics(offsets)
	}
	code := errorCode(err)
	if r.version >= 2 {
		resp.ErrorCode = code
	}
	var unstable map[group.TopicPartition]bool
	if err == nil {
		unstable = b.unstableOffsets(r.version >= 7 && req.RequireStable, req.Group, want)
	}
	for _, t := range want {
		st := kmsg.OffsetFetchResponseTopic{Topic: t.topic}
		for _, p := range t.partitions {
			o := lookupOffset(offsets, t.topic, p)
			sp := kmsg.OffsetFetchResponseTopicPartition{Partition: p, Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: &o.Metadata, ErrorCode: code}
			if unstable[group.TopicPartition{Topic: t.topic, Partition: p}] {
				sp.Offset, sp.LeaderEpoch, sp.ErrorCode = -1, -1, kerr.UnstableOffsetCommit.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	r.respond(resp)
}

type fetchTopic struct {
	topic      string
	partitions []int32
}

func allTopics(offsets map[string]map[int32]group.Offset) []fetchTopic {
	out := make([]fetchTopic, 0, len(offsets))
	for t, ps := range offsets {
		ft := fetchTopic{topic: t}
		for p := range ps {
			ft.partitions = append(ft.partitions, p)
		}
		out = append(out, ft)
	}
	return out
}

func lookupOffset(offsets map[string]map[int32]group.Offset, topic string, p int32) group.Offset {
	if o, ok := offsets[topic][p]; ok {
		return o
	}
	return group.Offset{Offset: -1, LeaderEpoch: -1}
}

// unstableOffsets lists the partitions of want with a transactional commit
// waiting for its marker, when the request requires stable offsets.
func (b *Broker) unstableOffsets(requireStable bool, groupID string, want []fetchTopic) map[group.TopicPartition]bool {
	if !requireStable {
		return nil
	}
	var tps []group.TopicPartition
	for _, t := range want {
		for _, p := range t.partitions {
			tps = append(tps, group.TopicPartition{Topic: t.topic, Partition: p})
		}
	}
	pending, err := b.opts.Groups.PendingTxnOffsets(groupID, tps)
	if err != nil {
		return nil
	}
	out := map[group.TopicPartition]bool{}
	for i, tp := range tps {
		if pending[i] {
			out[tp] = true
		}
	}
	return out
}
