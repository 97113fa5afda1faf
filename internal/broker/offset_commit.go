package broker

// OffsetCommit, v0..9. v0 commits outside group management (generation -1);
// later versions carry generation and member id, checked against the group
// (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS). A request
// with generation -1 is a "simple" commit, allowed for groups without
// members. The retention time of v2-4 is ignored: offsets.retention.minutes
// applies (as Kafka does since 2.1 for the default). Partitions of unknown
// topics get UNKNOWN_TOPIC_OR_PARTITION; metadata over 4096 bytes gets
// OFFSET_METADATA_TOO_LARGE. The answer is sent once the records are
// appended (and fsynced with log.fsync=always).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleOffsetCommit(_ context.Context, r *request) {
	req := r.body.(*kmsg.OffsetCommitRequest)
	resp := kmsg.NewPtrOffsetCommitResponse()
	img := b.image()
	cr := group.CommitRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, InstanceID: req.InstanceID}
	if r.version == 0 {
		cr.Generation, cr.MemberID = -1, ""
	}
	type ref struct{ t, p int }
	var refs []ref
	resp.Topics = make([]kmsg.OffsetCommitResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.OffsetCommitResponseTopicPartition, len(rt.Partitions))
		t := img.Topics[rt.Topic]
		for j, rp := range rt.Partitions {
			st.Partitions[j].Partition = rp.Partition
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				st.Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			epoch := int32(-1)
			if r.version >= 6 {
				epoch = rp.LeaderEpoch
			}
			cr.Offsets = append(cr.Offsets, group.OffsetCommit{Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: epoch, Metadata: rp.Metadata})
			refs = append(refs, ref{i, j})
		}
	}
	if len(cr.Offsets) == 0 && req.Group != "" {
		r.respond(resp)
		return
	}
	errs, err := b.opts.Groups.Commit(cr)
	for k, ref := range refs {
		e := err
		if e == nil {
			e = errs[k]
		}
		resp.Topics[ref.t].Partitions[ref.p].ErrorCode = errorCode(e)
	}
	r.respond(resp)
}
