package config

import (
	"fmt"
	"strings"
)

// securityDefs are the listener, TLS and SASL keys, with Kafka's names and
// defaults (see "Security" in docs/design-notes.md). Most of them may also
// be set for one listener as listener.name.<listener>.<key>, as in Kafka.
func securityDefs() []Def {
	return append([]Def{
		{Name: "listeners", Type: TypeList, Default: "", Check: listenerList, Doc: "NAME://host:port,...: the listeners to bind; empty: one PLAINTEXT listener on listen"},
		{Name: "advertised.listeners", Type: TypeList, Default: "", Check: listenerList, Doc: "NAME://host:port,...: what clients of each listener are told to connect to; defaults to listeners (advertised.address for the single shorthand listener)"},
		{Name: "listener.security.protocol.map", Type: TypeList, Default: "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", Check: protocolMap, Doc: "NAME:PROTOCOL pairs; a listener whose name is not a protocol must be mapped (CONTROLLER defaults to PLAINTEXT)"},
		{Name: "inter.broker.listener.name", Type: TypeString, Default: "", Doc: "listener brokers use to reach each other; defaults to the first listener that is not a controller listener"},
		{Name: "controller.listener.names", Type: TypeList, Default: "", Doc: "listeners that serve the metadata quorum (Raft) instead of Kafka clients"},
		{Name: "queued.max.request.bytes", Type: TypeLong, Default: "-1", Doc: "bytes of requests being read and served, all connections together; reading waits (never disconnects) when it is used up; -1: unbounded"},
		{Name: "sasl.server.max.receive.size", Type: TypeInt, Default: "524288", Check: atLeast(1), Doc: "largest request a connection on a SASL listener may send before it has authenticated"},
		{Name: "sasl.enabled.mechanisms", Type: TypeList, Default: "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", Check: listOf("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"), Doc: "SASL mechanisms SASL listeners offer; OAUTHBEARER (off by default) validates unsecured JWS tokens as Kafka's default handler (development only), or signed JWTs with sasl.server.callback.handler.class"},
		{Name: "sasl.mechanism.inter.broker.protocol", Type: TypeString, Default: "PLAIN", Check: oneOf("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"), Doc: "mechanism brokers use with each other on a SASL inter-broker listener: PLAIN and SCRAM with the username and password of its JAAS config, OAUTHBEARER with an unsecured token from the unsecuredLogin* options of its JAAS config (Kafka's default login; the listener must validate unsecured tokens)"},
		{Name: "sasl.plain.users", Type: TypeString, Default: "", Doc: "file of user=password lines for SASL/PLAIN (alternative to a JAAS config with user_<name>=\"<password>\" options)"},
		{Name: "sasl.jaas.config", Type: TypeString, Default: "", Sensitive: true, Doc: "JAAS login module line; for PLAIN, user_<name>=\"<password>\" options list the users, username/password the broker's own credentials"},
		{Name: "connection.failed.authentication.delay.ms", Type: TypeInt, Default: "100", Check: atLeast(0), Doc: "a failed authentication is answered, and its connection closed, after this long"},
		{Name: "connections.max.reauth.ms", Type: TypeLong, Default: "0", Check: atLeast(0), Doc: "KIP-368: a SASL session lasts at most this long before the client must re-authenticate; 0: forever"},
		{Name: "ssl.keystore.type", Type: TypeString, Default: "PEM", Check: oneOf("PEM"), Doc: "only PEM (Kafka 2.7+ PEM keys)"},
		{Name: "ssl.keystore.location", Type: TypeString, Default: "", Doc: "PEM file with the private key and the certificate chain; reloaded when it changes"},
		{Name: "ssl.keystore.password", Type: TypeString, Default: "", Sensitive: true, Doc: "not used for PEM (Kafka ignores it too)"},
		{Name: "ssl.key.password", Type: TypeString, Default: "", Sensitive: true, Doc: "password of an encrypted PKCS#8 private key"},
		{Name: "ssl.keystore.certificate.chain", Type: TypeString, Default: "", Doc: "inline PEM certificate chain (instead of ssl.keystore.location)"},
		{Name: "ssl.keystore.key", Type: TypeString, Default: "", Sensitive: true, Doc: "inline PEM private key (instead of ssl.keystore.location)"},
		{Name: "ssl.truststore.type", Type: TypeString, Default: "PEM", Check: oneOf("PEM"), Doc: "only PEM"},
		{Name: "ssl.truststore.location", Type: TypeString, Default: "", Doc: "PEM file of CA certificates that client (and peer broker) certificates are verified against; reloaded when it changes"},
		{Name: "ssl.truststore.certificates", Type: TypeString, Default: "", Doc: "inline PEM CA certificates (instead of ssl.truststore.location)"},
		{Name: "ssl.client.auth", Type: TypeString, Default: "none", Check: oneOf("required", "requested", "none"), Doc: "whether SSL listeners ask clients for a certificate"},
		{Name: "ssl.principal.mapping.rules", Type: TypeString, Default: "DEFAULT", Doc: "RULE:pattern/replacement/[LU],...,DEFAULT: maps a client certificate's subject to a principal name"},
		{Name: "authorizer.class.name", Type: TypeString, Default: "", Check: oneOf(AuthorizerNames...), Doc: "empty: no authorization, every request is allowed; Kafka's standard authorizer's class name: ACLs (metadata records) are checked on every request"},
		{Name: "super.users", Type: TypeString, Default: "", Check: superUsers, Doc: "User:alice;User:bob: principals every ACL check allows (with an authorizer); the inter-broker SASL user is one implicitly"},
		{Name: "allow.everyone.if.no.acl.found", Type: TypeBoolean, Default: "false", Doc: "with an authorizer, allow an operation on a resource no ACL matches at all"},
		{Name: "ssl.endpoint.identification.algorithm", Type: TypeString, Default: "https", Doc: "https: a broker dialing another over TLS checks its host name; empty: it does not"},
	}, oauthDefs()...)
}

