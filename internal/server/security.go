package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quorum"
	"github.com/stratalog/strata/internal/security"
)

// listenerSecurity is the TLS and SASL state of a node's listeners.
type listenerSecurity struct {
	tls map[string]*security.TLSSource // by listener name, TLS listeners only
	// interBrokerDial opens connections to other brokers' inter-broker
	// listener and names their SASL mechanism (nil: plain TCP, no SASL).
	interBrokerDial kclient.DialFunc
	// jwks are the https key sets being refreshed, stopped at shutdown.
	jwks []*security.JWKSEndpoint
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
// checked unless ssl.endpoint.identification.algorithm is empty), with
// the SASL mechanism that kclient authenticates (and re-authenticates)
// each connection with when it is a SASL listener.
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
	mech, err := s.interBrokerSASL(spec)
	if err != nil {
		return err
	}
	if tlsCfg == nil && mech == nil {
		return nil
	}
	s.sec.interBrokerDial = func(ctx context.Context, addr string) (net.Conn, sasl.Mechanism, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		if tlsCfg != nil {
			cfg := tlsCfg.Clone()
			if host, _, err := net.SplitHostPort(addr); err == nil {
				cfg.ServerName = host
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("TLS to %s: %w", addr, err)
			}
			c = tc
		}
		return c, mech, nil
	}
	return nil
}

// interBrokerSASL returns the mechanism to authenticate with on the
// inter-broker listener, nil when it is not a SASL listener:
// sasl.mechanism.inter.broker.protocol with the username and password of
// that mechanism's JAAS config for the listener, as Kafka's brokers do.
func (s *Server) interBrokerSASL(spec listenerSpec) (sasl.Mechanism, error) {
	if spec.Protocol != network.ProtocolSASLPlaintext && spec.Protocol != network.ProtocolSASLSSL {
		return nil, nil
	}
	mechName := s.cfg.String("sasl.mechanism.inter.broker.protocol")
	jaas := s.cfg.ListenerJAAS(spec.Name, mechName)
	opts, err := security.ParseJAAS(jaas)
	if err != nil {
		return nil, err
	}
	if mechName == security.MechOAuthBearer {
		return s.interBrokerOAuth(spec, opts)
	}
	user, pass := opts["username"], opts["password"]
	if user == "" || pass == "" {
		return nil, fmt.Errorf("inter-broker listener %s uses SASL: set username and password in listener.name.%s.%s.sasl.jaas.config (or sasl.jaas.config)",
			spec.Name, strings.ToLower(spec.Name), strings.ToLower(mechName))
	}
	switch mechName {
	case security.MechPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	case security.MechScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case security.MechScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("sasl.mechanism.inter.broker.protocol=%s is not supported", mechName)
}

// interBrokerOAuth is OAUTHBEARER between brokers as Kafka's default
// login handler does it: each exchange (a new connection, or a
// re-authentication before the session ends) gets a fresh unsecured token
// made from the unsecuredLogin* options of the inter-broker listener's
// OAUTHBEARER JAAS config (unsecuredLoginStringClaim_sub names the
// brokers' principal). Such a token passes only the unsecured validator,
// so the inter-broker listener must use it for OAUTHBEARER: a listener
// that verifies signed tokens would refuse every broker, and Strata has no
// token-endpoint login (sasl.login.callback.handler.class) to get one.
func (s *Server) interBrokerOAuth(spec listenerSpec, opts map[string]string) (sasl.Mechanism, error) {
	switch class := s.cfg.ListenerMechString(spec.Name, security.MechOAuthBearer, "sasl.server.callback.handler.class"); class {
	case config.OAuthJWKSHandler, config.OAuthJWKSHandlerOld:
		return nil, fmt.Errorf("inter-broker OAUTHBEARER sends unsecured tokens (Kafka's default login), which listener %s's %s refuses: validate unsecured tokens there or use another sasl.mechanism.inter.broker.protocol", spec.Name, class)
	}
	if _, _, err := security.UnsecuredLoginToken(opts, time.Now()); err != nil {
		return nil, fmt.Errorf("inter-broker OAUTHBEARER (listener.name.%s.oauthbearer.sasl.jaas.config): %w", strings.ToLower(spec.Name), err)
	}
	return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
		tok, ext, err := security.UnsecuredLoginToken(opts, time.Now())
		return oauth.Auth{Token: tok, Extensions: ext}, err
	}), nil
}

