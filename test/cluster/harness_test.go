package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/test/internal/testbin"
)

// node is one strata serve process of a test cluster.
type node struct {
	t      *testing.T
	id     int32
	bin    string
	dir    string
	addr   string // Kafka listener
	ctrl   string // controller listener
	http   string // HTTP listener (metrics, health)
	voters string // the --controller-quorum flag
	roles  string // process.roles; empty: broker,controller
	// listeners, when set, replaces --listen: the node's listeners key
	// (addr must be one of them, for start to wait on).
	listeners string
	extra     []string
	ns        string // network namespace to run in (isolation_test.go); empty: this one
	paused    bool   // SIGSTOPped: clients must not pick it as a seed
	cmd       *exec.Cmd
	logFile   *os.File
	exited    chan error
}

// testCluster is a set of nodes sharing one quorum.
type testCluster struct {
	t     *testing.T
	nodes []*node
}

// fastSettings make elections, heartbeats and fencing quick enough for tests.
var fastSettings = []string{
	"--set", "controller.quorum.tick.ms=50",
	"--set", "controller.quorum.election.timeout.ms=500",
	"--set", "broker.heartbeat.interval.ms=200",
	"--set", "broker.session.timeout.ms=2000",
	"--set", "group.initial.rebalance.delay.ms=0",
	"--set", "offsets.topic.num.partitions=6",
}

func binary(t *testing.T) string { return testbin.Binary(t) }

func freeAddr(t *testing.T) string { return testbin.FreeAddr(t) }

// newCluster prepares n combined nodes (ids 1..n) and starts them all.
func newCluster(t *testing.T, n int) *testCluster { return newRolesCluster(t, n, 0, "") }

// newRolesCluster prepares voters nodes (ids 1..voters) with roles
// voterRoles ("" for combined) and brokers broker-only nodes after them,
// each with the extra serve flags, and starts them all.
func newRolesCluster(t *testing.T, voters, brokers int, voterRoles string, extra ...string) *testCluster {
	t.Helper()
	c := prepareCluster(t, voters, brokers, voterRoles, extra...)
	for _, nd := range c.nodes {
		nd.start()
	}
	return c
}

// prepareCluster is newRolesCluster without starting the nodes.
func prepareCluster(t *testing.T, voters, brokers int, voterRoles string, extra ...string) *testCluster {
	t.Helper()
	bin := binary(t)
	c := &testCluster{t: t}
	var quorum []string
	for i := 1; i <= voters+brokers; i++ {
		nd := &node{t: t, id: int32(i), bin: bin, dir: t.TempDir(), addr: freeAddr(t), http: freeAddr(t), roles: voterRoles, extra: extra}
		if i <= voters {
			nd.ctrl = freeAddr(t)
			quorum = append(quorum, fmt.Sprintf("%d@%s", i, nd.ctrl))
		} else {
			nd.roles = "broker"
		}
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.voters = strings.Join(quorum, ",")
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
		if t.Failed() {
			keep := os.Getenv("STRATA_TEST_KEEP_LOGS")
			for _, nd := range c.nodes {
				t.Logf("node %d log tail:\n%s", nd.id, nd.tail())
				if keep == "" {
					continue
				}
				// The whole log, for a failure the tail does not explain.
				if b, err := os.ReadFile(filepath.Join(nd.dir, "strata.log")); err == nil {
					dst := filepath.Join(keep, fmt.Sprintf("%s-node%d.log", strings.ReplaceAll(t.Name(), "/", "_"), nd.id))
					if err := os.WriteFile(dst, b, 0o644); err != nil {
						t.Logf("keep node %d's log: %v", nd.id, err)
					}
				}
			}
		}
	})
	return c
}

func (n *node) args() []string {
	args := []string{"serve", "--node-id", fmt.Sprint(n.id), "--data-dir", filepath.Join(n.dir, "data"),
		"--controller-quorum", n.voters, "--http-listen", n.http}
	if n.listeners != "" {
		args = append(args, "--set", "listeners="+n.listeners)
	} else {
		args = append(args, "--listen", n.addr)
	}
	if n.ctrl != "" {
		args = append(args, "--controller-listen", n.ctrl)
	}
	if n.roles != "" {
		args = append(args, "--set", "process.roles="+n.roles)
	}
	args = append(args, fastSettings...)
	return append(args, n.extra...)
}

// start launches the process and waits for its Kafka listener.
func (n *node) start() {
	n.t.Helper()
	f, err := os.OpenFile(filepath.Join(n.dir, "strata.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	n.logFile = f
	if n.ns != "" {
		// ip netns exec execs the binary: the process is strata itself.
		n.cmd = exec.Command("ip", append([]string{"netns", "exec", n.ns, n.bin}, n.args()...)...)
	} else {
		n.cmd = exec.Command(n.bin, n.args()...)
	}
	n.cmd.Stdout, n.cmd.Stderr = f, f
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, ch chan error) { ch <- cmd.Wait() }(n.cmd, n.exited)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.exited:
			n.t.Fatalf("node %d exited at start: %v; log:\n%s", n.id, err, n.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", n.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("node %d did not listen on %s; log:\n%s", n.id, n.addr, n.tail())
}

// kill sends SIGKILL (no-op when not running).
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Signal(os.Kill)
	<-n.exited
	n.logFile.Close()
	n.cmd = nil
}

// stop sends SIGTERM and expects a clean exit.
func (n *node) stop() {
	n.t.Helper()
	n.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-n.exited:
		if err != nil {
			n.t.Errorf("node %d exited with %v on SIGINT; log:\n%s", n.id, err, n.tail())
		}
	case <-time.After(30 * time.Second):
		n.t.Fatalf("node %d did not stop on SIGINT", n.id)
	}
	n.logFile.Close()
	n.cmd = nil
}

func (n *node) running() bool { return n.cmd != nil }

func (n *node) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "strata.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// seeds lists the Kafka addresses of the running brokers.
func (c *testCluster) seeds() []string {
	var out []string
	for _, n := range c.nodes {
		if n.running() && !n.paused && n.roles != "controller" {
			out = append(out, n.addr)
		}
	}
	return out
}

func (c *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.seeds()...), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })}, opts...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

func (c *testCluster) admin() *kadm.Client { return kadm.NewClient(c.client()) }

// node returns node id.
func (c *testCluster) node(id int32) *node { return c.nodes[id-1] }

// quorum asks a node directly for the quorum's state.
func (n *node) quorum() (*kmsg.DescribeQuorumResponseTopicPartition, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeQuorumRequest()
	req.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
	resp, err := cl.SeedBrokers()[0].RetriableRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	r := resp.(*kmsg.DescribeQuorumResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("malformed DescribeQuorum response")
	}
	return &r.Topics[0].Partitions[0], nil
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// metadata fetches cluster metadata through any running node.
func (c *testCluster) metadata(ctx context.Context) (kadm.Metadata, error) {
	return c.admin().Metadata(ctx)
}

// leader returns the quorum leader as seen by every running node, or -1
// while they disagree or know none.
func (c *testCluster) leader() int32 {
	leader := int32(-2)
	for _, n := range c.nodes {
		if !n.running() || n.roles == "broker" { // observers answer from their last fetch
			continue
		}
		q, err := n.quorum()
		if err != nil || q.LeaderID < 0 {
			return -1
		}
		if leader != -2 && q.LeaderID != leader {
			return -1
		}
		leader = q.LeaderID
	}
	return leader
}