// AuthorizerNames are the accepted values of authorizer.class.name: none,
// or the class names of Kafka's ACL authorizer (KRaft's and the older
// one, with the same semantics).
var AuthorizerNames = []string{"", "org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer"}

// superUsers checks super.users: Type:Name entries separated by ';'.
func superUsers(v string) error {
	for _, u := range strings.Split(v, ";") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if i := strings.IndexByte(u, ':'); i <= 0 || i == len(u)-1 {
			return fmt.Errorf("entry %q is not of the form User:name", u)
		}
	}
	return nil
}

// listenerList checks NAME://host:port,... lists.
func listenerList(v string) error {
	_, err := ParseListeners(v)
	return err
}

func protocolMap(v string) error {
	_, err := ParseProtocolMap(v)
	return err
}

// ListenerAddr is one entry of listeners or advertised.listeners.
type ListenerAddr struct {
	Name string // upper case, as Kafka normalises it
	Host string // "" or 0.0.0.0 or :: for every interface
	Port int32
}

// ParseListeners parses NAME://host:port,... Names are case-insensitive and
// must be unique.
func ParseListeners(v string) ([]ListenerAddr, error) {
	var out []ListenerAddr
	seen := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, hp, ok := strings.Cut(p, "://")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener %q is not NAME://host:port", p)
		}
		host, port, err := splitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("listener %q: %w", p, err)
		}
		name = strings.ToUpper(name)
		if seen[name] {
			return nil, fmt.Errorf("listener name %s appears twice", name)
		}
		seen[name] = true
		out = append(out, ListenerAddr{Name: name, Host: host, Port: port})
	}
	return out, nil
}

func splitHostPort(hp string) (string, int32, error) {
	i := strings.LastIndex(hp, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("no port in %q", hp)
	}
	host, ps := hp[:i], hp[i+1:]
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	var port int64
	if _, err := fmt.Sscanf(ps, "%d", &port); err != nil || port < 0 || port > 65535 || fmt.Sprint(port) != ps {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, int32(port), nil
}

// Security protocols.
var securityProtocols = map[string]bool{"PLAINTEXT": true, "SSL": true, "SASL_PLAINTEXT": true, "SASL_SSL": true}

// ParseProtocolMap parses NAME:PROTOCOL,...
func ParseProtocolMap(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name, proto, ok := strings.Cut(p, ":")
		proto = strings.ToUpper(strings.TrimSpace(proto))
		if !ok || name == "" || !securityProtocols[proto] {
			return nil, fmt.Errorf("%q is not NAME:PROTOCOL with PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", p)
		}
		out[strings.ToUpper(strings.TrimSpace(name))] = proto
	}
	return out, nil
}

// listenerPrefix is Kafka's prefix for per-listener settings.
const listenerPrefix = "listener.name."

// splitListenerKey splits listener.name.<listener>.<key> into the listener
// name (upper case) and the key.
func splitListenerKey(k string) (listener, key string, ok bool) {
	rest, ok := strings.CutPrefix(k, listenerPrefix)
	if !ok {
		return "", "", false
	}
	listener, key, ok = strings.Cut(rest, ".")
	if !ok || listener == "" || key == "" {
		return "", "", false
	}
	return strings.ToUpper(listener), key, true
}

// validateListenerKey validates a listener.name.<l>.<key> setting: key must
// be a broker key, or <mechanism>.sasl.jaas.config as in Kafka.
func (b *Broker) validateListenerKey(k, v string) error {
	_, key, ok := splitListenerKey(k)
	if !ok {
		return fmt.Errorf("%w: %q is not listener.name.<listener>.<key>", ErrUnknown, k)
	}
	if mech, ok := strings.CutSuffix(key, ".sasl.jaas.config"); ok && mech != "" {
		return nil
	}
	for _, p := range saslMechPrefixes {
		if k, ok := strings.CutPrefix(key, p); ok {
			key = k
			break
		}
	}
	return b.reg.Validate(key, v)
}

// ListenerString returns key for one listener: listener.name.<l>.<key> if
// set, else the broker-wide key.
func (b *Broker) ListenerString(listener, key string) string {
	if v, ok := b.set[listenerPrefix+strings.ToLower(listener)+"."+key]; ok {
		return v
	}
	return b.String(key)
}

// ListenerJAAS returns the JAAS config for mechanism (lower case, as
// Kafka spells it: plain, scram-sha-256) on listener:
// listener.name.<l>.<mechanism>.sasl.jaas.config, else sasl.jaas.config.
func (b *Broker) ListenerJAAS(listener, mechanism string) string {
	if v, ok := b.set[listenerPrefix+strings.ToLower(listener)+"."+strings.ToLower(mechanism)+".sasl.jaas.config"]; ok {
		return v
	}
	return b.String("sasl.jaas.config")
}
