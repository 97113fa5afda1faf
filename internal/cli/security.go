package cli

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	saslplain "github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"golang.org/x/sys/unix"
)

// ClientSecurity is how the CLI reaches a secured cluster: TLS (with a CA
// to trust and, for mutual TLS, a client certificate) and SASL.
type ClientSecurity struct {
	TLS       bool   // --tls: connect with TLS (implied by the other --tls-* flags)
	CAFile    string // --tls-ca: PEM CA certificates to trust (default: the system's)
	CertFile  string // --tls-cert: PEM client certificate (mutual TLS)
	KeyFile   string // --tls-key: its PEM private key
	Mechanism string // --sasl-mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER
	User      string // --user (OAUTHBEARER: the optional authorization id)
	Password  string // --password (or STRATA_PASSWORD, or a prompt); OAUTHBEARER: the token

	// askPassword reads a password when none was given; nil: from the
	// terminal, without echo.
	askPassword func(prompt string) (string, error)
}

// addSecurityFlags binds the TLS and SASL flags (persistent, so every
// client command takes them) with STRATA_* environment defaults.
func addSecurityFlags(pf *pflag.FlagSet, s *ClientSecurity, getenv func(string) string) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	pf.BoolVar(&s.TLS, "tls", env("STRATA_TLS", "") == "true", "connect with TLS (env STRATA_TLS=true)")
	pf.StringVar(&s.CAFile, "tls-ca", env("STRATA_TLS_CA", ""), "PEM file of CA certificates to trust; implies --tls (env STRATA_TLS_CA)")
	pf.StringVar(&s.CertFile, "tls-cert", env("STRATA_TLS_CERT", ""), "PEM client certificate for mutual TLS; implies --tls (env STRATA_TLS_CERT)")
	pf.StringVar(&s.KeyFile, "tls-key", env("STRATA_TLS_KEY", ""), "PEM private key of --tls-cert (env STRATA_TLS_KEY)")
	pf.StringVar(&s.Mechanism, "sasl-mechanism", env("STRATA_SASL_MECHANISM", ""), "SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (the token in --password) (env STRATA_SASL_MECHANISM)")
	pf.StringVar(&s.User, "user", env("STRATA_USER", ""), "SASL user name (env STRATA_USER)")
	pf.StringVar(&s.Password, "password", "", "SASL password (env STRATA_PASSWORD; asked for when --user is given without it on a terminal)")
	if s.Password == "" {
		s.Password = getenv("STRATA_PASSWORD")
	}
}

// opts returns the client options the settings call for.
func (s *ClientSecurity) opts() ([]kgo.Opt, error) {
	var out []kgo.Opt
	if s.TLS || s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		out = append(out, kgo.DialTLSConfig(cfg))
	}
	if s.Mechanism == "" {
		if s.User != "" {
			return nil, errors.New("--user needs --sasl-mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
		}
		return out, nil
	}
	oauthBearer := strings.EqualFold(s.Mechanism, "OAUTHBEARER")
	if s.User == "" && !oauthBearer {
		return nil, fmt.Errorf("--sasl-mechanism %s needs --user", s.Mechanism)
	}
	if s.Password == "" {
		ask := s.askPassword
		if ask == nil {
			ask = promptPassword
		}
		prompt := fmt.Sprintf("Password for %s: ", s.User)
		if oauthBearer {
			prompt = "OAuth bearer token: "
		}
		pw, err := ask(prompt)
		if err != nil {
			return nil, fmt.Errorf("--sasl-mechanism %s: no --password or STRATA_PASSWORD, and %w", s.Mechanism, err)
		}
		s.Password = pw
	}
	var mech sasl.Mechanism
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		mech = saslplain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case "SCRAM-SHA-256":
		mech = scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		mech = scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	case "OAUTHBEARER":
		mech = oauth.Auth{Zid: s.User, Token: strings.TrimSpace(s.Password)}.AsMechanism()
	default:
		return nil, fmt.Errorf("--sasl-mechanism %q: want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER", s.Mechanism)
	}
	return append(out, kgo.SASL(mech)), nil
}

func (s *ClientSecurity) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pemData, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", s.CAFile)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// promptPassword reads a line from the terminal with echo off.
func promptPassword(prompt string) (string, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", errors.New("no terminal to ask for the password on")
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", errors.New("no terminal to ask for the password on")
	}
	noEcho := *old
	noEcho.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho); err != nil {
		return "", err
	}
	defer func() {
		_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
		fmt.Fprintln(tty)
	}()
	fmt.Fprint(tty, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	if err != nil && line == "" {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