// saslOptions are the broker's SASL settings; PLAIN users are loaded
// once per SASL listener at start.
func (s *Server) saslOptions() (broker.SASLOptions, error) {
	cfg := s.cfg
	opts := broker.SASLOptions{
		ReauthAfter:    time.Duration(cfg.Int64("connections.max.reauth.ms")) * time.Millisecond,
		FailureDelay:   time.Duration(cfg.Int64("connection.failed.authentication.delay.ms")) * time.Millisecond,
		Observe:        s.metrics.Requests().SASLAuthentication,
		ObserveReauth:  s.metrics.Requests().SASLReauthentication,
		ObserveExpired: s.metrics.Requests().ExpiredSessionClosed,
	}
	for _, m := range strings.Split(cfg.String("sasl.enabled.mechanisms"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			opts.Mechanisms = append(opts.Mechanisms, m)
		}
	}
	users := map[string]*security.PlainUsers{}
	opts.ListenerMechanisms = map[string][]string{}
	for _, l := range s.lns {
		if !l.net.UsesSASL() {
			continue
		}
		var mechs []string
		for _, m := range strings.Split(cfg.ListenerString(l.spec.Name, "sasl.enabled.mechanisms"), ",") {
			if m = strings.TrimSpace(m); m != "" {
				mechs = append(mechs, m)
			}
		}
		opts.ListenerMechanisms[l.spec.Name] = mechs
		u, err := security.NewPlainUsers(cfg.ListenerJAAS(l.spec.Name, security.MechPlain), cfg.ListenerString(l.spec.Name, "sasl.plain.users"))
		if err != nil {
			return opts, fmt.Errorf("listener %s: %w", l.spec.Name, err)
		}
		users[l.spec.Name] = u
	}
	opts.PlainUsers = func(listener string) *security.PlainUsers { return users[listener] }
	oauth := map[string]security.TokenValidator{}
	for _, l := range s.lns {
		if !l.net.UsesSASL() {
			continue
		}
		v, err := s.oauthValidator(l.spec.Name, slices.Contains(opts.ListenerMechanisms[l.spec.Name], security.MechOAuthBearer))
		if err != nil {
			return opts, fmt.Errorf("listener %s: OAUTHBEARER: %w", l.spec.Name, err)
		}
		oauth[l.spec.Name] = v
	}
	opts.OAuth = func(listener string) security.TokenValidator { return oauth[listener] }
	return opts, nil
}

// jwksReloadCheck is how often, at most, a JWKS file is read again.
const jwksReloadCheck = time.Second

// oauthValidator builds a SASL listener's OAUTHBEARER token validator from
// its sasl.server.callback.handler.class: Kafka's unsecured JWS validator
// by default, or KIP-768's signed-JWT validator with the JWKS file of
// sasl.oauthbearer.jwks.endpoint.url. The JWKS is loaded only where
// OAUTHBEARER is enabled, and a file that does not load stops the start.
func (s *Server) oauthValidator(listener string, enabled bool) (security.TokenValidator, error) {
	cfg := s.cfg
	get := func(k string) string { return cfg.ListenerMechString(listener, security.MechOAuthBearer, k) }
	switch get("sasl.server.callback.handler.class") {
	case config.OAuthJWKSHandler, config.OAuthJWKSHandlerOld:
	default:
		if enabled && get("sasl.oauthbearer.jwks.endpoint.url") != "" {
			s.log.Warn("sasl.oauthbearer.jwks.endpoint.url is set but OAUTHBEARER validates unsecured tokens: set sasl.server.callback.handler.class to verify signed ones", "listener", listener, "class", config.OAuthJWKSHandler)
		}
		return security.NewUnsecuredJWSValidator(cfg.ListenerJAAS(listener, security.MechOAuthBearer), nil)
	}
	if !enabled {
		return nil, nil
	}
	u := get("sasl.oauthbearer.jwks.endpoint.url")
	if u == "" {
		return nil, fmt.Errorf("%s needs sasl.oauthbearer.jwks.endpoint.url (an https or file: URL)", config.OAuthJWKSHandler)
	}
	path, https, err := config.ParseJWKSURL(u)
	if err != nil {
		return nil, err
	}
	var keys interface{ Keys() []security.JWK }
	if https {
		keys, err = s.jwksEndpoint(listener, u, get)
	} else {
		keys, err = security.NewJWKSFile(path, jwksReloadCheck, nil, s.log.With("listener", listener))
	}
	if err != nil {
		return nil, err
	}
	var auds []string
	for _, a := range strings.Split(get("sasl.oauthbearer.expected.audience"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			auds = append(auds, a)
		}
	}
	skew, err := strconv.ParseInt(get("sasl.oauthbearer.clock.skew.seconds"), 10, 64)
	if err != nil || skew < 0 {
		return nil, fmt.Errorf("sasl.oauthbearer.clock.skew.seconds=%q is not a non-negative number", get("sasl.oauthbearer.clock.skew.seconds"))
	}
	return security.NewJWTValidator(security.JWTValidatorConfig{
		Keys:              keys,
		ExpectedAudiences: auds,
		ExpectedIssuer:    get("sasl.oauthbearer.expected.issuer"),
		SubClaim:          get("sasl.oauthbearer.sub.claim.name"),
		ScopeClaim:        get("sasl.oauthbearer.scope.claim.name"),
		ClockSkew:         time.Duration(skew) * time.Second,
	})
}

