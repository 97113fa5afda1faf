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

// interBrokerSessions sums over the nodes what the inter-broker listener
// BROKER saw of its peers' sessions: successful and failed
// re-authentications (KIP-368), and connections closed because a request
// came after their session ended.
func interBrokerSessions(c *testCluster) (reauths, failed, expired float64) {
	// A family with no series yet is not exported (metric says -1).
	count := func(nd *node, name string, labels ...string) float64 { return max(nd.metric(name, labels...), 0) }
	for _, nd := range c.nodes {
		reauths += count(nd, "strata_reauthentications_total", "listener", "BROKER", "result", "success")
		failed += count(nd, "strata_reauthentications_total", "listener", "BROKER", "result", "failure")
		expired += count(nd, "strata_expired_sessions_closed_total", "listener", "BROKER")
	}
	return reauths, failed, expired
}

// expiredCloses returns the nodes' log lines that say a connection was
// closed for a request after its session ended: which request, and when.
func expiredCloses(c *testCluster) string {
	var out []string
	for _, nd := range c.nodes {
		b, _ := os.ReadFile(filepath.Join(nd.dir, "strata.log"))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "without re-authentication") {
				out = append(out, fmt.Sprintf("node %d: %s", nd.id, l))
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestInterBrokerReauthentication: three nodes whose brokers reach each
// other on a SASL_PLAINTEXT listener with PLAIN, where
// connections.max.reauth.ms ends every session after eight seconds. The
// brokers' own connections (replica fetchers, the channel to the
// controller) re-authenticate on the same connection before their
// sessions end (KIP-368): acks=all produces to a topic with three replicas
// and min.insync.replicas=3, each needing every follower's fetch, go on
// across several lifetimes; the peers count re-authentications on the
// inter-broker listener, none failed, and no connection was closed for an
// expired session; every acknowledged record is read back. (The client
// re-authenticates 5 to 15% of the lifetime before the end, as Kafka's
// do: 400 ms at least here, room for a loaded machine's stalls between
// the client's check and the server's; with a lifetime of 3 s, 150 ms
// was not always enough at a load average of 20 on two cores.)
func TestInterBrokerReauthentication(t *testing.T) {
	c, clients := startListenerCluster(t, 3,
		"--set", "listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"--set", "listener.name.broker.sasl.enabled.mechanisms=PLAIN",
		"--set", "sasl.mechanism.inter.broker.protocol=PLAIN",
		"--set", `listener.name.broker.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" password="broker-secret" user_broker="broker-secret";`,
		"--set", "connections.max.reauth.ms=8000",
	)
	newClient := func(opts ...kgo.Opt) *kgo.Client { return seededClient(t, clients, opts...) }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient())
	waitFor(t, "three brokers in the metadata", 60*time.Second, func() bool {
		m, err := adm.Metadata(ctx)
		return err == nil && len(m.Brokers) == 3
	})
	const topic = "reauth"
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")}, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	prod := newClient(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	waitFor(t, "an acks=all produce with three in sync", 30*time.Second, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		defer pcancel()
		return prod.ProduceSync(pctx, &kgo.Record{Value: []byte("first")}).FirstErr() == nil
	})
	acked := map[string]bool{"first": true}

	// Produce until the brokers' connections have re-authenticated many
	// times: each node's two replica fetchers and its channel to the
	// controller re-authenticate every 6.8 to 7.6 s, so 24 is about three
	// lifetimes of each.
	before, _, _ := interBrokerSessions(c)
	start := time.Now()
	for n := 0; ; n++ {
		v := fmt.Sprintf("r%d", n)
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce %d with min.insync.replicas=3: %v", n, err)
		}
		acked[v] = true
		if n%20 != 0 {
			continue
		}
		reauths, failed, expired := interBrokerSessions(c)
		if failed > 0 || expired > 0 {
			t.Fatalf("after %d produces: %v inter-broker re-authentications failed, %v connections closed for an expired session:\n%s", n, failed, expired, expiredCloses(c))
		}
		if reauths-before >= 24 {
			t.Logf("%d acks=all produces in %v across %v re-authentications of the brokers' connections", n+1, time.Since(start).Round(time.Millisecond), reauths-before)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("only %v re-authentications of the brokers' connections in %v", reauths-before, time.Since(start))
		}
	}

	// Every acknowledged record is there.
	cons := newClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	for missing := len(acked); missing > 0; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %d of %d acknowledged records: %v", len(acked)-missing, len(acked), ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v := string(r.Value); acked[v] && !seen[v] {
				seen[v] = true
				missing--
			}
		})
	}
	if _, failed, expired := interBrokerSessions(c); failed > 0 || expired > 0 {
		t.Fatalf("%v inter-broker re-authentications failed, %v connections closed for an expired session:\n%s", failed, expired, expiredCloses(c))
	}
}
