package broker

// SaslHandshake (v0..1): the client names the SASL mechanism it will use;
// with v1, SaslAuthenticate requests then carry the exchange
// (sasl_authenticate.go). After a v0 handshake the exchange follows as raw
// size-prefixed tokens outside the Kafka protocol (serveRawSASL); a failure
// there closes the connection, as Kafka does. librdkafka only enables SASL
// when v0 is advertised, though it then uses v1.
//
// On a listener without SASL the request is answered ILLEGAL_SASL_STATE.
// A mechanism that is not enabled (sasl.enabled.mechanisms) gets
// UNSUPPORTED_SASL_MECHANISM with the enabled list, and the connection
// stays open so the client can pick another, as in Kafka.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleSaslHandshake(_ context.Context, r *request) {
	req := r.body.(*kmsg.SASLHandshakeRequest)
	resp := kmsg.NewPtrSASLHandshakeResponse()
	enabled := b.opts.SASL.Mechanisms
	if b.opts.SASL.ListenerMechanisms != nil {
		if m, ok := b.opts.SASL.ListenerMechanisms[r.conn.ListenerName()]; ok {
			enabled = m
		}
	}
	resp.SupportedMechanisms = enabled
	st := saslStateOf(r.conn)
	switch {
	case !r.conn.RequiresSASL():
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case st.failed:
		r.resp.CloseConn(errSASLFailedBefore)
		return
	case st.exchange != nil || st.mechanism != "":
		// A second handshake before the exchange completed.
		resp.ErrorCode = kerr.IllegalSaslState.Code
	case !slices.Contains(enabled, req.Mechanism):
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		b.log.Info("SASL mechanism not enabled", "mechanism", req.Mechanism, "remote", r.conn.RemoteAddr, "listener", r.conn.ListenerName())
	default:
		if s := r.conn.Session(); s != nil && s.Mechanism != req.Mechanism {
			// KIP-368: re-authentication keeps the mechanism.
			resp.ErrorCode = kerr.IllegalSaslState.Code
			break
		}
		st.mechanism = req.Mechanism
		st.raw = r.version == 0
	}
	r.respond(resp)
}
