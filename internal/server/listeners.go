package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/network"
)

// listenerSpec is one listener resolved from Kafka's keys (listeners,
// advertised.listeners, listener.security.protocol.map,
// controller.listener.names, inter.broker.listener.name) or from the
// listen / advertised.address shorthands.
type listenerSpec struct {
	Name     string
	Protocol string
	Bind     string // host:port to bind
	// AdvHost and AdvPort are what clients are told; AdvPort 0 means
	// the bound port.
	AdvHost    string
	AdvPort    int32
	Controller bool // serves the metadata quorum, not Kafka clients
}

// resolvedListeners is the listener layout of a node.
type resolvedListeners struct {
	Specs []listenerSpec
	// InterBroker is the name of the listener brokers reach each other
	// on; it is always a client (non-controller) listener.
	InterBroker string
}

// resolveListeners reads the listener keys. hostname names this host, for
// a wildcard listener with nothing advertised.
func resolveListeners(cfg *config.Broker, hostname func() (string, error)) (*resolvedListeners, error) {
	raw, _ := cfg.Get("listeners")
	_, listenSrc := cfg.Get("listen")
	_, advSrc := cfg.Get("advertised.address")
	if raw == "" {
		// The shorthand: one PLAINTEXT listener on listen.
		host, port, err := splitAddr(cfg.Listen())
		if err != nil {
			return nil, fmt.Errorf("listen %q: %w", cfg.Listen(), err)
		}
		spec := listenerSpec{Name: network.ProtocolPlaintext, Protocol: network.ProtocolPlaintext, Bind: cfg.Listen(), AdvHost: host, AdvPort: port}
		if a := cfg.String("advertised.address"); a != "" {
			if spec.AdvHost, spec.AdvPort, err = splitAddr(a); err != nil {
				return nil, fmt.Errorf("advertised.address %q: %w", a, err)
			}
		}
		if err := fixWildcard(&spec, "advertised.address (--advertised-address)", hostname); err != nil {
			return nil, err
		}
		return &resolvedListeners{Specs: []listenerSpec{spec}, InterBroker: spec.Name}, nil
	}
	if listenSrc == config.SourceStaticBroker || advSrc == config.SourceStaticBroker {
		return nil, errors.New("listeners is set: leave listen and advertised.address (--listen, --advertised-address) unset, or drop listeners")
	}
	addrs, err := config.ParseListeners(raw)
	if err != nil {
		return nil, fmt.Errorf("listeners: %w", err)
	}
	protoMap, err := config.ParseProtocolMap(cfg.String("listener.security.protocol.map"))
	if err != nil {
		return nil, fmt.Errorf("listener.security.protocol.map: %w", err)
	}
	adv, err := config.ParseListeners(cfg.String("advertised.listeners"))
	if err != nil {
		return nil, fmt.Errorf("advertised.listeners: %w", err)
	}
	advByName := map[string]config.ListenerAddr{}
	for _, a := range adv {
		advByName[a.Name] = a
	}
	controllers := map[string]bool{}
	for _, n := range strings.Split(cfg.String("controller.listener.names"), ",") {
		if n = strings.ToUpper(strings.TrimSpace(n)); n != "" {
			controllers[n] = true
		}
	}
	out := &resolvedListeners{}
	names := map[string]bool{}
	for _, a := range addrs {
		names[a.Name] = true
		proto, ok := protoMap[a.Name]
		if !ok {
			if controllers[a.Name] {
				proto = network.ProtocolPlaintext // Kafka's default for a KRaft controller listener
			} else {
				return nil, fmt.Errorf("listener %s has no security protocol: add %s:<PROTOCOL> to listener.security.protocol.map", a.Name, a.Name)
			}
		}
		spec := listenerSpec{Name: a.Name, Protocol: proto, Bind: net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))),
			AdvHost: a.Host, AdvPort: a.Port, Controller: controllers[a.Name]}
		if ad, ok := advByName[a.Name]; ok {
			spec.AdvHost, spec.AdvPort = ad.Host, ad.Port
			if isWildcard(ad.Host) {
				return nil, fmt.Errorf("advertised.listeners: %s advertises %q, which clients cannot connect to; give a host name or address", a.Name, ad.Host)
			}
		}
		if !spec.Controller {
			if err := fixWildcard(&spec, "advertised.listeners", hostname); err != nil {
				return nil, err
			}
		}
		out.Specs = append(out.Specs, spec)
	}
	for n := range advByName {
		if !names[n] {
			return nil, fmt.Errorf("advertised.listeners names %s, which is not in listeners", n)
		}
	}
	for n := range controllers {
		if !names[n] {
			return nil, fmt.Errorf("controller.listener.names names %s, which is not in listeners", n)
		}
	}
	ib := strings.ToUpper(strings.TrimSpace(cfg.String("inter.broker.listener.name")))
	switch {
	case ib != "" && !names[ib]:
		return nil, fmt.Errorf("inter.broker.listener.name %s is not in listeners", ib)
	case ib != "" && controllers[ib]:
		return nil, fmt.Errorf("inter.broker.listener.name %s is a controller listener", ib)
	case ib == "":
		for _, s := range out.Specs {
			if !s.Controller {
				ib = s.Name
				break
			}
		}
		if ib == "" {
			return nil, errors.New("listeners has no listener for clients (every one is in controller.listener.names)")
		}
	}
	out.InterBroker = ib
	return out, nil
}

