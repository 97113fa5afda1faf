package config

import (
	"strings"
	"testing"
)

// TestOAuthKeys: Kafka's KIP-768 keys, per listener and mechanism
// (listener.name.<l>.oauthbearer.<key>) over per listener over broker-wide;
// https and file: JWKS URLs, plain http refused; the refresh keys.
func TestOAuthKeys(t *testing.T) {
	b, err := LoadBroker("", nil, map[string]string{
		"sasl.oauthbearer.expected.audience":                               "a,b",
		"listener.name.ext.sasl.oauthbearer.expected.audience":             "ext",
		"listener.name.ext.oauthbearer.sasl.oauthbearer.expected.audience": "ext-oauth",
		"listener.name.ext.oauthbearer.sasl.server.callback.handler.class": OAuthJWKSHandlerOld,
		"listener.name.int.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "file:///etc/strata/jwks.json",
		"listener.name.ext.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "https://idp.example:8443/jwks",
		"sasl.oauthbearer.jwks.endpoint.refresh.ms":                        "60000",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ l, key, want string }{
		{"EXT", "sasl.oauthbearer.expected.audience", "ext-oauth"},
		{"INT", "sasl.oauthbearer.expected.audience", "a,b"},
		{"EXT", "sasl.server.callback.handler.class", OAuthJWKSHandlerOld},
		{"INT", "sasl.server.callback.handler.class", ""},
		{"INT", "sasl.oauthbearer.jwks.endpoint.url", "file:///etc/strata/jwks.json"},
		{"INT", "sasl.oauthbearer.sub.claim.name", "sub"},
		{"INT", "sasl.oauthbearer.clock.skew.seconds", "30"},
		{"EXT", "sasl.oauthbearer.jwks.endpoint.url", "https://idp.example:8443/jwks"},
		{"EXT", "sasl.oauthbearer.jwks.endpoint.refresh.ms", "60000"},
		{"EXT", "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", "100"},
		{"EXT", "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", "10000"},
	} {
		if got := b.ListenerMechString(c.l, "OAUTHBEARER", c.key); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.l, c.key, got, c.want)
		}
	}
	if w := strings.Join(b.Warnings(), " "); strings.Contains(w, "sasl.oauthbearer") {
		t.Errorf("warnings %q name an OAUTHBEARER key", w)
	}
	for k, v := range map[string]string{
		"sasl.oauthbearer.jwks.endpoint.url":                               "http://idp/jwks",
		"listener.name.int.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "https:///jwks",
		"sasl.oauthbearer.jwks.endpoint.refresh.ms":                        "0",
		"sasl.oauthbearer.jwks.endpoint.retry.backoff.ms":                  "-1",
		"listener.name.ext.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "file://remote-host/jwks.json",
		"listener.name.ext.oauthbearer.sasl.server.callback.handler.class": "com.example.MyHandler",
		"sasl.oauthbearer.sub.claim.name":                                  " ",
	} {
		if _, err := LoadBroker("", nil, map[string]string{k: v}); err == nil {
			t.Errorf("%s=%q accepted", k, v)
		}
	}
	for v, want := range map[string]string{"file:/a/b.json": "/a/b.json", "file:///a/b.json": "/a/b.json", "file://localhost/a": "/a"} {
		if got, https, err := ParseJWKSURL(v); err != nil || got != want || https {
			t.Errorf("ParseJWKSURL(%q) = %q, %v, %v", v, got, https, err)
		}
	}
	if _, https, err := ParseJWKSURL("https://idp.example/keys"); err != nil || !https {
		t.Errorf("ParseJWKSURL(https) = %v, %v", https, err)
	}
}
