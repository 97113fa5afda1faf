package network

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// Principal is who a connection acts as (Kafka's KafkaPrincipal): a type,
// "User" for every authenticator Strata has, and a name. An authorizer
// reads it from ConnInfo.Principal.
type Principal struct {
	Type string
	Name string
}

// String formats the principal as Kafka does ("User:alice").
func (p Principal) String() string { return p.Type + ":" + p.Name }

// Anonymous is the principal of a PLAINTEXT connection, and of an SSL one
// without a client certificate (Kafka's KafkaPrincipal.ANONYMOUS).
var Anonymous = Principal{Type: "User", Name: "ANONYMOUS"}

// Session is the outcome of authentication on a connection.
type Session struct {
	Principal Principal
	// Mechanism is the SASL mechanism, or "" for a listener without SASL.
	Mechanism string
	// Expires is when the session's credential stops being good enough
	// (KIP-368's connections.max.reauth.ms, or a token's expiry); zero
	// means never. A connection past it must re-authenticate before any
	// other request.
	Expires time.Time
}

// connAuth is ConnInfo's authentication state, set by the network layer
// for listeners without SASL and by the SASL handlers otherwise.
type connAuth struct {
	session atomic.Pointer[Session]
	tls     atomic.Pointer[tls.ConnectionState]
	handler atomic.Pointer[handlerState]
}

type handlerState struct{ v any }

// HandlerState returns what the handler stored for this connection with
// SetHandlerState (the SASL exchange in progress), nil if nothing.
func (c *ConnInfo) HandlerState() any {
	if h := c.auth.handler.Load(); h != nil {
		return h.v
	}
	return nil
}

// SetHandlerState stores the handler's own per-connection state.
func (c *ConnInfo) SetHandlerState(v any) { c.auth.handler.Store(&handlerState{v}) }

// Session returns the connection's authenticated session, or nil before
// authentication. A ConnInfo without a Listener (tests, in-process
// callers) is a PLAINTEXT connection: anonymous and authenticated.
func (c *ConnInfo) Session() *Session {
	if s := c.auth.session.Load(); s != nil {
		return s
	}
	if c.Listener == nil {
		return &Session{Principal: Anonymous}
	}
	return nil
}

// Principal returns who the connection is authenticated as, Anonymous
// before authentication.
func (c *ConnInfo) Principal() Principal {
	if s := c.Session(); s != nil {
		return s.Principal
	}
	return Anonymous
}

// Authenticated reports whether the connection may send any request.
func (c *ConnInfo) Authenticated() bool { return c.Session() != nil }

// SetSession records a successful (re-)authentication.
func (c *ConnInfo) SetSession(s Session) { c.auth.session.Store(&s) }

// RequiresSASL reports whether the connection came on a SASL listener.
func (c *ConnInfo) RequiresSASL() bool { return c.Listener != nil && c.Listener.UsesSASL() }

// TLS returns the connection's TLS state after the handshake, nil for a
// connection without TLS.
func (c *ConnInfo) TLS() *tls.ConnectionState { return c.auth.tls.Load() }

// ListenerName returns the name of the listener the connection came on.
func (c *ConnInfo) ListenerName() string {
	if c.Listener == nil {
		return ProtocolPlaintext
	}
	return c.Listener.Name
}

// observeHandshake tells a TLSObserver how a TLS handshake ended.
func (c *conn) observeHandshake(err error) {
	o, ok := c.srv.cfg.Observer.(TLSObserver)
	if !ok || errors.Is(err, io.EOF) {
		return
	}
	o.TLSHandshake(c.info.ListenerName(), c.info.Listener != nil && c.info.Listener.UsesSASL(), err)
}

// handshake runs the TLS handshake of a TLS listener's connection and
// authenticates connections of listeners without SASL: from the client
// certificate when there is one, anonymously otherwise.
func (c *conn) handshake(timeout time.Duration) error {
	l := c.info.Listener
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(timeout))
		err := tc.Handshake()
		c.observeHandshake(err)
		if err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		cs := tc.ConnectionState()
		c.info.auth.tls.Store(&cs)
	}
	if l.UsesSASL() {
		return nil
	}
	p := Anonymous
	if cs := c.info.TLS(); cs != nil && len(cs.PeerCertificates) > 0 {
		cert := cs.PeerCertificates[0]
		name := DistinguishedName(cert.Subject.ToRDNSequence().String())
		if l.CertPrincipal != nil {
			var err error
			if name, err = l.CertPrincipal(cert); err != nil {
				return fmt.Errorf("principal of client certificate %q: %w", cert.Subject, err)
			}
		}
		p = Principal{Type: "User", Name: name}
	}
	c.info.SetSession(Session{Principal: p})
	return nil
}

// DistinguishedName normalises an RFC 2253 subject as Go formats it to
// Kafka's form (Java's X500Principal.getName(): no spaces after commas).
func DistinguishedName(rfc2253 string) string {
	return strings.TrimSpace(rfc2253)
}

// sizeLimit is the largest request the connection may send next: the
// SASL limit until a connection on a SASL listener has authenticated.
func (c *conn) sizeLimit(max int32) int32 {
	if c.info.RequiresSASL() && !c.info.Authenticated() {
		return min(max, c.srv.cfg.SASLMaxReceiveSize)
	}
	return max
}
