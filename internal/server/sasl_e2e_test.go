package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// saslBroker starts a broker with a PLAINTEXT listener for brokers and
// admin (INTERNAL) and a SASL_SSL one for clients (EXTERNAL), PLAIN users
// from a JAAS config, and returns the two addresses.
func saslBroker(t *testing.T, pki *testPKI, extra map[string]string) (internal, external string) {
	t.Helper()
	set := map[string]string{
		"listeners":                                     "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
		"listener.security.protocol.map":                "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
		"inter.broker.listener.name":                    "INTERNAL",
		"ssl.keystore.location":                         pki.keystore,
		"listener.name.external.plain.sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required user_carol="carol-secret";`,
		"connection.failed.authentication.delay.ms":     "10",
	}
	for k, v := range extra {
		set[k] = v
	}
	srv := startWith(t, set)
	in, _ := srv.ListenerAddr("INTERNAL")
	ex, _ := srv.ListenerAddr("EXTERNAL")
	return in.String(), ex.String()
}

func newSASLClient(t *testing.T, pki *testPKI, addr string, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.SASL(mech),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pki.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestSASLSSLWithScramSHA512 creates a SCRAM user through
// AlterUserScramCredentials on the admin listener, then franz-go produces
// and consumes over SASL_SSL with SCRAM-SHA-512; a wrong password and an
// unknown user fail alike with SASL_AUTHENTICATION_FAILED.
func TestSASLSSLWithScramSHA512(t *testing.T) {
	pki := newTestPKI(t)
	internal, external := saslBroker(t, pki, nil)
	ctx := ctxT(t)

	adm := kadm.NewClient(newPlainClient(t, internal))
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "alice-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatalf("AlterUserScramCredentials: %v", err)
	}
	desc, err := adm.DescribeUserSCRAMs(ctx, "alice")
	if err != nil || desc["alice"].Err != nil || len(desc["alice"].CredInfos) != 1 || desc["alice"].CredInfos[0].Iterations != 8192 {
		t.Fatalf("DescribeUserScramCredentials: %+v, %v", desc, err)
	}
	if d, err := adm.DescribeUserSCRAMs(ctx, "nobody"); err != nil || !errors.Is(d["nobody"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describe an unknown user: %+v, %v", d, err)
	}
	// The broker checks what kadm would have refused itself.
	weak := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "weak", 1, 100, []byte("salt"), make([]byte, 32)
	weak.Upsertions = append(weak.Upsertions, up)
	wr, err := weak.RequestWith(ctx, newPlainClient(t, internal))
	if err != nil || len(wr.Results) != 1 || wr.Results[0].ErrorCode != kerr.UnacceptableCredential.Code {
		t.Fatalf("100 iterations: %+v, %v", wr, err)
	}

	cl := newSASLClient(t, pki, external, scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism(),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("scram"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "scram", Value: []byte("over SASL_SSL")}).FirstErr(); err != nil {
		t.Fatalf("produce over SASL_SSL/SCRAM-SHA-512: %v", err)
	}
	var got string
	for got == "" {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
	}
	if got != "over SASL_SSL" {
		t.Fatalf("consumed %q", got)
	}

	for name, mech := range map[string]sasl.Mechanism{
		"wrong password":               scram.Auth{User: "alice", Pass: "wrong"}.AsSha512Mechanism(),
		"unknown user":                 scram.Auth{User: "mallory", Pass: "alice-secret"}.AsSha512Mechanism(),
		"wrong mechanism for the user": scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha256Mechanism(),
		"PLAIN wrong password":         plain.Auth{User: "carol", Pass: "nope"}.AsMechanism(),
	} {
		bad := newSASLClient(t, pki, external, mech, kgo.RequestRetries(0))
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := bad.Ping(pctx)
		cancel()
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
		// The same words whether the user exists or not.
		if !strings.Contains(err.Error(), "Authentication failed: Invalid username or password") {
			t.Fatalf("%s: message %q", name, err)
		}
	}

	// PLAIN over the same listener.
	pl := newSASLClient(t, pki, external, plain.Auth{User: "carol", Pass: "carol-secret"}.AsMechanism())
	if err := pl.Ping(ctx); err != nil {
		t.Fatalf("PLAIN: %v", err)
	}
}

func newPlainClient(t *testing.T, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestOAuthBearerWithFranzGo: with OAUTHBEARER enabled, franz-go
// authenticates with an unsecured JWS; an expired token is refused; a
// mechanism that is not enabled gets UNSUPPORTED_SASL_MECHANISM.
func TestOAuthBearerWithFranzGo(t *testing.T) {
	pki := newTestPKI(t)
	// Per listener, as Kafka's listener.name.<l>.sasl.enabled.mechanisms.
	_, external := saslBroker(t, pki, map[string]string{"listener.name.external.sasl.enabled.mechanisms": "SCRAM-SHA-512,OAUTHBEARER"})
	ctx := ctxT(t)
	token := func(exp time.Time) string {
		e := base64.RawURLEncoding.EncodeToString
		return e([]byte(`{"alg":"none"}`)) + "." + e(fmt.Appendf(nil, `{"sub":"svc-orders","exp":%d}`, exp.Unix())) + "."
	}
	cl := newSASLClient(t, pki, external, oauth.Auth{Token: token(time.Now().Add(time.Hour))}.AsMechanism(),
		kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "oauth", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce with OAUTHBEARER: %v", err)
	}
	expired := newSASLClient(t, pki, external, oauth.Auth{Token: token(time.Now().Add(-time.Hour))}.AsMechanism(), kgo.RequestRetries(0))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The broker answers RFC 7628's invalid_token challenge, as Kafka's
	// does; franz-go gives up on it at once (the Java client would send
	// \x01 and then get SASL_AUTHENTICATION_FAILED).
	if err := expired.Ping(pctx); err == nil || !strings.Contains(err.Error(), "oauth") {
		t.Fatalf("expired token: %v, want franz-go's refusal of the invalid_token challenge", err)
	}
	// PLAIN is not enabled on this broker.
	pl := newSASLClient(t, pki, external, plain.Auth{User: "carol", Pass: "carol-secret"}.AsMechanism(), kgo.RequestRetries(0))
	pctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := pl.Ping(pctx2); !errors.Is(err, kerr.UnsupportedSaslMechanism) {
		t.Fatalf("PLAIN when not enabled: %v, want UNSUPPORTED_SASL_MECHANISM", err)
	}
}
