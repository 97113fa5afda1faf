package network

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/security"
	"github.com/stratalog/strata/internal/security/certtest"
)

func TestMemPoolAdmitsWhileAnyBudgetIsLeft(t *testing.T) {
	p := newMemPool(100)
	never := make(chan struct{})
	for range 2 {
		if !p.acquire(60, never, never) {
			t.Fatal("a request refused while budget was left")
		}
	}
	if got := p.Available(); got != -20 {
		t.Fatalf("available = %d after overdrawing, want -20", got)
	}
	stop := make(chan struct{})
	done := make(chan bool)
	go func() { done <- p.acquire(1, stop, never) }()
	waitFor(t, "a reader waiting for memory", func() bool { return p.Waiting() == 1 })
	p.release(60) // available 40: the waiter gets in
	if !<-done {
		t.Fatal("waiter refused after memory came back")
	}
	p.release(60)
	p.release(1)
	if got := p.Available(); got != 100 {
		t.Fatalf("available = %d after every release, want 100", got)
	}
	// Stopping a waiting reader.
	if !p.acquire(100, never, never) {
		t.Fatal("refused")
	}
	go func() { done <- p.acquire(1, stop, never) }()
	waitFor(t, "a reader waiting for memory", func() bool { return p.Waiting() == 1 })
	close(stop)
	if <-done {
		t.Fatal("a stopped reader got memory")
	}
	// Unbounded.
	u := newMemPool(0)
	if !u.acquire(1<<40, never, never) {
		t.Fatal("unbounded pool refused")
	}
}

// TestQueuedMaxRequestBytesMutesReadersNotConnections: with the budget held
// by a request whose handler has not returned, another connection's request
// is not read (its reader waits for memory) and is served once the budget
// comes back; neither connection is closed.
func TestQueuedMaxRequestBytesMutesReadersNotConnections(t *testing.T) {
	unblock := make(chan struct{})
	served := make(chan int32, 4)
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		if len(req.Data) > 1000 {
			<-unblock
		}
		served <- corrOf(req)
		r.Respond(&Response{Chunks: []Chunk{{Bytes: req.Data[4:8]}}})
	})
	s, addr := startTCP(t, Config{QueuedMaxRequestBytes: 1000}, h)
	a, b := dial(t, addr), dial(t, addr)
	if _, err := a.Write(frame(1, make([]byte, 2000))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the large request to take the budget", func() bool { avail, _ := s.QueuedBytes(); return avail < 0 })
	if _, err := b.Write(frame(2, []byte("small"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second connection's reader to wait for memory", func() bool { _, w := s.QueuedBytes(); return w == 1 })
	select {
	case c := <-served:
		t.Fatalf("request %d served while the budget was exhausted", c)
	default:
	}
	close(unblock)
	for _, c := range []net.Conn{a, b} {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := readResp(c); err != nil {
			t.Fatalf("no response after the budget came back: %v", err)
		}
	}
	if n := s.NumConns(); n != 2 {
		t.Fatalf("%d connections open, want 2", n)
	}
	waitFor(t, "the budget to be whole again", func() bool { avail, _ := s.QueuedBytes(); return avail == 1000 })
}

// startListener serves h on a loopback listener of the given description.
func startListener(t *testing.T, cfg Config, l Listener, h Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = testLogger(t)
	s := New(cfg, h)
	done := make(chan error, 1)
	go func() { done <- s.ServeListener(ln, l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// TestSASLListenerLimitsRequestsBeforeAuthentication: on a SASL listener a
// connection that has not authenticated may send at most
// SASLMaxReceiveSize bytes per request; once authenticated, the usual
// limit applies. Connections of a PLAINTEXT listener are authenticated
// (anonymously) from the start.
func TestSASLListenerLimitsRequestsBeforeAuthentication(t *testing.T) {
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		if string(req.Data[8:]) == "login" {
			req.Conn.SetSession(Session{Principal: Principal{Type: "User", Name: "alice"}, Mechanism: "PLAIN"})
		}
		r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte(req.Conn.Principal().String())}}})
	})
	_, addr := startListener(t, Config{SASLMaxReceiveSize: 1024}, Listener{Name: "CLIENT", Protocol: ProtocolSASLPlaintext}, h)

	big := make([]byte, 2000)
	c := dial(t, addr)
	if _, err := c.Write(frame(1, big)); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)

	c = dial(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame(1, []byte("login"))); err != nil {
		t.Fatal(err)
	}
	if got, err := readResp(c); err != nil || string(got) != "User:alice" {
		t.Fatalf("login answered %q, %v", got, err)
	}
	if _, err := c.Write(frame(2, big)); err != nil {
		t.Fatal(err)
	}
	if got, err := readResp(c); err != nil || string(got) != "User:alice" {
		t.Fatalf("large request after authentication answered %q, %v", got, err)
	}

	_, plain := startListener(t, Config{SASLMaxReceiveSize: 1024}, Listener{Name: "PLAIN", Protocol: ProtocolPlaintext}, h)
	c = dial(t, plain)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame(1, big)); err != nil {
		t.Fatal(err)
	}
	if got, err := readResp(c); err != nil || string(got) != "User:ANONYMOUS" {
		t.Fatalf("PLAINTEXT listener answered %q, %v", got, err)
	}
}

// TestTLSListenerPrincipalFromClientCertificate: an SSL listener
// authenticates a connection as its certificate's subject, mapped by the
// listener's rules; a mapping that fails closes the connection.
func TestTLSListenerPrincipalFromClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "ca")
	srvLeaf := ca.Issue(t, pkix.Name{CommonName: "broker"})
	src, err := security.NewTLSSource(security.TLSOptions{
		KeystoreLocation:       certtest.Write(t, dir, "ks.pem", srvLeaf.Keystore()),
		TruststoreCertificates: string(ca.CertPEM),
		ClientAuth:             "requested",
	})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := src.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := security.ParsePrincipalMappingRules("RULE:^CN=(.*?),O=Strata$/$1/L")
	if err != nil {
		t.Fatal(err)
	}
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte(req.Conn.Principal().String())}}})
	})
	_, addr := startListener(t, Config{}, Listener{Name: "SSL", Protocol: ProtocolSSL, TLS: sc,
		CertPrincipal: func(c *x509.Certificate) (string, error) { return mapper.Map(c.Subject.ToRDNSequence().String()) }}, h)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	ask := func(subject *pkix.Name) (string, error) {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
		if subject != nil {
			leaf := ca.Issue(t, *subject)
			cert, _ := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
			cfg.Certificates = []tls.Certificate{cert}
		}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(frame(1, nil)); err != nil {
			return "", err
		}
		b, err := readResp(c)
		return string(b), err
	}
	if got, err := ask(&pkix.Name{CommonName: "Alice", Organization: []string{"Strata"}}); err != nil || got != "User:alice" {
		t.Fatalf("mapped principal %q, %v; want User:alice", got, err)
	}
	if got, err := ask(nil); err != nil || got != "User:ANONYMOUS" {
		t.Fatalf("without a certificate %q, %v; want User:ANONYMOUS", got, err)
	}
	if got, err := ask(&pkix.Name{CommonName: "bob", Organization: []string{"Other"}}); err == nil {
		t.Fatalf("a subject no rule maps was served as %q", got)
	}
}
