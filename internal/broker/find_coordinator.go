package broker

// FindCoordinator, v0..6 (v4+ batches keys). Group keys (type 0) map to the
// leader of __consumer_offsets partition abs(hashCode(group)) % partitions,
// transactional ids (type 1) to the leader of their __transaction_state
// partition, placed the same way, as Kafka places them. A missing internal
// topic is created in the background and the client told
// COORDINATOR_NOT_AVAILABLE (it retries). Without a transaction coordinator
// transactional keys get TRANSACTIONAL_ID_AUTHORIZATION_FAILED, matching
// InitProducerId, so clients fail fast.

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
	var (
		topic     string
		partition func(string) int32
		ensure    func()
	)
	switch typ {
	case 0:
		if key == "" {
			return fail(kerr.InvalidGroupID, "empty group id")
		}
		if b.opts.Groups == nil {
			return fail(kerr.CoordinatorNotAvailable, "no group coordinator")
		}
		topic, partition, ensure = OffsetsTopic, b.opts.Groups.PartitionFor, b.opts.EnsureOffsetsTopic
	case 1:
		if b.opts.Txns == nil {
			return fail(kerr.TransactionalIDAuthorizationFailed, "transactions are not supported")
		}
		if key == "" {
			return fail(kerr.InvalidRequest, "empty transactional id")
		}
		topic, partition, ensure = TransactionStateTopic, b.opts.Txns.PartitionFor, b.opts.EnsureTxnTopic
	default:
		return fail(kerr.InvalidRequest, "unknown coordinator key type")
	}
	img := b.image()
	t := img.Topics[topic]
	if t == nil {
		if ensure != nil {
			ensure() // created in the background; the client retries
		}
		return fail(kerr.CoordinatorNotAvailable, topic+" does not exist yet")
	}
	p := partition(key)
	if int(p) >= len(t.Partitions) {
		return fail(kerr.CoordinatorNotAvailable, topic+" partition missing")
	}
	leader := t.Partitions[p].Leader
	br := img.Brokers[leader]
	if br == nil {
		return fail(kerr.CoordinatorNotAvailable, topic+" partition has no leader")
	}
	ep, ok := br.EndpointFor(listener)
	if !ok {
		return fail(kerr.CoordinatorNotAvailable, "the coordinator has no listener "+listener)
	}
	c.NodeID, c.Host, c.Port = leader, ep.Host, ep.Port
	return c
}
