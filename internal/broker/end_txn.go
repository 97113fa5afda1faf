package broker

// EndTxn, v0..5: commits or aborts the transaction; answered once the
// PrepareCommit or PrepareAbort is durable (the markers follow). v5 is
// KIP-890 part 2's transaction version 2: the coordinator bumps the epoch
// at every commit or abort and the answer carries the producer id and epoch
// for the next transaction. v0-1 get INVALID_PRODUCER_EPOCH where later
// versions get PRODUCER_FENCED.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/txn"
)

func (b *Broker) handleEndTxn(_ context.Context, r *request) {
	req := r.body.(*kmsg.EndTxnRequest)
	resp := kmsg.NewPtrEndTxnResponse()
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	tv := int16(0)
	if r.version >= 5 {
		tv = 2
	}
	b.opts.Txns.EndTxn(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit, tv, func(res txn.ProducerIDAndEpoch, err error) {
		if err != nil {
			b.log.Debug("end transaction", "transactional_id", req.TransactionalID, "commit", req.Commit, "err", err)
			resp.ErrorCode = fencedCode(err, r.version, 2)
			r.respond(resp)
			return
		}
		if tv >= 2 {
			resp.ProducerID, resp.ProducerEpoch = res.ProducerID, res.Epoch
		}
		r.respond(resp)
	})
}
