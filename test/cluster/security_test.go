package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stratalog/strata/internal/security/certtest"
)

// TestSecureCluster: three nodes whose brokers reach each other on a
// SASL_SSL listener with mutual TLS (PLAIN as the inter-broker
// mechanism), whose metadata quorum runs over TLS with client
// certificates, and whose clients connect on another SASL_SSL listener.
// A SCRAM-SHA-512 user made through the PLAIN admin produces to a
// replication-factor-3 topic with acks=all and reads it back: every
// replica fetch, registration and forwarded request crossed TLS.
func TestSecureCluster(t *testing.T) {
	dir := t.TempDir()
	ca := certtest.NewCA(t, "cluster-ca")
	leaf := ca.Issue(t, pkix.Name{CommonName: "strata-node"})
	keystore := certtest.Write(t, dir, "node.pem", leaf.Keystore())
	truststore := certtest.Write(t, dir, "ca.pem", ca.CertPEM)

	c, clients := startListenerCluster(t, 3,
		"--set", "listener.security.protocol.map=BROKER:SASL_SSL,CLIENT:SASL_SSL,CONTROLLER:SSL",
		"--set", "ssl.keystore.location="+keystore,
		"--set", "ssl.truststore.location="+truststore,
		"--set", "ssl.client.auth=required",
		"--set", "listener.name.client.ssl.client.auth=none",
		"--set", "sasl.mechanism.inter.broker.protocol=PLAIN",
		"--set", `listener.name.broker.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret";`,
		"--set", `listener.name.client.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_admin="admin-secret";`,
	)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM)
	tlsCfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	newClient := func(opts ...kgo.Opt) *kgo.Client {
		return seededClient(t, clients, append([]kgo.Opt{kgo.DialTLSConfig(tlsCfg)}, opts...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	adm := kadm.NewClient(newClient(kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism())))
	// Every broker registered (over the BROKER listener, TLS and SASL).
	waitFor(t, "three brokers in the metadata", 60*time.Second, func() bool {
		m, err := adm.Metadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	m, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range m.Brokers {
		if got := fmt.Sprintf("%s:%d", b.Host, b.Port); !contains(clients, got) {
			t.Fatalf("broker %d advertised as %s on the CLIENT listener, want one of %v", b.NodeID, got, clients)
		}
	}
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "alice", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "alice-secret"}})
	if err != nil || res.Error() != nil {
		t.Fatalf("create SCRAM user: %v / %v", err, res.Error())
	}
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")}, "secure"); err != nil {
		t.Fatalf("create topic: %v", err)
	}

	alice := scram.Auth{User: "alice", Pass: "alice-secret"}.AsSha512Mechanism()
	// The user is known to every broker once the metadata reaches them;
	// until then a broker answers like for any unknown user.
	var prod *kgo.Client
	waitFor(t, "alice to authenticate", 30*time.Second, func() bool {
		cl, err := kgo.NewClient(kgo.SeedBrokers(clients...), kgo.DialTLSConfig(tlsCfg), kgo.SASL(alice), kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		if err := cl.ProduceSync(pctx, &kgo.Record{Topic: "secure", Value: []byte("first")}).FirstErr(); err != nil {
			cl.Close()
			return false
		}
		prod = cl
		return true
	})
	defer prod.Close()
	for i := range 30 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "secure", Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce with min.insync.replicas=3: %v", err)
		}
	}
	cons := newClient(kgo.SASL(alice), kgo.ConsumeTopics("secure"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < 31 {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		seen += fs.NumRecords()
	}
	// The BROKER and CONTROLLER listeners speak TLS and want a client
	// certificate: the node certificate passes, none does not.
	nodeCert, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{c.nodes[0].addr, c.nodes[0].ctrl} {
		withCert := tlsCfg.Clone()
		withCert.Certificates = []tls.Certificate{nodeCert}
		conn, err := tls.Dial("tcp", addr, withCert)
		if err != nil {
			t.Fatalf("TLS with the node certificate to %s: %v", addr, err)
		}
		conn.Close()
		if err := tlsRefused(addr, tlsCfg); err != nil {
			t.Fatal(err)
		}
	}
	// Every replica is in sync: the followers fetched over TLS and SASL.
	waitFor(t, "full ISRs", 30*time.Second, func() bool {
		m, err := adm.Metadata(ctx, "secure")
		if err != nil {
			return false
		}
		for _, p := range m.Topics["secure"].Partitions {
			if len(p.ISR) != 3 {
				return false
			}
		}
		return true
	})
}

// tlsRefused checks that a TLS client without a certificate is refused
// (TLS 1.3 reports the refusal on the first read).
func tlsRefused(addr string, cfg *tls.Config) error {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !strings.Contains(err.Error(), "timeout") {
		return nil
	}
	return fmt.Errorf("%s accepted a TLS client without a certificate", addr)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