// fixWildcard advertises this host's name for a listener bound to every
// interface, rather than localhost, which other machines cannot reach.
func fixWildcard(s *listenerSpec, key string, hostname func() (string, error)) error {
	if !isWildcard(s.AdvHost) {
		return nil
	}
	h, err := hostname()
	if err != nil || h == "" || h == "localhost" {
		return fmt.Errorf("listener %s binds every interface (%s) and this host's name is unknown (%v): set %s to the address clients should connect to", s.Name, s.Bind, err, key)
	}
	s.AdvHost = h
	return nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func splitAddr(hp string) (string, int32, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, int32(n), nil
}

// inter returns the inter-broker listener's spec.
func (r *resolvedListeners) inter() listenerSpec {
	for _, s := range r.Specs {
		if s.Name == r.InterBroker {
			return s
		}
	}
	return listenerSpec{}
}

// controller returns the first controller listener, if any.
func (r *resolvedListeners) controller() (listenerSpec, bool) {
	for _, s := range r.Specs {
		if s.Controller {
			return s, true
		}
	}
	return listenerSpec{}, false
}

// boundListener is a client listener with its socket.
type boundListener struct {
	spec listenerSpec
	ln   net.Listener
	net  network.Listener
}

// endpoint is what the listener advertises.
func (b *boundListener) endpoint() (metadata.ListenerEndpoint, error) {
	port := b.spec.AdvPort
	if port == 0 {
		_, bp, err := splitAddr(b.ln.Addr().String())
		if err != nil {
			return metadata.ListenerEndpoint{}, err
		}
		port = bp
	}
	return metadata.ListenerEndpoint{Name: b.spec.Name, Host: b.spec.AdvHost, Port: port, SecurityProtocol: b.spec.Protocol}, nil
}

// openListeners binds every client listener, the inter-broker one first.
func openListeners(r *resolvedListeners, tlsFor func(listenerSpec) (network.Listener, error)) ([]*boundListener, error) {
	var out []*boundListener
	closeAll := func() {
		for _, b := range out {
			b.ln.Close()
		}
	}
	order := []listenerSpec{r.inter()}
	for _, s := range r.Specs {
		if !s.Controller && s.Name != r.InterBroker {
			order = append(order, s)
		}
	}
	for _, s := range order {
		nl, err := tlsFor(s)
		if err != nil {
			closeAll()
			return nil, err
		}
		ln, err := net.Listen("tcp", s.Bind)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listener %s on %s: %w", s.Name, s.Bind, err)
		}
		out = append(out, &boundListener{spec: s, ln: ln, net: nl})
	}
	return out, nil
}

// osHostname is os.Hostname, the name advertised for a wildcard listener.
func osHostname() (string, error) { return os.Hostname() }

// openClientListeners resolves and binds the client listeners and returns
// the inter-broker listener's advertised host and port and every
// listener's endpoint, for the broker registration.
func (s *Server) openClientListeners(logger *slog.Logger) (string, int32, []metadata.ListenerEndpoint, error) {
	r, err := resolveListeners(s.cfg, osHostname)
	if err != nil {
		return "", 0, nil, err
	}
	s.lns, err = openListeners(r, func(spec listenerSpec) (network.Listener, error) {
		nl, err := s.networkListener(spec, logger)
		// Brokers always reach each other: their listener is exempt from
		// max.connections, as in Kafka (connlimit.go).
		nl.Unthrottled = spec.Name == r.InterBroker
		return nl, err
	})
	if err != nil {
		key := "listeners"
		if raw, _ := s.cfg.Get("listeners"); raw == "" {
			key = "listen (--listen)"
		}
		return "", 0, nil, fmt.Errorf("%w (%s)", err, key)
	}
	if err := s.setInterBrokerDial(r.inter(), logger); err != nil {
		return "", 0, nil, err
	}
	s.ln = s.lns[0].ln
	var eps []metadata.ListenerEndpoint
	for _, l := range s.lns {
		ep, err := l.endpoint()
		if err != nil {
			return "", 0, nil, err
		}
		eps = append(eps, ep)
		logger.Info("listener", "name", ep.Name, "protocol", ep.SecurityProtocol, "bound", l.ln.Addr().String(),
			"advertised", net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port))), "inter_broker", ep.Name == r.InterBroker)
	}
	return eps[0].Host, eps[0].Port, eps, nil
}

// serveExtraListeners serves every client listener but the inter-broker
// one (which Start serves itself).
func (s *Server) serveExtraListeners() {
	for _, l := range s.lns[1:] {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.net.ServeListener(l.ln, l.net); err != nil && !errors.Is(err, network.ErrServerClosed) {
				s.log.Error("listener stopped", "listener", l.spec.Name, "err", err)
			}
		}()
	}
}

// ListenerAddr returns the bound address of the named client listener.
func (s *Server) ListenerAddr(name string) (net.Addr, bool) {
	for _, l := range s.lns {
		if l.spec.Name == name {
			return l.ln.Addr(), true
		}
	}
	return nil, false
}

// controllerListenAddr is where the metadata quorum's (Raft) listener
// binds: controller.listen, else the listener named in
// controller.listener.names, else "" (the node's voter address).
func controllerListenAddr(cfg *config.Broker) string {
	if a := cfg.String("controller.listen"); a != "" {
		return a
	}
	if r, err := resolveListeners(cfg, osHostname); err == nil {
		if c, ok := r.controller(); ok {
			return c.Bind
		}
	}
	return ""
}

// bindControllerListener binds the metadata quorum's (Raft) listener:
// controllerListenAddr, else this node's voter address.
func (s *Server) bindControllerListener(voters map[int32]string) error {
	addr, key := controllerListenAddr(s.cfg), "controller.listen / listeners"
	if addr == "" {
		addr, key = voters[s.cfg.NodeID()], "controller.quorum.voters"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("controller listener on %s (%s): %w", addr, key, err)
	}
	s.ctrlLn = ln
	return nil
}
