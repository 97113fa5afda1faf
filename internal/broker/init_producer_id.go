package broker

// InitProducerId, v0..5, for idempotent producers: each call hands out a new
// producer id at epoch 0, from blocks reserved in the metadata log so ids
// are never reused across restarts. Transactional producers (a
// transactional id) are not supported yet and get
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, a fatal error clients report
// instead of retrying forever.

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
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
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		r.respond(resp)
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
