package broker

// FindCoordinator, v0..6 (v4+ batches keys). Group keys (type 0) map to the
// leader of __consumer_offsets partition abs(hashCode(group)) % partitions,
// as Kafka places them. Transactional keys (type 1) get
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, matching InitProducerId, since
// transactions are not supported yet: clients fail fast instead of
// retrying forever.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetsTopic is the internal topic holding group state.
const OffsetsTopic = "__consumer_offsets"

// TransactionStateTopic is Kafka's internal topic of transaction state;
// reserved here too, so that clients cannot write it either.
const TransactionStateTopic = "__transaction_state"

// internalTopic reports whether clients may not write name with Produce or
// DeleteRecords, as Kafka refuses them for its internal topics. The broker
// itself writes them in-process, so no client id is exempt.
func internalTopic(name string) bool {
	return name == OffsetsTopic || name == TransactionStateTopic || name == MetadataTopic
}

func (b *Broker) handleFindCoordinator(_ context.Context, r *request) {
	req := r.body.(*kmsg.FindCoordinatorRequest)
	resp := kmsg.NewPtrFindCoordinatorResponse()
	if r.version >= 4 {
		for _, k := range req.CoordinatorKeys {
			resp.Coordinators = append(resp.Coordinators, b.findCoordinator(req.CoordinatorType, k, r.conn.ListenerName()))
		}
		r.respond(resp)
		return
	}
	c := b.findCoordinator(req.CoordinatorType, req.CoordinatorKey, r.conn.ListenerName())
	resp.ErrorCode, resp.NodeID, resp.Host, resp.Port = c.ErrorCode, c.NodeID, c.Host, c.Port
	if r.version >= 1 {
		resp.ErrorMessage = c.ErrorMessage
	}
	r.respond(resp)
}

func (b *Broker) findCoordinator(typ int8, key, listener string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID, c.Port = key, -1, -1
	fail := func(e *kerr.Error, msg string) kmsg.FindCoordinatorResponseCoordinator {
		c.ErrorCode, c.ErrorMessage = e.Code, &msg
		return c
	}
	switch typ {
	case 0:
	case 1:
		return fail(kerr.TransactionalIDAuthorizationFailed, "transactions are not supported")
	default:
		return fail(kerr.InvalidRequest, "unknown coordinator key type")
	}
	if key == "" {
		return fail(kerr.InvalidGroupID, "empty group id")
	}
	img := b.image()
	t := img.Topics[OffsetsTopic]
	if t == nil || b.opts.Groups == nil {
		if b.opts.EnsureOffsetsTopic != nil {
			b.opts.EnsureOffsetsTopic() // created in the background; the client retries
		}
		return fail(kerr.CoordinatorNotAvailable, "the offsets topic does not exist yet")
	}
	p := b.opts.Groups.PartitionFor(key)
	if int(p) >= len(t.Partitions) {
		return fail(kerr.CoordinatorNotAvailable, "offsets topic partition missing")
	}
	leader := t.Partitions[p].Leader
	br := img.Brokers[leader]
	if br == nil {
		return fail(kerr.CoordinatorNotAvailable, "offsets topic partition has no leader")
	}
	ep, ok := br.EndpointFor(listener)
	if !ok {
		return fail(kerr.CoordinatorNotAvailable, "the coordinator has no listener "+listener)
	}
	c.NodeID, c.Host, c.Port = leader, ep.Host, ep.Port
	return c
}
