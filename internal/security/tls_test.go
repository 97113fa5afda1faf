package security

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalog/strata/internal/security/certtest"
)

// handshake runs a TLS handshake between server and client configs over a
// pipe and returns the server's view and the client's error.
func handshake(t *testing.T, server, client *tls.Config) (*tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		cli := tls.Client(c, client)
		err = cli.Handshake()
		if err == nil {
			// TLS 1.3 clients finish before the server has checked
			// their certificate: a read sees the server's verdict.
			_, err = cli.Read(make([]byte, 1))
			if err == io.EOF {
				err = nil
			}
		}
		errc <- err
	}()
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srv := tls.Server(a, server)
	serr := srv.Handshake()
	var cs tls.ConnectionState
	if serr == nil {
		cs = srv.ConnectionState()
	}
	a.Close()
	cerr := <-errc
	if serr != nil {
		return nil, serr, cerr
	}
	return &cs, nil, cerr
}

func TestServerTLSClientAuthAndVersions(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test-ca")
	srvLeaf := ca.Issue(t, pkix.Name{CommonName: "broker"})
	cliLeaf := ca.Issue(t, pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"eng"}, Organization: []string{"Strata"}})
	ks := certtest.Write(t, dir, "broker.pem", srvLeaf.Keystore())
	ts := certtest.Write(t, dir, "ca.pem", ca.CertPEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	cliCert, err := tls.X509KeyPair(cliLeaf.CertPEM, cliLeaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		auth       string
		clientCert bool
		ok         bool
		peer       bool
	}{
		{"required", true, true, true},
		{"required", false, false, false},
		{"requested", true, true, true},
		{"requested", false, true, false},
		{"none", true, true, false},
	} {
		src, err := NewTLSSource(TLSOptions{KeystoreLocation: ks, TruststoreLocation: ts, ClientAuth: tc.auth})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := src.ServerConfig()
		if err != nil {
			t.Fatal(err)
		}
		cc := &tls.Config{RootCAs: roots, ServerName: "localhost"}
		if tc.clientCert {
			cc.Certificates = []tls.Certificate{cliCert}
		}
		cs, serr, _ := handshake(t, sc, cc)
		if (serr == nil) != tc.ok {
			t.Fatalf("client auth %s, client cert %v: server handshake error %v, want ok=%v", tc.auth, tc.clientCert, serr, tc.ok)
		}
		if serr != nil {
			continue
		}
		if got := len(cs.PeerCertificates) > 0; got != tc.peer {
			t.Fatalf("client auth %s, client cert %v: peer certificate %v, want %v", tc.auth, tc.clientCert, got, tc.peer)
		}
		if tc.peer {
			if dn := cs.PeerCertificates[0].Subject.ToRDNSequence().String(); dn != "CN=alice,OU=eng,O=Strata" {
				t.Fatalf("subject %q", dn)
			}
		}
	}
	// TLS 1.1 is refused.
	src, _ := NewTLSSource(TLSOptions{KeystoreLocation: ks})
	sc, _ := src.ServerConfig()
	if _, serr, _ := handshake(t, sc, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); serr == nil {
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
	// An untrusted client certificate is refused.
	other := certtest.NewCA(t, "other-ca").Issue(t, pkix.Name{CommonName: "mallory"})
	bad, _ := tls.X509KeyPair(other.CertPEM, other.KeyPEM)
	src, _ = NewTLSSource(TLSOptions{KeystoreLocation: ks, TruststoreLocation: ts, ClientAuth: "required"})
	sc, _ = src.ServerConfig()
	if _, serr, _ := handshake(t, sc, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{bad}}); serr == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
}

