package config

import (
	"fmt"
	"net/url"
	"strings"
)

// OAUTHBEARER server callback handlers (sasl.server.callback.handler.class
// for the oauthbearer mechanism): Kafka's default, which validates
// unsecured JWS tokens, and KIP-768's validator of signed JWTs against a
// JWKS (the class has two names: before and since Kafka 3.4).
const (
	OAuthUnsecuredHandler = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"
	OAuthJWKSHandler      = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
	OAuthJWKSHandlerOld   = "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler"
)

// oauthDefs are the OAUTHBEARER validation keys, Kafka's names. Like the
// other SASL keys they may be set per listener and mechanism:
// listener.name.<l>.oauthbearer.<key>.
func oauthDefs() []Def {
	return []Def{
		{Name: "sasl.server.callback.handler.class", Type: TypeString, Default: "", Check: oneOf("", OAuthUnsecuredHandler, OAuthJWKSHandler, OAuthJWKSHandlerOld), Doc: "OAUTHBEARER only (listener.name.<l>.oauthbearer.sasl.server.callback.handler.class): empty or Kafka's unsecured handler validates unsigned JWS tokens (development only); " + OAuthJWKSHandler + " validates signed JWTs against the JWKS of sasl.oauthbearer.jwks.endpoint.url"},
		{Name: "sasl.oauthbearer.jwks.endpoint.url", Type: TypeString, Default: "", Check: jwksURL, Doc: "the JWKS that signed OAUTHBEARER tokens are verified with (RS*, PS*, ES*, EdDSA keys): an https URL, fetched at start (a failure stops the start), again every refresh.ms and when a token names an unknown kid, its TLS verified with the ssl.truststore.* options of the OAUTHBEARER sasl.jaas.config (as Kafka) or the system's roots; or a file: URL, read again when the file changes; plain http is refused"},
		{Name: "sasl.oauthbearer.jwks.endpoint.refresh.ms", Type: TypeLong, Default: "3600000", Check: atLeast(1), Doc: "how often an https JWKS is fetched again in the background"},
		{Name: "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", Type: TypeLong, Default: "100", Check: atLeast(0), Doc: "wait after a failed JWKS fetch before trying again, doubled at each attempt"},
		{Name: "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", Type: TypeLong, Default: "10000", Check: atLeast(0), Doc: "how long a JWKS refresh keeps trying (from its first attempt) before it gives up and keeps the keys it had"},
		{Name: "sasl.oauthbearer.expected.audience", Type: TypeList, Default: "", Doc: "audiences a signed token's aud must name one of; empty: a token with an aud claim is refused, as in Kafka"},
		{Name: "sasl.oauthbearer.expected.issuer", Type: TypeString, Default: "", Doc: "the iss a signed token must carry; empty: not checked"},
		{Name: "sasl.oauthbearer.sub.claim.name", Type: TypeString, Default: "sub", Check: nonBlank, Doc: "claim of a signed token that names the principal"},
		{Name: "sasl.oauthbearer.scope.claim.name", Type: TypeString, Default: "scope", Check: nonBlank, Doc: "claim of a signed token that lists its scopes (checked for form only)"},
		{Name: "sasl.oauthbearer.clock.skew.seconds", Type: TypeInt, Default: "30", Check: atLeast(0), Doc: "leeway for a signed token's exp, iat and nbf against the broker's clock"},
	}
}

// saslMechPrefixes are the mechanism prefixes of Kafka's per-listener SASL
// keys: listener.name.<l>.<mechanism>.<key>.
var saslMechPrefixes = []string{"plain.", "scram-sha-256.", "scram-sha-512.", "oauthbearer."}

func nonBlank(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("must not be blank")
	}
	return nil
}

// jwksURL accepts an empty value, an https URL with a host, or a file: URL
// naming an absolute path.
func jwksURL(v string) error {
	if v == "" {
		return nil
	}
	if _, https, err := ParseJWKSURL(v); err != nil || https {
		return err
	}
	return nil
}

// ParseJWKSURL reads a sasl.oauthbearer.jwks.endpoint.url: an https URL
// (https true, where the URL itself), or a file: URL (file:/path or
// file:///path, Kafka's forms) whose path it returns. Plain http is
// refused: keys fetched in clear could be anyone's.
func ParseJWKSURL(v string) (path string, https bool, err error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", false, fmt.Errorf("%q is not a URL: %w", v, err)
	}
	switch {
	case u.Scheme == "https":
		if u.Host == "" {
			return "", false, fmt.Errorf("%q names no host", v)
		}
		return "", true, nil
	case u.Scheme == "http":
		return "", false, fmt.Errorf("%q: a JWKS fetched over plain http could be replaced by anyone on the path; use https (or a file: URL)", v)
	case u.Scheme != "file":
		return "", false, fmt.Errorf("%q is not an https or file: URL", v)
	case u.Host != "" && u.Host != "localhost":
		return "", false, fmt.Errorf("%q names host %q; a file: URL must be local", v, u.Host)
	case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
		return "", false, fmt.Errorf("%q does not name an absolute path", v)
	}
	return u.Path, false, nil
}

// ListenerMechString returns key for one listener and SASL mechanism, as
// Kafka resolves a SASL callback handler's settings:
// listener.name.<l>.<mechanism>.<key>, else listener.name.<l>.<key>, else
// the broker-wide key.
func (b *Broker) ListenerMechString(listener, mechanism, key string) string {
	if v, ok := b.set[listenerPrefix+strings.ToLower(listener)+"."+strings.ToLower(mechanism)+"."+key]; ok {
		return v
	}
	return b.ListenerString(listener, key)
}
