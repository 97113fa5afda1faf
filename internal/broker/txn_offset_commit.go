package broker

// TxnOffsetCommit, v0..5: offsets committed inside a transaction, sent by
// the producer to the group coordinator after AddOffsetsToTxn. They are
// written as a transactional batch of the producer to __consumer_offsets
// and stay invisible until the transaction's commit marker (dropped on
// abort). v3+ carries the member id, generation and instance id, checked
// as Kafka checks them (KIP-447): UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID. Partitions of unknown topics get
// UNKNOWN_TOPIC_OR_PARTITION. v0-2 get INVALID_PRODUCER_EPOCH where later
// versions get PRODUCER_FENCED (KIP-588).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleTxnOffsetCommit(_ context.Context, r *request) {
	req := r.body.(*kmsg.TxnOffsetCommitRequest)
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	img := b.image()
	cr := group.TxnCommitRequest{TransactionalID: req.TransactionalID, Group: req.Group, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Generation: -1}
	if r.version >= 3 {
		cr.Generation, cr.MemberID, cr.InstanceID = req.Generation, req.MemberID, req.InstanceID
	}
	type ref struct{ t, p int }
	var refs []ref
	resp.Topics = make([]kmsg.TxnOffsetCommitResponseTopic, len(req.Topics))
	for i, rt := range req.Topics {
		st := &resp.Topics[i]
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.TxnOffsetCommitResponseTopicPartition, len(rt.Partitions))
		t := img.Topics[rt.Topic]
		for j, rp := range rt.Partitions {
			st.Partitions[j].Partition = rp.Partition
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				st.Partitions[j].ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			epoch := int32(-1)
			if r.version >= 2 {
				epoch = rp.LeaderEpoch
			}
			cr.Offsets = append(cr.Offsets, group.OffsetCommit{Topic: rt.Topic, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: epoch, Metadata: rp.Metadata})
			refs = append(refs, ref{i, j})
		}
	}
	if req.Group == "" {
		for _, ref := range refs {
			resp.Topics[ref.t].Partitions[ref.p].ErrorCode = kerr.InvalidGroupID.Code
		}
		r.respond(resp)
		return
	}
	if len(cr.Offsets) == 0 {
		r.respond(resp)
		return
	}
	errs, err := b.opts.Groups.CommitTxn(cr)
	if err != nil {
		b.log.Debug("transactional offset commit", "group", req.Group, "transactional_id", req.TransactionalID, "err", err)
	}
	for k, ref := range refs {
		e := err
		if e == nil {
			e = errs[k]
		}
		resp.Topics[ref.t].Partitions[ref.p].ErrorCode = fencedCode(e, r.version, 3)
	}
	r.respond(resp)
}
