package server

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/security/certtest"
)

// TestTLSHandshakeFailuresCounted: on an SSL listener with
// ssl.client.auth=required, a client presenting a certificate the broker
// does not trust, and one presenting none, fail their handshakes, and
// each failure counts in strata_authentications_total with
// mechanism="TLS", result="failure" (Kafka's failed-authentication-total
// counts SSL handshake failures); a good client's handshake counts as a
// success.
func TestTLSHandshakeFailuresCounted(t *testing.T) {
	pki := newTestPKI(t)
	srv := startWith(t, map[string]string{
		"listeners":               "SSL://127.0.0.1:0",
		"ssl.keystore.location":   pki.keystore,
		"ssl.truststore.location": pki.truststore,
		"ssl.client.auth":         "required",
		"http.listen":             "127.0.0.1:0",
	})
	n := &testNode{t: t, srv: srv}
	addr := srv.Addr().String()
	ctx := ctxT(t)
	tlsTotal := func(result string) float64 {
		v, _ := n.scrape().get("strata_authentications_total", "listener", "SSL", "mechanism", "TLS", "result", result)
		return v
	}
	if f, s := tlsTotal("failure"), tlsTotal("success"); f != 0 || s != 0 {
		t.Fatalf("before any client: %v failures, %v successes", f, s)
	}

	// A certificate from a CA the broker does not trust.
	other := certtest.NewCA(t, "someone-else")
	bad := other.Issue(t, pkix.Name{CommonName: "mallory"})
	badCert, err := tls.X509KeyPair(bad.CertPEM, bad.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for i, certs := range [][]tls.Certificate{{badCert}, nil} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0),
			kgo.DialTLSConfig(&tls.Config{RootCAs: pki.roots, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
		if err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := cl.Ping(pctx); err == nil {
			t.Fatalf("client %d with a bad or no certificate was served", i)
		}
		cancel()
		cl.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for tlsTotal("failure") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("strata_authentications_total{mechanism=TLS,result=failure} = %v after two failed handshakes, want 2", tlsTotal("failure"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := tlsTotal("success"); s != 0 {
		t.Fatalf("%v successful handshakes counted, want 0", s)
	}
	failed := tlsTotal("failure")

	good, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pki.roots, Certificates: []tls.Certificate{pki.client}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := good.Ping(ctx); err != nil {
		t.Fatalf("a client with a good certificate: %v", err)
	}
	if s := tlsTotal("success"); s < 1 {
		t.Fatalf("%v successful handshakes counted after a good client, want at least 1", s)
	}
	if f := tlsTotal("failure"); f != failed {
		t.Fatalf("%v failed handshakes after a good client, want still %v", f, failed)
	}
}
