package cluster

import (
	"fmt"
	"strings"
	"testing"
)

// startListenerCluster starts n nodes, each with three listeners (BROKER
// for inter-broker traffic, CLIENT for the test's clients, CONTROLLER for
// the quorum), the listener names wired as Kafka's keys say, and the
// test's own security settings added (protocol map, TLS, SASL, authorizer).
// It returns the cluster and the CLIENT addresses; nodes are killed (and
// their log tails printed on failure) at cleanup.
func startListenerCluster(t *testing.T, n int, settings ...string) (*testCluster, []string) {
	t.Helper()
	bin := binary(t)
	c := &testCluster{t: t}
	var quorum, clients []string
	for i := 1; i <= n; i++ {
		nd := &node{t: t, id: int32(i), bin: bin, dir: t.TempDir(), addr: freeAddr(t), ctrl: freeAddr(t), http: freeAddr(t)}
		client := freeAddr(t)
		clients = append(clients, client)
		nd.listeners = fmt.Sprintf("BROKER://%s,CLIENT://%s,CONTROLLER://%s", nd.addr, client, nd.ctrl)
		nd.extra = append([]string{
			"--set", "inter.broker.listener.name=BROKER",
			"--set", "controller.listener.names=CONTROLLER",
			"--set", fmt.Sprintf("offsets.topic.replication.factor=%d", n),
		}, settings...)
		quorum = append(quorum, fmt.Sprintf("%d@%s", i, nd.ctrl))
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.voters = strings.Join(quorum, ",")
		nd.start()
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("node %d log tail:\n%s", nd.id, nd.tail())
			}
		}
	})
	return c, clients
}
