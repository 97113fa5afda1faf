package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/security/certtest"
)

// startWith starts a broker from settings (no listen shorthand) and stops
// it at test end.
func startWith(t *testing.T, set map[string]string) *Server {
	t.Helper()
	if set["data.dir"] == "" {
		set["data.dir"] = t.TempDir()
	}
	cfg, err := config.LoadBroker("", nil, set)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

type testPKI struct {
	ca         *certtest.CA
	keystore   string // the broker's key and chain
	truststore string
	client     tls.Certificate
	roots      *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "strata-test-ca")
	broker := ca.Issue(t, pkix.Name{CommonName: "broker"})
	cli := ca.Issue(t, pkix.Name{CommonName: "alice", Organization: []string{"Strata"}})
	cert, err := tls.X509KeyPair(cli.CertPEM, cli.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	return &testPKI{ca: ca, keystore: certtest.Write(t, dir, "broker.pem", broker.Keystore()),
		truststore: certtest.Write(t, dir, "ca.pem", ca.CertPEM), client: cert, roots: roots}
}

// TestMutualTLSWithFranzGo: a broker whose only listener is SSL with
// ssl.client.auth=required serves franz-go with a client certificate
// (produce and consume) and refuses it without one.
func TestMutualTLSWithFranzGo(t *testing.T) {
	pki := newTestPKI(t)
	srv := startWith(t, map[string]string{
		"listeners":               "SSL://127.0.0.1:0",
		"ssl.keystore.location":   pki.keystore,
		"ssl.truststore.location": pki.truststore,
		"ssl.client.auth":         "required",
	})
	addr := srv.Addr().String()
	ctx := ctxT(t)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pki.roots, Certificates: []tls.Certificate{pki.client}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics("secure"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: []byte("over mTLS")}).FirstErr(); err != nil {
		t.Fatalf("produce over mTLS: %v", err)
	}
	var got string
	for got == "" {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch over mTLS: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = string(r.Value) })
	}
	if got != "over mTLS" {
		t.Fatalf("consumed %q", got)
	}

	// Without a client certificate the handshake fails.
	nocert, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pki.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer nocert.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := nocert.Ping(pctx); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// Plaintext on the TLS port is not Kafka to it.
	plain, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pctx2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := plain.Ping(pctx2); err == nil {
		t.Fatal("a plaintext client was served on the SSL listener")
	}
}