// TestTLSReloadsChangedFiles: a handshake after the keystore file changed
// presents the new certificate; a broken file keeps the old one.
func TestTLSReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test-ca")
	first := ca.Issue(t, pkix.Name{CommonName: "broker-1"})
	second := ca.Issue(t, pkix.Name{CommonName: "broker-2"})
	ks := certtest.Write(t, dir, "broker.pem", first.Keystore())
	src, err := NewTLSSource(TLSOptions{KeystoreLocation: ks})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := src.ServerConfig()
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	served := func() string {
		t.Helper()
		var cn string
		cc := &tls.Config{RootCAs: roots, ServerName: "localhost", VerifyConnection: func(cs tls.ConnectionState) error {
			cn = cs.PeerCertificates[0].Subject.CommonName
			return nil
		}}
		if _, serr, cerr := handshake(t, sc, cc); serr != nil || cerr != nil {
			t.Fatalf("handshake: %v / %v", serr, cerr)
		}
		return cn
	}
	if cn := served(); cn != "broker-1" {
		t.Fatalf("served %s", cn)
	}
	certtest.Write(t, dir, "broker.pem", second.Keystore())
	if cn := served(); cn != "broker-2" {
		t.Fatalf("after the file changed, served %s, want broker-2", cn)
	}
	certtest.Write(t, dir, "broker.pem", []byte("-----BEGIN PRIVATE KEY-----\ntruncated"))
	if cn := served(); cn != "broker-2" {
		t.Fatalf("after a broken write, served %s, want broker-2 kept", cn)
	}
}

func TestEncryptedPKCS8Key(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	ca := certtest.NewCA(t, "test-ca")
	leaf := ca.Issue(t, pkix.Name{CommonName: "broker"})
	plain := certtest.Write(t, dir, "key.pem", leaf.KeyPEM)
	enc := filepath.Join(dir, "key.enc.pem")
	out, err := exec.Command("openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-v2prf", "hmacWithSHA256", "-in", plain, "-out", enc, "-passout", "pass:s3cret").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	encPEM, _ := os.ReadFile(enc)
	if !strings.Contains(string(encPEM), "ENCRYPTED PRIVATE KEY") {
		t.Fatalf("openssl wrote %s", encPEM)
	}
	if _, err := NewTLSSource(TLSOptions{CertificateChain: string(leaf.CertPEM), Key: string(encPEM), KeyPassword: "s3cret"}); err != nil {
		t.Fatalf("encrypted key with the right password: %v", err)
	}
	if _, err := NewTLSSource(TLSOptions{CertificateChain: string(leaf.CertPEM), Key: string(encPEM), KeyPassword: "wrong"}); err == nil {
		t.Fatal("encrypted key loaded with a wrong password")
	}
	if _, err := NewTLSSource(TLSOptions{CertificateChain: string(leaf.CertPEM), Key: string(encPEM)}); err == nil || !strings.Contains(err.Error(), "ssl.key.password") {
		t.Fatalf("encrypted key without a password: %v", err)
	}
}

func TestPrincipalMappingRules(t *testing.T) {
	for _, tc := range []struct {
		rules, dn, want, err string
	}{
		{"", "CN=alice,OU=eng,O=Strata", "CN=alice,OU=eng,O=Strata", ""},
		{"DEFAULT", "CN=alice,OU=eng", "CN=alice,OU=eng", ""},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=svc,OU=ServiceUsers,O=Strata", "svc", ""},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=bob,OU=eng", "CN=bob,OU=eng", ""},
		{"RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L", "CN=Alice,OU=ENG,O=Strata", "alice@eng", ""},
		{"RULE:^CN=(.*?),OU=(.*?)$/$1/U", "CN=alice,OU=eng", "ALICE", ""},
		{"RULE:^CN=(.*?)\\/x,.*$/$1/", "CN=a/x,O=b", "a", ""},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/", "CN=bob,OU=eng", "", "no rule"},
		{"RULE:^CN=(.*$/$1/", "", "", "pattern"},
		{"RULE:abc", "", "", "unterminated"},
		{"NONSENSE", "", "", "expected RULE"},
	} {
		m, err := ParsePrincipalMappingRules(tc.rules)
		var got string
		if err == nil {
			got, err = m.Map(tc.dn)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q on %q: err %v, want %q", tc.rules, tc.dn, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q on %q = %q, %v; want %q", tc.rules, tc.dn, got, err, tc.want)
		}
	}
}
