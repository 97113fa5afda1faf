package broker

// ListOffsets, v0..10. Timestamps: -2 earliest (log start), -1 latest (the
// high watermark, or with read_committed, IsolationLevel 1 from v2, the last
// stable offset), -3 the record with the largest timestamp (KIP-734), -4
// earliest local (KIP-1005; all data is local, so the log start), a time >=
// 0 the first record at or after it through the time index (below the
// bound of the isolation level). v0 answers with a list of old-style
// offsets.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/replication"
)

func (b *Broker) handleListOffsets(_ context.Context, r *request) {
	req := r.body.(*kmsg.ListOffsetsRequest)
	img := b.image()
	resp := kmsg.NewPtrListOffsetsResponse()
	resp.Topics = make([]kmsg.ListOffsetsResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := &resp.Topics[i]
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ListOffsetsResponseTopicPartition, len(rt.Partitions))
		t := img.Topics[rt.Topic]
		for j := range rt.Partitions {
			rq := &rt.Partitions[j]
			rp := &st.Partitions[j]
			rp.Default()
			rp.Partition = rq.Partition
			if t == nil {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			isolation := replication.ReadUncommitted
			if r.version >= 2 && req.IsolationLevel == 1 {
				isolation = replication.ReadCommitted
			}
			offset, ts, err := b.listOffset(t.Name, rq, isolation)
			if err != nil {
				rp.ErrorCode = errorCode(err)
				continue
			}
			rp.Offset, rp.Timestamp = offset, ts
			if r.version == 0 {
				rp.OldStyleOffsets = []int64{offset}
			}
			if offset >= 0 && r.version >= 4 {
				if p, err := b.partition(t.Name, rq.Partition); err == nil {
					rp.LeaderEpoch = p.LeaderEpoch()
				}
			}
		}
	}
	r.respond(resp)
}

func (b *Broker) listOffset(topic string, rq *kmsg.ListOffsetsRequestTopicPartition, isolation replication.IsolationLevel) (offset, ts int64, err error) {
	p, err := b.partition(topic, rq.Partition)
	if err != nil {
		return -1, -1, err
	}
	if !p.IsLeader() {
		return -1, -1, replication.ErrNotLeader
	}
	if err := p.CheckLeaderEpoch(rq.CurrentLeaderEpoch); err != nil {
		return -1, -1, err
	}
	switch t := rq.Timestamp; {
	case t == -2 || t == -4:
		return p.LogStartOffset(), -1, nil
	case t == -1 && isolation == replication.ReadCommitted:
		return p.LastStableOffset(), -1, nil
	case t == -1:
		return p.HighWatermark(), -1, nil
	case t == -3:
		off, ts, err := p.MaxTimestamp()
		if err != nil {
			return -1, -1, err
		}
		return off, ts, nil
	case t >= 0:
		off, ts, _, err := p.OffsetForTimestamp(t, isolation)
		return off, ts, err
	case t == -5:
		// Latest tiered offset: nothing is tiered.
		return -1, -1, nil
	default:
		return -1, -1, fmt.Errorf("%w: timestamp %d is not a time or a known special value", kerr.InvalidRequest, t)
	}
}
