package security

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TLSOptions are a listener's (or a dialer's) TLS settings, as Kafka's
// ssl.* keys with ssl.keystore.type=PEM and ssl.truststore.type=PEM.
type TLSOptions struct {
	// KeystoreLocation is a PEM file holding the private key and the
	// certificate chain (ssl.keystore.location).
	KeystoreLocation string
	// CertificateChain and Key are inline PEM (ssl.keystore.certificate.chain,
	// ssl.keystore.key), instead of KeystoreLocation.
	CertificateChain string
	Key              string
	// KeyPassword decrypts an encrypted PKCS#8 key (ssl.key.password).
	KeyPassword string
	// TruststoreLocation is a PEM file of CA certificates
	// (ssl.truststore.location); TruststoreCertificates is inline PEM.
	TruststoreLocation     string
	TruststoreCertificates string
	// ClientAuth is ssl.client.auth: required, requested or none.
	ClientAuth string
	// ReloadCheck is how often, at most, a handshake looks whether the
	// files changed; zero means every handshake.
	ReloadCheck time.Duration
	// Now is the clock for ReloadCheck; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// material is one loaded set of key, chain and trusted CAs.
type material struct {
	cert   *tls.Certificate
	roots  *x509.CertPool
	digest [32]byte // of the files' contents, to notice changes
}

// TLSSource builds TLS configurations from TLSOptions and reloads the
// files when their contents change: a handshake after a change uses the
// new key, chain and CAs; a change that does not load (a half-written
// file) keeps the old ones and is logged.
type TLSSource struct {
	opts TLSOptions
	log  *slog.Logger

	mu        sync.Mutex
	cur       *material
	lastCheck time.Time
}

// NewTLSSource loads the key material once; an error names what failed.
func NewTLSSource(opts TLSOptions) (*TLSSource, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	switch opts.ClientAuth {
	case "", "none", "requested", "required":
	default:
		return nil, fmt.Errorf("ssl.client.auth=%q: want required, requested or none", opts.ClientAuth)
	}
	s := &TLSSource{opts: opts, log: opts.Logger.With("component", "tls")}
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur, s.lastCheck = m, opts.Now()
	return s, nil
}

func (s *TLSSource) readAll() (chain, key, trust []byte, digest [32]byte, err error) {
	h := sha256.New()
	if s.opts.KeystoreLocation != "" {
		b, err := os.ReadFile(s.opts.KeystoreLocation)
		if err != nil {
			return nil, nil, nil, digest, fmt.Errorf("ssl.keystore.location: %w", err)
		}
		chain, key = b, b
		h.Write(b)
	} else {
		chain, key = []byte(s.opts.CertificateChain), []byte(s.opts.Key)
	}
	if s.opts.TruststoreLocation != "" {
		b, err := os.ReadFile(s.opts.TruststoreLocation)
		if err != nil {
			return nil, nil, nil, digest, fmt.Errorf("ssl.truststore.location: %w", err)
		}
		trust = b
		h.Write([]byte{0})
		h.Write(b)
	} else {
		trust = []byte(s.opts.TruststoreCertificates)
	}
	copy(digest[:], h.Sum(nil))
	return chain, key, trust, digest, nil
}

func (s *TLSSource) load() (*material, error) {
	chain, key, trust, digest, err := s.readAll()
	if err != nil {
		return nil, err
	}
	m := &material{digest: digest}
	if len(bytes.TrimSpace(chain)) > 0 || len(bytes.TrimSpace(key)) > 0 {
		cert, err := parseKeyPair(chain, key, s.opts.KeyPassword)
		if err != nil {
			return nil, err
		}
		m.cert = cert
	}
	if len(bytes.TrimSpace(trust)) > 0 {
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(trust) {
			return nil, errors.New("ssl.truststore: no PEM certificate found")
		}
	}
	return m, nil
}

// parseKeyPair reads the certificate chain and the private key (PKCS#8,
// PKCS#1 or EC; an ENCRYPTED PRIVATE KEY is decrypted with password).
func parseKeyPair(chainPEM, keyPEM []byte, password string) (*tls.Certificate, error) {
	var cert tls.Certificate
	var keyDER []byte
	var keyType string
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			keyDER, keyType = b.Bytes, b.Type
		}
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("ssl keystore: no CERTIFICATE in the certificate chain")
	}
	if keyDER == nil {
		return nil, errors.New("ssl keystore: no PRIVATE KEY")
	}
	if keyType == "ENCRYPTED PRIVATE KEY" {
		if password == "" {
			return nil, errors.New("ssl keystore: the private key is encrypted; set ssl.key.password")
		}
		der, err := decryptPKCS8(keyDER, []byte(password))
		if err != nil {
			return nil, fmt.Errorf("ssl keystore: %w", err)
		}
		keyDER, keyType = der, "PRIVATE KEY"
	}
	var err error
	switch keyType {
	case "PRIVATE KEY":
		cert.PrivateKey, err = x509.ParsePKCS8PrivateKey(keyDER)
	case "RSA PRIVATE KEY":
		cert.PrivateKey, err = x509.ParsePKCS1PrivateKey(keyDER)
	case "EC PRIVATE KEY":
		cert.PrivateKey, err = x509.ParseECPrivateKey(keyDER)
	}
	if err != nil {
		return nil, fmt.Errorf("ssl keystore: private key: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("ssl keystore: certificate: %w", err)
	}
	cert.Leaf = leaf
	// The key must match the certificate.
	if _, err := tls.X509KeyPair(pemCerts(cert.Certificate), pemKey(cert.PrivateKey)); err != nil {
		return nil, fmt.Errorf("ssl keystore: %w", err)
	}
	return &cert, nil
}

