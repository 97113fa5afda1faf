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
		{Name: "sasl.oauthbearer.jwks.endpoint.url", Type: TypeString, Default: "", Check: jwksURL, Doc: "file: URL of the JWKS that signed OAUTHBEARER tokens are verified with (RS*, PS*, ES*, EdDSA keys); the file is read again when it changes; http(s) endpoints are not fetched"},
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

// jwksURL accepts an empty value or a file: URL naming an absolute path.
func jwksURL(v string) error {
	if v == "" {
		return nil
	}
	if _, err := JWKSPath(v); err != nil {
		return err
	}
	return nil
}

// JWKSPath returns the file a sasl.oauthbearer.jwks.endpoint.url names:
// file:/path or file:///path (Kafka's file URLs).
func JWKSPath(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil {
		return "", fmt.Errorf("%q is not a URL: %w", v, err)
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		return "", fmt.Errorf("%q: Strata does not fetch JWKS over HTTP; give a file: URL of a copy kept current", v)
	case u.Scheme != "file":
		return "", fmt.Errorf("%q is not a file: URL", v)
	case u.Host != "" && u.Host != "localhost":
		return "", fmt.Errorf("%q names host %q; a file: URL must be local", v, u.Host)
	case u.Path == "" || !strings.HasPrefix(u.Path, "/"):
		return "", fmt.Errorf("%q does not name an absolute path", v)
	}
	return u.Path, nil
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