// jwksEndpoint starts the background fetching of an https JWKS. Its TLS
// settings are, as in Kafka (JaasOptionsUtils), client ssl.* options of
// the listener's OAUTHBEARER sasl.jaas.config: ssl.truststore.location or
// ssl.truststore.certificates (PEM; the system's roots when neither is
// set), a keystore for mutual TLS, ssl.endpoint.identification.algorithm
// (empty: the host name is not checked).
func (s *Server) jwksEndpoint(listener, u string, get func(string) string) (*security.JWKSEndpoint, error) {
	opts := map[string]string{}
	if jaas := s.cfg.ListenerJAAS(listener, security.MechOAuthBearer); jaas != "" {
		var err error
		if opts, err = security.ParseJAAS(jaas); err != nil {
			return nil, fmt.Errorf("OAUTHBEARER sasl.jaas.config: %w", err)
		}
	}
	for _, k := range []string{"ssl.truststore.type", "ssl.keystore.type"} {
		if v := opts[k]; v != "" && !strings.EqualFold(v, "PEM") {
			return nil, fmt.Errorf("%s=%s in the OAUTHBEARER sasl.jaas.config: Strata reads PEM key material only", k, v)
		}
	}
	logger := s.log.With("listener", listener)
	src, err := security.NewTLSSource(security.TLSOptions{
		KeystoreLocation:       opts["ssl.keystore.location"],
		CertificateChain:       opts["ssl.keystore.certificate.chain"],
		Key:                    opts["ssl.keystore.key"],
		KeyPassword:            opts["ssl.key.password"],
		TruststoreLocation:     opts["ssl.truststore.location"],
		TruststoreCertificates: opts["ssl.truststore.certificates"],
		ReloadCheck:            tlsReloadCheck,
		Logger:                 logger,
	})
	if err != nil {
		return nil, fmt.Errorf("JWKS endpoint TLS (OAUTHBEARER sasl.jaas.config): %w", err)
	}
	verifyHost := true
	if v, ok := opts["ssl.endpoint.identification.algorithm"]; ok && strings.TrimSpace(v) == "" {
		verifyHost = false
	}
	ms := func(k string) time.Duration {
		n, _ := strconv.ParseInt(get(k), 10, 64) // checked by the config registry
		return time.Duration(n) * time.Millisecond
	}
	e, err := security.NewJWKSEndpoint(security.JWKSEndpointConfig{
		URL:             u,
		Refresh:         ms("sasl.oauthbearer.jwks.endpoint.refresh.ms"),
		RetryBackoff:    ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"),
		RetryBackoffMax: ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms"),
		TLS:             src.ClientConfig(verifyHost),
		Logger:          logger,
	})
	if err != nil {
		return nil, err
	}
	s.sec.jwks = append(s.sec.jwks, e)
	return e, nil
}

// quorumTLS secures the metadata quorum's transport when the controller
// listener (controller.listener.names) is an SSL listener: its socket
// runs TLS with the listener's keystore and ssl.client.auth, and nodes dial
// voters over TLS with the same keystore as client certificate and the
// listener's truststore. The quorum speaks its own protocol, not Kafka's,
// so a SASL controller listener is refused.
func (s *Server) quorumTLS(logger *slog.Logger) (wrap func(net.Listener) net.Listener, dial quorum.DialFunc, err error) {
	wrap = func(ln net.Listener) net.Listener { return ln }
	r, err := resolveListeners(s.cfg, osHostname)
	if err != nil {
		return nil, nil, err
	}
	spec, ok := r.controller()
	if !ok {
		return wrap, nil, nil
	}
	switch spec.Protocol {
	case network.ProtocolPlaintext:
		return wrap, nil, nil
	case network.ProtocolSASLPlaintext, network.ProtocolSASLSSL:
		return nil, nil, fmt.Errorf("controller listener %s: the metadata quorum does not speak SASL; map it to SSL or PLAINTEXT in listener.security.protocol.map", spec.Name)
	}
	src, err := s.tlsSource(spec.Name, logger)
	if err != nil {
		return nil, nil, err
	}
	serverCfg, err := src.ServerConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("controller listener %s: %w", spec.Name, err)
	}
	verifyHost := strings.EqualFold(s.cfg.ListenerString(spec.Name, "ssl.endpoint.identification.algorithm"), "https")
	clientCfg := src.ClientConfig(verifyHost)
	wrap = func(ln net.Listener) net.Listener { return tls.NewListener(ln, serverCfg) }
	dial = func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		cfg := clientCfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS to voter %s: %w", addr, err)
		}
		return tc, nil
	}
	return wrap, dial, nil
}

// dial opens a connection to another broker's inter-broker listener, with
// TLS as that listener needs, and returns the SASL mechanism kclient
// authenticates it with; it reads interBrokerDial at each call, so
// clients built before the listeners were resolved use it too.
func (ls *listenerSecurity) dial(ctx context.Context, addr string) (net.Conn, sasl.Mechanism, error) {
	if ls.interBrokerDial != nil {
		return ls.interBrokerDial(ctx, addr)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	return c, nil, err
}
