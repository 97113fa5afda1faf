package broker

// TxnOffsetCommit, v0..5: offsets committed inside a transaction, sent by
// the producer to the group coordinator after AddOffsetsToTxn. They are
// written as a transactional batch of the producer to __consumer_offsets
// and stay invisible until the transaction's commit marker (dropped on
// abort). v3+ carries the member id, generation and instance id, checked
// as Kafka checks them (KIP-447): UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID. v5 (KIP-890 part 2) first has the transaction
// coordinator add the group's partition to the transaction (the client
// sends no AddOffsetsToTxn). Partitions of unknown topics get
// UNKNOWN_TOPIC_OR_PARTITION. v0-2 get INVALID_PRODUCER_EPOCH where later
// versions get PRODUCER_FENCED (KIP-588).

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

// txnOffsetRef locates a requested partition in the response.
type txnOffsetRef struct{ t, p int }

func (b *Broker) handleTxnOffsetCommit(_ context.Context, r *request) {
	req := r.body.(*kmsg.TxnOffsetCommitRequest)
	resp := kmsg.NewPtrTxnOffsetCommitResponse()
	img := b.image()
	cr := group.TxnCommitRequest{TransactionalID: req.TransactionalID, Group: req.Group, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Generation: -1}
	if r.version >= 3 {
		cr.Generation, cr.MemberID, cr.InstanceID = req.Generation, req.MemberID, req.InstanceID
	}
	var refs []txnOffsetRef
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
			refs = append(refs, txnOffsetRef{i, j})
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
	adder, _ := b.opts.TxnVerifier.(TxnPartitionAdder)
	if r.version < 5 || adder == nil {
		b.commitTxnOffsets(r, req, resp, cr, refs)
		return
	}
	// v5 (KIP-890 part 2): a transaction-version-2 producer sends no
	// AddOffsetsToTxn; the group's __consumer_offsets partition joins the
	// transaction here, before the offsets are written, as Kafka's group
	// coordinator adds it when it appends them.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), txnOffsetAddTimeout)
		defer cancel()
		part := b.opts.Groups.PartitionFor(req.Group)
		if err := adder.AddPartitionToTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, OffsetsTopic, part); err != nil {
			b.log.Info("transactional offset commit: partition not added to the transaction", "group", req.Group,
				"transactional_id", req.TransactionalID, "producer_id", req.ProducerID, "epoch", req.ProducerEpoch, "err", err)
			code := txnOffsetAddError(err)
			for _, ref := range refs {
				resp.Topics[ref.t].Partitions[ref.p].ErrorCode = code
			}
			r.respond(resp)
			return
		}
		b.commitTxnOffsets(r, req, resp, cr, refs)
	}()
}

// txnOffsetAddTimeout bounds TxnOffsetCommit v5's wait for the transaction
// coordinator to add the group's partition.
const txnOffsetAddTimeout = 10 * time.Second

// txnOffsetAddError is the TxnOffsetCommit answer when the transaction
// coordinator did not add the group's partition, as Kafka's group
// coordinator answers a failed verification: retriable coordinator errors
// (the transaction still completing: CONCURRENT_TRANSACTIONS, or the
// coordinator moving) become COORDINATOR_NOT_AVAILABLE, which clients
// retry; a fenced producer gets INVALID_PRODUCER_EPOCH.
func txnOffsetAddError(err error) int16 {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return kerr.CoordinatorNotAvailable.Code
	}
	switch ke {
	case kerr.ConcurrentTransactions, kerr.CoordinatorLoadInProgress, kerr.NotCoordinator, kerr.CoordinatorNotAvailable, kerr.NotEnoughReplicas:
		return kerr.CoordinatorNotAvailable.Code
	case kerr.ProducerFenced:
		return kerr.InvalidProducerEpoch.Code
	}
	return ke.Code
}

// commitTxnOffsets writes the offsets of a TxnOffsetCommit and answers.
func (b *Broker) commitTxnOffsets(r *request, req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse, cr group.TxnCommitRequest, refs []txnOffsetRef) {
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
