package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/security"
)

// listenerSecurity is the TLS and SASL state of a node's listeners.
type listenerSecurity struct {
	tls map[string]*security.TLSSource // by listener name, TLS listeners only
	// interBrokerDial opens connections to other brokers' inter-broker
	// listener (nil: plain TCP).
	interBrokerDial kclient.DialFunc
}

// tlsReloadCheck is how often a handshake looks at the key files.
const tlsReloadCheck = 10 * time.Second

// tlsSource loads the TLS settings of a listener: listener.name.<l>.ssl.*,
// else ssl.*.
func (s *Server) tlsSource(listener string, logger *slog.Logger) (*security.TLSSource, error) {
	if src := s.sec.tls[listener]; src != nil {
		return src, nil
	}
	get := func(k string) string { return s.cfg.ListenerString(listener, k) }
	src, err := security.NewTLSSource(security.TLSOptions{
		KeystoreLocation:       get("ssl.keystore.location"),
		CertificateChain:       get("ssl.keystore.certificate.chain"),
		Key:                    get("ssl.keystore.key"),
		KeyPassword:            get("ssl.key.password"),
		TruststoreLocation:     get("ssl.truststore.location"),
		TruststoreCertificates: get("ssl.truststore.certificates"),
		ClientAuth:             get("ssl.client.auth"),
		ReloadCheck:            tlsReloadCheck,
		Logger:                 logger.With("listener", listener),
	})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", listener, err)
	}
	if s.sec.tls == nil {
		s.sec.tls = map[string]*security.TLSSource{}
	}
	s.sec.tls[listener] = src
	return src, nil
}

// networkListener describes a listener to the network layer: its TLS
// configuration and how a client certificate maps to a principal.
func (s *Server) networkListener(spec listenerSpec, logger *slog.Logger) (network.Listener, error) {
	l := network.Listener{Name: spec.Name, Protocol: spec.Protocol}
	if !l.UsesTLS() {
		return l, nil
	}
	src, err := s.tlsSource(spec.Name, logger)
	if err != nil {
		return l, err
	}
	if l.TLS, err = src.ServerConfig(); err != nil {
		return l, fmt.Errorf("listener %s: %w", spec.Name, err)
	}
	mapper, err := security.ParsePrincipalMappingRules(s.cfg.ListenerString(spec.Name, "ssl.principal.mapping.rules"))
	if err != nil {
		return l, fmt.Errorf("listener %s: %w", spec.Name, err)
	}
	l.CertPrincipal = func(cert *x509.Certificate) (string, error) {
		return mapper.Map(cert.Subject.ToRDNSequence().String())
	}
	return l, nil
}

// setInterBrokerDial builds how this broker reaches the others: over TLS
// when the inter-broker listener is SSL or SASL_SSL (its keystore as the
// client certificate, its truststore to verify the peer, the host name
// checked unless ssl.endpoint.identification.algorithm is empty), then
// SASL when it is a SASL listener.
func (s *Server) setInterBrokerDial(spec listenerSpec, logger *slog.Logger) error {
	var tlsCfg *tls.Config
	if spec.Protocol == network.ProtocolSSL || spec.Protocol == network.ProtocolSASLSSL {
		src, err := s.tlsSource(spec.Name, logger)
		if err != nil {
			return err
		}
		verifyHost := strings.EqualFold(s.cfg.ListenerString(spec.Name, "ssl.endpoint.identification.algorithm"), "https")
		tlsCfg = src.ClientConfig(verifyHost)
	}
	auth, err := s.interBrokerSASL(spec)
	if err != nil {
		return err
	}
	if tlsCfg == nil && auth == nil {
		return nil
	}
	s.sec.interBrokerDial = func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if tlsCfg != nil {
			cfg := tlsCfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("TLS to %s: %w", addr, err)
			}
			c = tc
		}
		if auth != nil {
			if err := auth(ctx, c); err != nil {
				c.Close()
				return nil, fmt.Errorf("SASL to %s: %w", addr, err)
			}
		}
		return c, nil
	}
	return nil
}

// interBrokerSASL returns how to authenticate on the inter-broker
// listener, nil when it is not a SASL listener.
func (s *Server) interBrokerSASL(spec listenerSpec) (func(ctx context.Context, c net.Conn) error, error) {
	if spec.Protocol != network.ProtocolSASLPlaintext && spec.Protocol != network.ProtocolSASLSSL {
		return nil, nil
	}
	return nil, fmt.Errorf("inter-broker listener %s uses SASL, which the inter-broker client cannot do yet", spec.Name)
}
