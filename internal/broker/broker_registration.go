package broker

// BrokerRegistration (v0..4), BrokerHeartbeat (v0..2) and
// AllocateProducerIds (v0): the broker-to-controller APIs of KRaft. A
// broker sends them to the active controller's Kafka listener; any other
// node answers NOT_CONTROLLER. They are served but not advertised in
// ApiVersions: clients never send them.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleBrokerRegistration(_ context.Context, r *request) {
	req := r.body.(*kmsg.BrokerRegistrationRequest)
	resp := kmsg.NewPtrBrokerRegistrationResponse()
	resp.BrokerEpoch = -1
	img := b.image()
	switch {
	case img.ClusterID != "" && req.ClusterID != img.ClusterID:
		resp.ErrorCode = kerr.InconsistentClusterID.Code
	case len(req.Listeners) == 0:
		resp.ErrorCode = kerr.InvalidRequest.Code
	default:
		// The first listener is the inter-broker one (Strata brokers send
		// it first); every one is recorded for clients.
		l := req.Listeners[0]
		epoch, err := b.opts.Controller.RegisterBroker(controller.BrokerRegistration{
			NodeID: req.BrokerID, Incarnation: metadata.UUID(req.IncarnationID), Host: l.Host, Port: int32(l.Port), Rack: req.Rack,
			Listeners:           registrationListeners(req.Listeners),
			PreviousBrokerEpoch: previousBrokerEpoch(r.version, req),
			LogDirs:             logDirs(req.LogDirs), // v2+ (empty before)
		})
		resp.ErrorCode, resp.BrokerEpoch = errorCode(err), epoch
		if err != nil {
			b.log.Warn("broker registration refused", "node", req.BrokerID, "err", err)
		}
	}
	r.respond(resp)
}

func (b *Broker) handleBrokerHeartbeat(_ context.Context, r *request) {
	req := r.body.(*kmsg.BrokerHeartbeatRequest)
	resp := kmsg.NewPtrBrokerHeartbeatResponse()
	if req.WantShutdown {
		err := b.opts.Controller.BrokerShutdown(req.BrokerID, req.BrokerEpoch)
		resp.ErrorCode = errorCode(err)
		resp.IsFenced, resp.ShouldShutdown = true, err == nil
		r.respond(resp)
		return
	}
	// OfflineLogDirs is a tagged field of v1+ (empty before).
	fenced, err := b.opts.Controller.BrokerHeartbeat(req.BrokerID, req.BrokerEpoch, logDirs(req.OfflineLogDirs))
	resp.ErrorCode = errorCode(err)
	resp.IsFenced = fenced || err != nil
	resp.IsCaughtUp = err == nil
	r.respond(resp)
}

func (b *Broker) handleAllocateProducerIDs(_ context.Context, r *request) {
	req := r.body.(*kmsg.AllocateProducerIDsRequest)
	resp := kmsg.NewPtrAllocateProducerIDsResponse()
	if br := b.image().Brokers[req.BrokerID]; br == nil || br.Epoch != req.BrokerEpoch {
		resp.ErrorCode = kerr.StaleBrokerEpoch.Code
		r.respond(resp)
		return
	}
	start, err := b.opts.Controller.AllocateProducerIDs(producerIDBlock)
	resp.ErrorCode = errorCode(err)
	if err == nil {
		resp.ProducerIDStart, resp.ProducerIDLen = start, producerIDBlock
	}
	r.respond(resp)
}

// logDirs converts log directory ids from the wire.
func logDirs(ids [][16]byte) []metadata.UUID {
	if len(ids) == 0 {
		return nil
	}
	out := make([]metadata.UUID, len(ids))
	for i, id := range ids {
		out[i] = metadata.UUID(id)
	}
	return out
}

// previousBrokerEpoch is the request's PreviousBrokerEpoch (v3+, KIP-966);
// older versions cannot tell a clean shutdown: -1, as Kafka.
func previousBrokerEpoch(version int16, req *kmsg.BrokerRegistrationRequest) int64 {
	if version >= 3 {
		return req.PreviousBrokerEpoch
	}
	return -1
}

// Security protocol ids of BrokerRegistration's listeners (Kafka's
// SecurityProtocol).
var securityProtocolIDs = []string{"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}

// SecurityProtocolID is the wire id of a security protocol, -1 if unknown.
func SecurityProtocolID(name string) int16 {
	for i, n := range securityProtocolIDs {
		if n == name {
			return int16(i)
		}
	}
	return -1
}

func registrationListeners(ls []kmsg.BrokerRegistrationRequestListener) []metadata.ListenerEndpoint {
	out := make([]metadata.ListenerEndpoint, 0, len(ls))
	for _, l := range ls {
		proto := "PLAINTEXT"
		if l.SecurityProtocol >= 0 && int(l.SecurityProtocol) < len(securityProtocolIDs) {
			proto = securityProtocolIDs[l.SecurityProtocol]
		}
		out = append(out, metadata.ListenerEndpoint{Name: l.Name, Host: l.Host, Port: int32(l.Port), SecurityProtocol: proto})
	}
	return out
}
