package broker

// AddOffsetsToTxn, v0..4: adds the group's __consumer_offsets partition to
// the transaction, so that the commit or abort marker reaches the group
// coordinator and the offsets committed with TxnOffsetCommit become
// visible or are dropped with the transaction. v0-1 get
// INVALID_PRODUCER_EPOCH where later versions get PRODUCER_FENCED.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/txn"
)

func (b *Broker) handleAddOffsetsToTxn(_ context.Context, r *request) {
	req := r.body.(*kmsg.AddOffsetsToTxnRequest)
	resp := kmsg.NewPtrAddOffsetsToTxnResponse()
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		r.respond(resp)
		return
	}
	tp := txn.TopicPartition{Topic: OffsetsTopic, Partition: b.opts.Groups.PartitionFor(req.Group)}
	b.opts.Txns.AddPartitions(req.TransactionalID, req.ProducerID, req.ProducerEpoch, []txn.TopicPartition{tp}, 0, func(err error) {
		if err != nil {
			b.log.Debug("add offsets to transaction", "transactional_id", req.TransactionalID, "group", req.Group, "err", err)
		}
		resp.ErrorCode = fencedCode(err, r.version, 2)
		r.respond(resp)
	})
}
