package broker

// InitProducerId, v0..5. Idempotent producers (no transactional id): each
// call hands out a new producer id at epoch 0, from blocks reserved in the
// metadata log so ids are never reused across restarts. Transactional
// producers go to the transaction coordinator (internal/coordinator/txn):
// a fresh id, or an epoch bump that fences older instances, with KIP-360's
// recovery from v3 (the producer's current id and epoch; both or neither,
// else INVALID_REQUEST). v0-3 get INVALID_PRODUCER_EPOCH where later
// versions get PRODUCER_FENCED (KIP-588). Without a coordinator,
// transactional ids get TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal
// error clients report instead of retrying forever.

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/txn"
)

const producerIDBlock = 1000

// producerIDs hands out ids from blocks reserved through the controller.
type producerIDs struct {
	alloc func(count int64) (int64, error)
	mu    sync.Mutex
	next  int64
	end   int64
}

func (p *producerIDs) nextID() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.end {
		start, err := p.alloc(producerIDBlock)
		if err != nil {
			return -1, fmt.Errorf("reserve producer ids: %w", err)
		}
		p.next, p.end = start, start+producerIDBlock
	}
	id := p.next
	p.next++
	return id, nil
}

func (b *Broker) handleInitProducerID(_ context.Context, r *request) {
	req := r.body.(*kmsg.InitProducerIDRequest)
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		b.initTransactional(r, req, resp)
		return
	}
	id, err := b.pids.nextID()
	if err != nil {
		b.log.Error("init producer id", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		r.respond(resp)
		return
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	r.respond(resp)
}

func (b *Broker) initTransactional(r *request, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) {
	if b.opts.Txns == nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		r.respond(resp)
		return
	}
	var expected *txn.ProducerIDAndEpoch
	if r.version >= 3 {
		switch pid, epoch := req.ProducerID, req.ProducerEpoch; {
		case pid == -1 && epoch == -1:
		case pid == -1 || epoch == -1:
			resp.ErrorCode = kerr.InvalidRequest.Code
			r.respond(resp)
			return
		default:
			expected = &txn.ProducerIDAndEpoch{ProducerID: pid, Epoch: epoch}
		}
	}
	id := *req.TransactionalID
	b.opts.Txns.InitProducerID(id, req.TransactionTimeoutMillis, expected, func(res txn.ProducerIDAndEpoch, err error) {
		if err != nil {
			b.log.Debug("init transactional producer id", "transactional_id", id, "err", err)
			resp.ErrorCode = fencedCode(err, r.version, 4)
			r.respond(resp)
			return
		}
		resp.ProducerID, resp.ProducerEpoch = res.ProducerID, res.Epoch
		r.respond(resp)
	})
}
