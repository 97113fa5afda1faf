package inproc

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
	"github.com/stratalog/strata/test/internal/testbin"
)

// node is one in-process node: broker and controller (combined roles).
type node struct {
	t    *testing.T
	id   int32
	over map[string]string
	srv  *server.Server
}

// cluster is n combined nodes sharing a metadata quorum.
type cluster struct {
	t     *testing.T
	nodes []*node
}

// newCluster starts n combined nodes (ids 1..n) with fast heartbeats and
// elections; extra settings apply to every node.
func newCluster(t *testing.T, n int, extra map[string]string) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var voters []string
	for i := 1; i <= n; i++ {
		nd := &node{t: t, id: int32(i), over: map[string]string{
			"node.id":                               fmt.Sprint(i),
			"listen":                                testbin.FreeAddr(t),
			"controller.listen":                     testbin.FreeAddr(t),
			"data.dir":                              t.TempDir(),
			"controller.quorum.tick.ms":             "50",
			"controller.quorum.election.timeout.ms": "500",
			"broker.heartbeat.interval.ms":          "200",
			"broker.session.timeout.ms":             "2000",
			"offsets.topic.num.partitions":          "3",
		}}
		for k, v := range extra {
			nd.over[k] = v
		}
		voters = append(voters, fmt.Sprintf("%d@%s", i, nd.over["controller.listen"]))
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.over["controller.quorum.voters"] = strings.Join(voters, ",")
	}
	// The nodes wait for a quorum as they start: start them together.
	errs := make(chan error, n)
	for _, nd := range c.nodes {
		go func() { errs <- nd.startErr() }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.srv != nil {
				nd.stop()
			}
		}
	})
	return c
}

func logger(id int32) *slog.Logger {
	if os.Getenv("STRATA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (n *node) startErr() error {
	cfg, err := config.LoadBroker("", nil, n.over)
	if err != nil {
		return fmt.Errorf("node %d config: %w", n.id, err)
	}
	srv, err := server.Start(cfg, logger(n.id))
	if err != nil {
		return fmt.Errorf("node %d start: %w", n.id, err)
	}
	n.srv = srv
	return nil
}

func (n *node) start() {
	n.t.Helper()
	if err := n.startErr(); err != nil {
		n.t.Fatal(err)
	}
}

// stop shuts the node down cleanly (controlled shutdown first).
func (n *node) stop() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("node %d shutdown: %v", n.id, err)
	}
	n.srv = nil
}

func (c *cluster) node(id int32) *node { return c.nodes[id-1] }

func (c *cluster) seeds() []string {
	var s []string
	for _, nd := range c.nodes {
		s = append(s, nd.over["listen"])
	}
	return s
}

func (c *cluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...)}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// partitions returns leader and ISR size of each partition of topic, as
// the cluster's metadata says (nil on any error).
func partitions(ctx context.Context, adm *kadm.Client, topic string) map[int32]kadm.PartitionDetail {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		return nil
	}
	return t.Partitions
}
