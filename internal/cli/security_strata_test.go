//go:build !kfake

package cli

import (
	"context"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/security/certtest"
	"github.com/stratalog/strata/internal/server"
)

// TestSecurityFlagsAndUsers: SCRAM users made with `strata user` on an
// internal PLAINTEXT listener, then client commands over SASL_SSL with
// --tls-ca, --sasl-mechanism, --user and --password, and over mutual TLS
// with --tls-cert and --tls-key.
func TestSecurityFlagsAndUsers(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "cli-ca")
	broker := ca.Issue(t, pkix.Name{CommonName: "broker"})
	client := ca.Issue(t, pkix.Name{CommonName: "cli"})
	caFile := certtest.Write(t, dir, "ca.pem", ca.CertPEM)
	certFile := certtest.Write(t, dir, "cli.pem", client.CertPEM)
	keyFile := certtest.Write(t, dir, "cli.key", client.KeyPEM)
	cfg, err := config.LoadBroker("", nil, map[string]string{
		"data.dir":                                       t.TempDir(),
		"listeners":                                      "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.1:0,MTLS://127.0.0.1:0",
		"listener.security.protocol.map":                 "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL,MTLS:SSL",
		"inter.broker.listener.name":                     "INTERNAL",
		"ssl.keystore.location":                          certtest.Write(t, dir, "broker.pem", broker.Keystore()),
		"ssl.truststore.location":                        caFile,
		"listener.name.mtls.ssl.client.auth":             "required",
		"connection.failed.authentication.delay.ms":      "0",
		"listener.name.external.sasl.enabled.mechanisms": "SCRAM-SHA-512,OAUTHBEARER",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	addr := func(name string) string { a, _ := srv.ListenerAddr(name); return a.String() }
	internal, external, mtls := addr("INTERNAL"), addr("EXTERNAL"), addr("MTLS")

	out := mustRun(t, internal, "", "user", "create", "alice", "--new-password", "s3cret", "--mechanism", "SCRAM-SHA-512")
	if !strings.Contains(out, "alice") || !strings.Contains(out, "created") {
		t.Fatalf("user create: %s", out)
	}
	mustRun(t, internal, "", "user", "create", "bob", "--new-password", "pw", "--mechanism", "SCRAM-SHA-256", "--iterations", "4096")
	out = mustRun(t, internal, "", "user", "list")
	if !strings.Contains(out, "alice") || !strings.Contains(out, "SCRAM-SHA-512") || !strings.Contains(out, "8192") || !strings.Contains(out, "SCRAM-SHA-256") {
		t.Fatalf("user list: %s", out)
	}
	if r := run(t, internal, "", "user", "create", "weak", "--new-password", "x", "--iterations", "10"); r.err == nil {
		t.Fatal("10 iterations accepted")
	}

	sasl := []string{"--tls-ca", caFile, "--sasl-mechanism", "SCRAM-SHA-512", "--user", "alice", "--password", "s3cret"}
	mustRun(t, external, "", append([]string{"topic", "create", "secured"}, sasl...)...)
	mustRun(t, external, "one\ntwo\n", append([]string{"produce", "secured"}, sasl...)...)
	out = mustRun(t, external, "", append([]string{"consume", "secured", "-n", "2"}, sasl...)...)
	if !strings.Contains(out, "one") || !strings.Contains(out, "two") {
		t.Fatalf("consume over SASL_SSL: %q", out)
	}
	bad := []string{"--tls-ca", caFile, "--sasl-mechanism", "SCRAM-SHA-512", "--user", "alice", "--password", "wrong", "--timeout", "3s"}
	if r := run(t, external, "", append([]string{"topic", "list"}, bad...)...); r.err == nil || !strings.Contains(r.err.Error(), "SASL") {
		t.Fatalf("wrong password: %v", r.err)
	}
	if r := run(t, external, "", "topic", "list", "--user", "alice", "--password", "x"); r.err == nil || !strings.Contains(r.err.Error(), "--sasl-mechanism") {
		t.Fatalf("--user without a mechanism: %v", r.err)
	}

	// OAUTHBEARER: the token in --password (an unsecured JWS, the
	// broker's default validator); an expired one is refused.
	token := func(exp time.Time) string {
		e := base64.RawURLEncoding.EncodeToString
		return e([]byte(`{"alg":"none"}`)) + "." + e(fmt.Appendf(nil, `{"sub":"svc","exp":%d}`, exp.Unix())) + "."
	}
	out = mustRun(t, external, "", "topic", "list", "--tls-ca", caFile, "--sasl-mechanism", "OAUTHBEARER", "--password", token(time.Now().Add(time.Hour)))
	if !strings.Contains(out, "secured") {
		t.Fatalf("topic list with OAUTHBEARER: %s", out)
	}
	if r := run(t, external, "", "topic", "list", "--tls-ca", caFile, "--sasl-mechanism", "OAUTHBEARER", "--password", token(time.Now().Add(-time.Hour)), "--timeout", "3s"); r.err == nil {
		t.Fatal("an expired OAUTHBEARER token was accepted")
	}

	out = mustRun(t, mtls, "", "topic", "list", "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.Contains(out, "secured") {
		t.Fatalf("topic list over mTLS: %s", out)
	}
	if r := run(t, mtls, "", "topic", "list", "--tls-ca", caFile, "--timeout", "3s"); r.err == nil {
		t.Fatal("served over mTLS without a client certificate")
	}

	mustRun(t, internal, "", "user", "delete", "alice")
	out = mustRun(t, internal, "", "user", "list")
	if strings.Contains(out, "alice") || !strings.Contains(out, "bob") {
		t.Fatalf("after delete: %s", out)
	}
	if r := run(t, internal, "", "user", "delete", "alice"); r.err == nil {
		t.Fatal("deleting a user that does not exist succeeded")
	}
}
