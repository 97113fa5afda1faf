package server

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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

// TestOAuthBearerJWKSOverHTTPSWithFranzGo: the JWKS is an identity
// provider's https endpoint whose CA is the ssl.truststore.location option
// of the listener's OAUTHBEARER JAAS config (as Kafka's client SSL options
// there). franz-go authenticates with an RS256 token; the provider
// rotates in an ES256 key and a token naming it is refused once, makes
// the broker fetch the set again (the hourly refresh is far off), and is
// accepted then; with the provider down, the keys fetched before still
// verify.
func TestOAuthBearerJWKSOverHTTPSWithFranzGo(t *testing.T) {
	pki := newTestPKI(t)
	rs, es := jwttest.NewRSA(t, "rs-1", "RS256"), jwttest.NewEC(t, "es-1", "ES256")
	var mu sync.Mutex
	served, status := jwttest.JWKS(rs), http.StatusOK
	var fetches atomic.Int32
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write(served)
	}))
	defer idp.Close()
	ca := filepath.Join(t.TempDir(), "idp-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: idp.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	internal, external := saslBroker(t, pki, map[string]string{
		"listener.name.external.sasl.enabled.mechanisms":                        "OAUTHBEARER",
		"listener.name.external.oauthbearer.sasl.server.callback.handler.class": config.OAuthJWKSHandler,
		"listener.name.external.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": idp.URL + "/.well-known/jwks.json",
		"listener.name.external.oauthbearer.sasl.jaas.config":                   `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ssl.truststore.location="` + ca + `" ssl.truststore.type="PEM";`,
		"sasl.oauthbearer.expected.audience":                                    "strata",
	})
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}
	ctx := ctxT(t)
	if _, err := kadm.NewClient(newPlainClient(t, internal)).CreateTopic(ctx, 1, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	token := func(k *jwttest.Key) string {
		now := time.Now()
		return k.Sign(map[string]any{"sub": "svc-orders", "aud": "strata", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}, nil)
	}
	ping := func(tok string) error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return newSASLClient(t, pki, external, oauth.Auth{Token: tok}.AsMechanism(), kgo.RequestRetries(0)).Ping(pctx)
	}
	cl := newSASLClient(t, pki, external, oauth.Auth{Token: token(rs)}.AsMechanism())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte("o-1")}).FirstErr(); err != nil {
		t.Fatalf("produce with a token signed by the fetched key: %v", err)
	}

	mu.Lock()
	served = jwttest.JWKS(rs, es)
	mu.Unlock()
	if err := ping(token(es)); err == nil {
		t.Fatal("a token with a kid the broker had not fetched was accepted at once")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ping(token(es))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ES256 token after the provider added its key: %v", err)
		}
	}
	if n := fetches.Load(); n < 2 {
		t.Fatalf("the ES256 key verified after %d fetches", n)
	}

	// The provider goes down; a token with yet another kid makes the
	// broker try (and fail) to fetch; the keys it has still verify.
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	// (Within a second of the last refresh a token does not start
	// another: the client tries again, as a real one would.)
	before, es2 := fetches.Load(), token(jwttest.NewEC(t, "es-2", "ES256"))
	deadline = time.Now().Add(20 * time.Second)
	for fetches.Load() == before {
		if err := ping(es2); err == nil {
			t.Fatal("a token with an unknown kid was accepted")
		}
		if time.Now().After(deadline) {
			t.Fatal("no fetch after a token named an unknown kid")
		}
	}
	for _, k := range []*jwttest.Key{rs, es} {
		if err := ping(token(k)); err != nil {
			t.Fatalf("%s with the provider down: %v", k.Kid, err)
		}
	}
}

// TestOAuthBearerJWKSConfigErrors: the signed-token handler without a
// JWKS, an http JWKS URL, an unreadable file and an https endpoint whose
// certificate is not trusted stop the start with a message naming what
// failed.
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
	if _, err := config.LoadBroker("", nil, base(map[string]string{"sasl.oauthbearer.jwks.endpoint.url": "http://idp.test/jwks"})); err == nil || !strings.Contains(err.Error(), "use https") {
		t.Fatalf("http JWKS URL: %v", err)
	}
	// An https endpoint whose certificate the system's roots do not know.
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"keys":[]}`)) }))
	defer idp.Close()
	for _, tc := range []struct{ url, want string }{
		{"", "needs sasl.oauthbearer.jwks.endpoint.url"},
		{"file://" + filepath.Join(t.TempDir(), "missing.json"), "no such file"},
		{idp.URL + "/jwks", "certificate"},
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

// TestInterBrokerOAuthBearerConfigErrors: OAUTHBEARER between brokers
// needs the principal claim among the JAAS unsecuredLogin* options, and
// an inter-broker listener that validates unsecured tokens; otherwise the
// start fails saying so.
func TestInterBrokerOAuthBearerConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		extra map[string]string
		want  string
	}{
		"no principal": {map[string]string{
			"listener.name.internal.oauthbearer.sasl.jaas.config": `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_iss="x";`,
		}, "unsecuredLoginStringClaim_sub"},
		"signed-token validator": {map[string]string{
			"listener.name.internal.oauthbearer.sasl.jaas.config":                   `org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker";`,
			"listener.name.internal.oauthbearer.sasl.server.callback.handler.class": config.OAuthJWKSHandler,
			"listener.name.internal.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": "file:///nonexistent/jwks.json",
		}, "refuses"},
	} {
		t.Run(name, func(t *testing.T) {
			set := map[string]string{
				"listeners":                                      "INTERNAL://127.0.0.1:0",
				"listener.security.protocol.map":                 "INTERNAL:SASL_PLAINTEXT",
				"inter.broker.listener.name":                     "INTERNAL",
				"listener.name.internal.sasl.enabled.mechanisms": "OAUTHBEARER",
				"sasl.mechanism.inter.broker.protocol":           "OAUTHBEARER",
				"data.dir":                                       t.TempDir(),
			}
			for k, v := range tc.extra {
				set[k] = v
			}
			cfg, err := config.LoadBroker("", nil, set)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := Start(cfg, testLogger(t))
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}
