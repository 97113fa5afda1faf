package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/security/jwttest"
)

// TestOAuthBearerJWKSWithFranzGo: KIP-768's validator on a SASL_SSL
// listener with a JWKS file. franz-go authenticates with an RS256 token
// and produces; the token's sub is the principal ACLs see (a read of a
// topic it has no ACL for is TOPIC_AUTHORIZATION_FAILED); tokens signed
// by a key outside the JWKS, or for another audience, are refused; a key
// added to the file is used without a restart.
func TestOAuthBearerJWKSWithFranzGo(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	rs, es := jwttest.NewRSA(t, "rs-1", "RS256"), jwttest.NewEC(t, "es-1", "ES256")
	jwks := jwttest.WriteJWKS(t, dir, "jwks.json", rs)
	internal, external := saslBroker(t, pki, map[string]string{
		"listener.name.external.sasl.enabled.mechanisms":                        "OAUTHBEARER",
		"listener.name.external.oauthbearer.sasl.server.callback.handler.class": config.OAuthJWKSHandler,
		"listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "file://" + jwks,
		"sasl.oauthbearer.expected.audience":                                    "strata",
		"sasl.oauthbearer.expected.issuer":                                      "https://idp.test",
		"authorizer.class.name":                                                 "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":                                                           "User:ANONYMOUS",
	})
	ctx := ctxT(t)
	adm := kadm.NewClient(newPlainClient(t, internal))
	for _, topic := range []string{"orders", "secret"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	acl := kadm.NewACLs().Allow("User:svc-orders").Topics("orders").Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
	if res, err := adm.CreateACLs(ctx, acl); err != nil || res[0].Err != nil {
		t.Fatalf("CreateAcls: %v %+v", err, res)
	}
	token := func(k *jwttest.Key, aud string) string {
		now := time.Now()
		return k.Sign(map[string]any{"sub": "svc-orders", "iss": "https://idp.test", "aud": aud,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "kafka"}, nil)
	}
	client := func(tok string, opts ...kgo.Opt) *kgo.Client {
		return newSASLClient(t, pki, external, oauth.Auth{Token: tok}.AsMechanism(), append([]kgo.Opt{kgo.RequestRetries(0)}, opts...)...)
	}

	cl := client(token(rs, "strata"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o-1")}).FirstErr(); err != nil {
		t.Fatalf("produce with a signed token: %v", err)
	}
	rd := client(token(rs, "strata"), kgo.ConsumeTopics("secret"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var readErr error
	for readErr == nil && pctx.Err() == nil {
		for _, e := range rd.PollFetches(pctx).Errors() {
			readErr = e.Err
		}
	}
	if !errors.Is(readErr, kerr.TopicAuthorizationFailed) {
		t.Fatalf("svc-orders reading secret: %v, want TOPIC_AUTHORIZATION_FAILED", readErr)
	}

	refused := func(what, tok string) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// The broker answers RFC 7628's invalid_token challenge; franz-go
		// gives up on it (the Java client sends \x01 and gets
		// SASL_AUTHENTICATION_FAILED, see broker.TestOAuthBearerSignedTokens).
		if err := client(tok).Ping(pctx); err == nil || !strings.Contains(err.Error(), "oauth") {
			t.Fatalf("%s: %v, want the broker's invalid_token challenge", what, err)
		}
	}
	refused("a key outside the JWKS", token(es, "strata"))
	refused("another audience", token(rs, "billing"))

	// Rotation: the IdP's new key goes into the file; the broker reads it
	// again (at most a second later) without a restart.
	if err := os.WriteFile(filepath.Join(dir, "jwks.tmp"), jwttest.JWKS(rs, es), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "jwks.tmp"), jwks); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := client(token(es, "strata")).Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ES256 token after the key was added to the JWKS file: %v", err)
		}
	}
}

// TestOAuthBearerJWKSConfigErrors: the signed-token handler without a
// JWKS, an http JWKS URL and an unreadable file stop the start with a
// message naming the key.
func TestOAuthBearerJWKSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	base := func(extra map[string]string) map[string]string {
		set := map[string]string{
			"listeners":                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
			"listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
			"inter.broker.listener.name":     "INTERNAL",
			"ssl.keystore.location":          pki.keystore,
			"sasl.enabled.mechanisms":        "OAUTHBEARER",
			"listener.name.external.oauthbearer.sasl.server.callback.handler.class": config.OAuthJWKSHandler,
			"data.dir": t.TempDir(),
		}
		for k, v := range extra {
			set[k] = v
		}
		return set
	}
	if _, err := config.LoadBroker("", nil, base(map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "https://idp.test/jwks"})); err == nil || !strings.Contains(err.Error(), "file: URL") {
		t.Fatalf("https JWKS URL: %v", err)
	}
	for _, tc := range []struct{ url, want string }{
		{"", "needs sasl.oauthbearer.jwks.endpoint.url"},
		{"file://" + filepath.Join(t.TempDir(), "missing.json"), "no such file"},
	} {
		cfg, err := config.LoadBroker("", nil, base(map[string]string{"sasl.oauthbearer.jwks.endpoint.url": tc.url}))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Start(cfg, testLogger(t))
		if err == nil {
			srv.Shutdown(context.Background())
			t.Fatalf("%q: started", tc.url)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%q: %v, want %q", tc.url, err, tc.want)
		}
	}
}
