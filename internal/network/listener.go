package network

import (
	"crypto/tls"
	"crypto/x509"
	"net"
)

// Security protocols of a listener (Kafka's SecurityProtocol).
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// DefaultSASLMaxReceiveSize is Kafka's sasl.server.max.receive.size: the
// largest request a connection may send before it has authenticated.
const DefaultSASLMaxReceiveSize = 512 << 10

// Listener describes what a listening socket serves: its name (the key of
// listener.security.protocol.map), its security protocol and, for SSL and
// SASL_SSL, its TLS configuration.
type Listener struct {
	Name     string
	Protocol string
	// Unthrottled exempts the listener from max.connections and the
	// connection creation rate (Kafka's rule for the inter-broker
	// listener, so that brokers can always reach each other).
	Unthrottled bool
	// TLS is the server configuration for SSL and SASL_SSL listeners. It
	// may reload certificates itself (GetConfigForClient).
	TLS *tls.Config
	// CertPrincipal maps a verified client certificate to a principal
	// name (ssl.principal.mapping.rules). Nil means the subject's
	// distinguished name as Kafka writes it.
	CertPrincipal func(cert *x509.Certificate) (string, error)
}

// UsesTLS reports whether the listener's connections start with a TLS
// handshake.
func (l *Listener) UsesTLS() bool {
	return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL
}

// UsesSASL reports whether connections must authenticate with SASL before
// anything but ApiVersions and the SASL requests.
func (l *Listener) UsesSASL() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

// plaintextListener is what Serve without a Listener serves.
var plaintextListener = Listener{Name: ProtocolPlaintext, Protocol: ProtocolPlaintext}

// ServeListener is Serve for a listener of the given description.
func (s *Server) ServeListener(ln net.Listener, l Listener) error {
	return s.serve(ln, &l)
}
