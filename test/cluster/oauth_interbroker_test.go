package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestOAuthBearerInterBroker: three nodes whose brokers reach each other
// on a SASL_PLAINTEXT listener with OAUTHBEARER as the inter-broker
// mechanism, each connection carrying an unsecured token made from
// unsecuredLoginStringClaim_sub (Kafka's default login handler), with an
// ACL authorizer that lets nobody through without an ACL: the brokers'
// principal (User:broker, from the token) is a super user by virtue of
// being the inter-broker principal, so registrations, replica fetches and
// forwarded requests pass. A replication-factor-3 topic with
// min.insync.replicas=3 takes acks=all produces, which needs every
// follower's fetch to have authenticated, for 15 s while the brokers'
// sessions end with their 6-second tokens: their connections
// re-authenticate with fresh tokens before then (KIP-368), and none is
// closed for an expired session.
func TestOAuthBearerInterBroker(t *testing.T) {
	c, clients := startListenerCluster(t, 3,
		"--set", "listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"--set", "listener.name.broker.sasl.enabled.mechanisms=OAUTHBEARER",
		"--set", "sasl.mechanism.inter.broker.protocol=OAUTHBEARER",
		"--set", `listener.name.broker.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="broker" unsecuredLoginLifetimeSeconds="6";`,
		"--set", "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"--set", "allow.everyone.if.no.acl.found=false",
		"--set", "super.users=User:ANONYMOUS",
	)
	newClient := func(opts ...kgo.Opt) *kgo.Client { return seededClient(t, clients, opts...) }
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	adm := kadm.NewClient(newClient())
	waitFor(t, "three brokers in the metadata", 60*time.Second, func() bool {
		m, err := adm.Metadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")}, "oauth-ib"); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	prod := newClient(kgo.RequiredAcks(kgo.AllISRAcks()))
	waitFor(t, "an acks=all produce with three in sync", 30*time.Second, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return prod.ProduceSync(pctx, &kgo.Record{Topic: "oauth-ib", Value: []byte("first")}).FirstErr() == nil
	})
	// The brokers' tokens live 6 s: a session ends when its token
	// expires, so each connection re-authenticates with a new token
	// before then. Replication goes on across several expiries: every
	// acks=all produce of 15 s succeeds.
	before, _, _ := interBrokerSessions(c)
	end := time.Now().Add(15 * time.Second)
	n := 0
	for ; time.Now().Before(end); n++ {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: "oauth-ib", Value: fmt.Appendf(nil, "r%d", n)}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce %d with min.insync.replicas=3: %v", n, err)
		}
	}
	reauths, failed, expired := interBrokerSessions(c)
	if reauths-before == 0 || failed > 0 || expired > 0 {
		t.Fatalf("%v re-authentications of the brokers' connections (want some), %v failed, %v connections closed for an expired session (want none):\n%s", reauths-before, failed, expired, expiredCloses(c))
	}
	for _, nd := range c.nodes {
		b, err := os.ReadFile(filepath.Join(nd.dir, "strata.log"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "SASL session of User:broker expired") {
			t.Fatalf("node %d closed a broker's connection for an expired session", nd.id)
		}
	}
	t.Logf("%d acks=all produces across %v re-authentications of the brokers' connections", n, reauths-before)
	waitFor(t, "full ISRs", 30*time.Second, func() bool {
		m, err := adm.Metadata(ctx, "oauth-ib")
		if err != nil {
			return false
		}
		for _, p := range m.Topics["oauth-ib"].Partitions {
			if len(p.ISR) != 3 {
				return false
			}
		}
		return true
	})
}