func pemCerts(ders [][]byte) []byte {
	var out []byte
	for _, d := range ders {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return out
}

func pemKey(k any) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// current returns the key material, reloading it first when the files
// changed (checked at most every ReloadCheck).
func (s *TLSSource) current() *material {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	if now.Sub(s.lastCheck) < s.opts.ReloadCheck {
		return s.cur
	}
	s.lastCheck = now
	_, _, _, digest, err := s.readAll()
	if err != nil {
		s.log.Warn("TLS key material unreadable; keeping the loaded one", "err", err)
		return s.cur
	}
	if digest == s.cur.digest {
		return s.cur
	}
	m, err := s.load()
	if err != nil {
		s.log.Warn("TLS key material changed but does not load; keeping the loaded one", "err", err)
		return s.cur
	}
	s.log.Info("TLS key material reloaded", "keystore", s.opts.KeystoreLocation, "truststore", s.opts.TruststoreLocation)
	s.cur = m
	return m
}

// ServerConfig is the configuration of a TLS listener: TLS 1.2 or later,
// the keystore's certificate, and client certificates asked for and
// verified against the truststore as ssl.client.auth says.
func (s *TLSSource) ServerConfig() (*tls.Config, error) {
	if s.cur.cert == nil {
		return nil, errors.New("an SSL listener needs a key and certificate: set ssl.keystore.location (or ssl.keystore.certificate.chain and ssl.keystore.key)")
	}
	auth := tls.NoClientCert
	switch s.opts.ClientAuth {
	case "required":
		auth = tls.RequireAndVerifyClientCert
	case "requested":
		auth = tls.VerifyClientCertIfGiven
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.current()
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{*m.cert},
			ClientAuth:   auth,
			ClientCAs:    m.roots,
		}, nil
	}
	return base, nil
}

// ClientConfig is the configuration of a TLS dialer (a broker reaching
// another): the truststore's CAs (the system's when empty), the
// keystore's certificate when there is one (mutual TLS), and the server's
// name checked unless verifyHost is false
// (ssl.endpoint.identification.algorithm empty).
func (s *TLSSource) ClientConfig(verifyHost bool) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if m := s.current(); m.cert != nil {
			return m.cert, nil
		}
		return &tls.Certificate{}, nil
	}
	// The roots may change on reload: verify by hand against the
	// current ones.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		opts := x509.VerifyOptions{Roots: s.current().roots, Intermediates: x509.NewCertPool()}
		if verifyHost {
			opts.DNSName = cs.ServerName
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg
}
