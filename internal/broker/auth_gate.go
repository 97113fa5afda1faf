package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// API keys a connection may use before it has authenticated.
const (
	apiKeySaslHandshake    = 17
	apiKeySaslAuthenticate = 36
)

// errSessionExpired marks a request refused because its connection's
// session ended (SASLOptions.ObserveExpired).
var errSessionExpired = errors.New("expired")

// checkAuthenticated is the gate every request passes before its body is
// decoded. On a SASL listener, until the connection has authenticated (and
// again once its session has expired, KIP-368), only ApiVersions,
// SaslHandshake and SaslAuthenticate are served; anything else closes the
// connection, as Kafka's SaslServerAuthenticator does (an illegal SASL
// state). The network layer already bounded the request's size by
// sasl.server.max.receive.size.
func (b *Broker) checkAuthenticated(conn *network.ConnInfo, key int16) error {
	switch key {
	case apiKeyApiVersions, apiKeySaslHandshake, apiKeySaslAuthenticate:
		return nil
	}
	if !conn.RequiresSASL() {
		return nil
	}
	s := conn.Session()
	if s == nil {
		return fmt.Errorf("%s before SASL authentication on listener %s from %s", kmsg.NameForKey(key), conn.ListenerName(), conn.RemoteAddr)
	}
	if !s.Expires.IsZero() && !b.opts.Now().Before(s.Expires) {
		return fmt.Errorf("%s after the SASL session of %s %w at %s without re-authentication (connections.max.reauth.ms) from %s",
			kmsg.NameForKey(key), s.Principal, errSessionExpired, s.Expires.UTC().Format("15:04:05.000"), conn.RemoteAddr)
	}
	return nil
}
