package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// createTopic retries through elections and NOT_CONTROLLER until the
// topic exists or timeout passes.
func (c *testCluster) createTopic(ctx context.Context, name string, parts int32, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		res, err := c.admin().CreateTopic(ctx, parts, 1, nil, name)
		if err == nil {
			err = res.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leaders returns each partition's leader of topic.
func (c *testCluster) leaders(ctx context.Context, topic string) (map[int32]int32, error) {
	md, err := c.metadata(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := md.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("topic %s not in metadata", topic)
	}
	out := map[int32]int32{}
	for p, pd := range t.Partitions {
		out[p] = pd.Leader
	}
	return out, nil
}

// leadersMatch reports whether every partition of topic has the leader
// want gives it (-1: none).
func (c *testCluster) leadersMatch(ctx context.Context, topic string, want func(p int32) int32) bool {
	l, err := c.leaders(ctx, topic)
	if err != nil {
		return false
	}
	for p, got := range l {
		if got != want(p) {
			return false
		}
	}
	return true
}

// without returns the original leaders with node's partitions leaderless.
func without(led map[int32]int32, node int32) func(int32) int32 {
	return func(p int32) int32 {
		if led[p] == node {
			return -1
		}
		return led[p]
	}
}

// produce writes n records numbered from first, acks=all, idempotent.
func (c *testCluster) produce(ctx context.Context, topic string, first, n int) error {
	cl := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	var failed atomic.Value
	for i := first; i < first+n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte("r" + strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
}

// consumeAll reads topic from the start until want distinct values are
// seen (as a member of group, if not empty) and returns them.
func (c *testCluster) consumeAll(ctx context.Context, topic, group string, want int) (map[string]bool, error) {
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if group != "" {
		opts = append(opts, kgo.ConsumerGroup(group))
	}
	cl := c.client(opts...)
	defer cl.Close() // leave the group: an idle member would keep partitions
	seen := map[string]bool{}
	for len(seen) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return seen, fmt.Errorf("read %d of %d: %w", len(seen), want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if group != "" {
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return seen, fmt.Errorf("commit: %w", err)
		}
	}
	return seen, nil
}

// TestThreeNodeCluster: three combined nodes form one cluster; a topic's
// partitions spread across them, clients follow leaders, a group's
// coordinator may sit anywhere; killing the controller leader elects
// another and metadata writes go on; a stopped broker's partitions are
// reported leaderless and come back with it; nothing acknowledged is
// lost.
func TestThreeNodeCluster(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	waitFor(t, "three registered brokers", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 3
	})
	if err := c.createTopic(ctx, "spread", 30, 20*time.Second); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	var led map[int32]int32
	waitFor(t, "30 partitions with leaders", 10*time.Second, func() bool {
		var err error
		led, err = c.leaders(ctx, "spread")
		return err == nil && len(led) == 30
	})
	perBroker := map[int32]int{}
	for _, l := range led {
		perBroker[l]++
	}
	if len(perBroker) != 3 || perBroker[1] != 10 || perBroker[2] != 10 || perBroker[3] != 10 {
		t.Fatalf("leaders per broker %v, want 10 each", perBroker)
	}

	forwardedAdmin(t, ctx, c)

	const n = 30000
	if err := c.produce(ctx, "spread", 0, n); err != nil {
		t.Fatalf("produce: %v", err)
	}
	seen, err := c.consumeAll(ctx, "spread", "g1", n)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), n)
	}
	// The group's coordinator is wherever its __consumer_offsets
	// partition is led: often another broker than the one we seeded.
	adm := c.admin()
	coords := adm.FindGroupCoordinators(ctx, "g1")
	if err := coords["g1"].Err; err != nil {
		t.Fatal(err)
	}
	coordinator := coords["g1"].NodeID
	committed, err := adm.FetchOffsets(ctx, "g1")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	committed.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("group g1 committed %d records' worth of offsets, want %d", total, n)
	}
	t.Logf("group g1 coordinated by node %d, committed %d", coordinator, total)

	kcatRecords := kcatRoundTrip(t, c)

	// Kill -9 the controller leader.
	var old int32
	waitFor(t, "an agreed quorum leader", 10*time.Second, func() bool { old = c.leader(); return old > 0 })
	c.node(old).kill()
	took := waitFor(t, "a new controller", 15*time.Second, func() bool { l := c.leader(); return l > 0 && l != old })
	t.Logf("controller %d killed; node %d elected in %v", old, c.leader(), took.Round(time.Millisecond))
	if err := c.createTopic(ctx, "after-failover", 3, 15*time.Second); err != nil {
		t.Fatalf("metadata write after failover: %v", err)
	}
	// Its partitions are reported without a leader once it is fenced.
	waitFor(t, "the dead broker's partitions to be leaderless", 15*time.Second, func() bool {
		return c.leadersMatch(ctx, "spread", without(led, old))
	})
	// Restart it: it catches up with the metadata written while it was
	// down and leads its partitions again.
	c.node(old).start()
	waitFor(t, "the restarted node to catch up", 20*time.Second, func() bool {
		q, err := c.node(old).quorum()
		if err != nil || q.LeaderID < 0 || !c.leadersMatch(ctx, "spread", func(p int32) int32 { return led[p] }) {
			return false
		}
		cl := c.client(kgo.SeedBrokers(c.node(old).addr))
		md, err := kadm.NewClient(cl).Metadata(ctx, "after-failover")
		return err == nil && md.Topics["after-failover"].Err == nil
	})

	// A graceful stop moves leadership at once (controlled shutdown). The
	// victim is group g1's coordinator: __consumer_offsets is replicated,
	// so another broker takes the group over, replayed from its replica,
	// with every offset committed.
	victim := coordinator
	c.node(victim).stop()
	waitFor(t, "group g1's committed offsets from its new coordinator", 15*time.Second, func() bool {
		fctx, fcancel := context.WithTimeout(ctx, 3*time.Second)
		defer fcancel()
		got, err := c.admin().FetchOffsets(fctx, "g1")
		if err != nil {
			return false
		}
		var sum int64
		got.Each(func(o kadm.OffsetResponse) { sum += o.At })
		return sum == n
	})
	waitFor(t, "a stopped broker's partitions to be leaderless", 5*time.Second, func() bool {
		return c.leadersMatch(ctx, "spread", without(led, victim))
	})
	// The CLI shows the fenced broker and the quorum (whichever node it
	// asks may learn of the fencing a moment after the one that answered
	// above, so wait for it).
	brokers := ""
	waitFor(t, fmt.Sprintf("strata cluster brokers to list 3 brokers, node %d fenced", victim), 10*time.Second, func() bool {
		brokers = runCLI(t, c, "cluster", "brokers", "--json")
		var rows []struct {
			NodeID int32  `json:"node_id"`
			State  string `json:"state"`
		}
		if err := json.Unmarshal([]byte(brokers), &rows); err != nil {
			t.Fatalf("strata cluster brokers --json: %v\n%s", err, brokers)
		}
		for _, r := range rows {
			if want := map[bool]string{true: "fenced", false: "online"}[r.NodeID == victim]; r.State != want {
				return false
			}
		}
		return len(rows) == 3
	})
	// Describe works with partitions offline: they show no leader and no
	// offsets, the others theirs.
	var described []struct {
		Partitions []struct {
			Partition     int32 `json:"partition"`
			Leader        int32 `json:"leader"`
			HighWatermark int64 `json:"high_watermark"`
		} `json:"partitions"`
	}
	waitFor(t, fmt.Sprintf("strata topic describe to show node %d's partitions offline, the others with offsets", victim), 10*time.Second, func() bool {
		described = nil
		if err := json.Unmarshal([]byte(runCLI(t, c, "topic", "describe", "spread", "--json")), &described); err != nil || len(described) != 1 {
			t.Fatalf("strata topic describe --json: %v", err)
		}
		for _, p := range described[0].Partitions {
			offline := led[p.Partition] == victim
			if offline != (p.Leader == -1) || offline != (p.HighWatermark == -1) {
				return false
			}
		}
		return len(described[0].Partitions) == 30
	})
	// The victim may have been the quorum leader: wait for the new one.
	quorum := ""
	waitFor(t, "strata cluster quorum to show the leader and two followers", 15*time.Second, func() bool {
		l := c.leader()
		quorum = runCLI(t, c, "cluster", "quorum")
		return l > 0 && strings.Contains(quorum, fmt.Sprintf("LEADER          %d", l)) && strings.Count(quorum, "follower") == 2
	})
	t.Logf("strata cluster quorum with node %d stopped:\n%s", victim, quorum)
	c.node(victim).start()
	waitFor(t, "leadership back after restart", 20*time.Second, func() bool {
		return c.leadersMatch(ctx, "spread", func(p int32) int32 { return led[p] })
	})
	// Every acknowledged record is still there, and the group resumes
	// from its committed offsets: new records only.
	seen, err = c.consumeAll(ctx, "spread", "", n+kcatRecords)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !seen["r"+strconv.Itoa(i)] {
			t.Fatalf("acknowledged record r%d is missing after the restarts", i)
		}
	}
	if err := c.produce(ctx, "spread", n, 300); err != nil {
		t.Fatalf("produce after restarts: %v", err)
	}
	again, err := c.consumeAll(ctx, "spread", "g1", 300)
	if err != nil {
		t.Fatal(err)
	}
	for v := range again {
		if i, err := strconv.Atoi(strings.TrimPrefix(v, "r")); err == nil && i < n {
			t.Fatalf("group g1 re-read %s after its offsets were committed", v)
		}
	}
}

// kcatRoundTrip produces and consumes through kcat (librdkafka) when it is
// installed: it must find partition leaders across brokers. It returns how
// many records it added.
func kcatRoundTrip(t *testing.T, c *testCluster) int {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Log("kcat not installed; skipping the librdkafka round trip")
		return 0
	}
	brokers := strings.Join(c.seeds(), ",")
	var in bytes.Buffer
	for i := range 600 {
		fmt.Fprintf(&in, "kcat-%d\n", i)
	}
	prod := exec.Command("kcat", "-b", brokers, "-P", "-t", "spread", "-X", "topic.partitioner=random")
	prod.Stdin = &in
	if out, err := prod.CombinedOutput(); err != nil {
		t.Fatalf("kcat produce: %v\n%s", err, out)
	}
	out, err := exec.Command("kcat", "-b", brokers, "-C", "-t", "spread", "-e", "-q", "-o", "beginning").Output()
	if err != nil {
		t.Fatalf("kcat consume: %v", err)
	}
	got := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "kcat-") {
			got++
		}
	}
	if got != 600 {
		t.Fatalf("kcat read %d of its 600 records back", got)
	}
	return 600
}

// TestFiveNodeQuorum: five controllers tolerate two dead; with three dead
// metadata writes fail with a clear error, and after they return every
// node converges on the same metadata with nothing lost.
func TestFiveNodeQuorum(t *testing.T) {
	c := newCluster(t, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitFor(t, "five registered brokers", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 5
	})
	if err := c.createTopic(ctx, "a", 5, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	var leader int32
	waitFor(t, "a quorum leader", 10*time.Second, func() bool { leader = c.leader(); return leader > 0 })
	// Two dead, the leader among them.
	dead := []int32{leader, leader%5 + 1}
	for _, id := range dead {
		c.node(id).kill()
	}
	if err := c.createTopic(ctx, "b", 5, 20*time.Second); err != nil {
		t.Fatalf("with two of five controllers dead: %v", err)
	}
	// A third dead: no majority.
	third := dead[1]%5 + 1
	c.node(third).kill()
	dead = append(dead, third)
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	// A write refused with REQUEST_TIMED_OUT has an unknown outcome, as in
	// Kafka: the old leader may have it in its log and commit it once the
	// others return. Hence its own name: "maybe".
	res, err := c.admin().CreateTopic(wctx, 1, 1, nil, "maybe")
	wcancel()
	if err == nil {
		err = res.Err
	}
	if err == nil {
		t.Fatal("created a topic with three of five controllers dead")
	}
	t.Logf("with three of five dead, CreateTopics fails: %v", err)
	for _, id := range dead {
		c.node(id).start()
	}
	if err := c.createTopic(ctx, "c", 5, 30*time.Second); err != nil {
		t.Fatalf("after the controllers returned: %v", err)
	}
	// Every node converges on the same topics: a, b and c, and "maybe"
	// on all of them or on none.
	waitFor(t, "every node to see topics a, b and c, and the same outcome for maybe", 30*time.Second, func() bool {
		maybe := map[bool]int{}
		for _, n := range c.nodes {
			cl := c.client(kgo.SeedBrokers(n.addr))
			md, err := kadm.NewClient(cl).ListTopics(ctx)
			if err != nil {
				return false
			}
			for _, name := range []string{"a", "b", "c"} {
				if md[name].Err != nil || len(md[name].Partitions) != 5 {
					return false
				}
			}
			maybe[md.Has("maybe")]++
		}
		return len(maybe) == 1
	})
}

// TestBadInput: a malformed quorum flag, another cluster's data dir, a
// second process claiming a live node's id, and garbage on the controller
// port get clear errors and leave the cluster working.
func TestBadInput(t *testing.T) {
	bin := binary(t)
	for _, tc := range []struct {
		name, quorum, want string
	}{
		{"no at", "1-127.0.0.1:1", "not id@host:port"},
		{"bad port", "1@127.0.0.1:x", "bad port"},
		{"duplicate id", "1@127.0.0.1:1,1@127.0.0.1:2", "listed twice"},
		{"self missing", "2@127.0.0.1:1,3@127.0.0.1:2", "does not include this node"},
	} {
		out, err := exec.Command(bin, "serve", "--node-id", "1", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--controller-quorum", tc.quorum).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: strata serve exited with %v, output %q; want a failure mentioning %q", tc.name, err, out, tc.want)
		}
	}

	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor(t, "three registered brokers", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 3
	})

	// Another cluster's id on node 3's data dir.
	n3 := c.node(3)
	n3.stop()
	out, err := exec.Command(bin, append(n3.args(), "--cluster-id", "MkU3OEVBNTcwNTJENDM2Qk")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "belongs to cluster") {
		t.Errorf("wrong cluster id: exited with %v, output %q", err, out)
	}
	// Node 3 on a fresh data dir (its disk lost, or another machine given
	// its configuration): a voter that forgot the log it acknowledged
	// stops with a message, or, if the leader does not remember how far
	// it had replicated to node 3, registers and refuses as a known node
	// id on a fresh data dir; it exits non-zero either way.
	fresh := &node{t: t, id: 3, bin: bin, dir: t.TempDir(), addr: freeAddr(t), ctrl: n3.ctrl, http: freeAddr(t), voters: n3.voters}
	sout := runUntilExit(t, bin, fresh.args(), 60*time.Second)
	if !strings.Contains(sout, "lacks entries the quorum has committed") && !strings.Contains(sout, "node id 3 is already known to the cluster") {
		t.Errorf("node 3 on a fresh data dir: want a refusal, output:\n%s", sout)
	}
	if strings.Contains(sout, "goroutine ") {
		t.Errorf("node 3 on a fresh data dir: a stack trace:\n%s", sout)
	}
	t.Logf("node 3 on a fresh data dir: %s", lastLine(sout))
	n3.start()

	// Garbage on the controller port: the connection is closed.
	conn, err := net.Dial("tcp", c.node(1).ctrl)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xff\xff\xff garbage"))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("garbage on the controller port: the connection was not closed: %v", err)
	}
	conn.Close()

	// A second voter claiming node 2 at another controller address: the
	// quorum's peers refuse it (they check a voter at its address), so it
	// never registers; the real node 2 stays. (A broker claiming a live
	// node id exits: TestNodeIDTaken.)
	impostor := &node{t: t, id: 2, bin: bin, dir: t.TempDir(), addr: freeAddr(t), ctrl: freeAddr(t), voters: c.node(1).voters}
	impostor.start()
	defer impostor.kill()
	waitFor(t, "the voters to refuse the impostor", 30*time.Second, func() bool {
		return strings.Contains(c.node(1).tail()+c.node(3).tail(), "rejected peer connection")
	})
	// Node 2 stays registered at its own address in every answer; node 3,
	// restarted above, may take a while to register again (its first
	// attempt can find no active controller), so wait for all three.
	var brokers []kadm.BrokerDetail
	waitFor(t, "three brokers, node 2 at its own address", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		if err != nil {
			return false
		}
		brokers = md.Brokers
		for _, b := range md.Brokers {
			if addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); b.NodeID == 2 && addr != c.node(2).addr {
				t.Fatalf("after an impostor node 2: node 2 registered at %s, want %s", addr, c.node(2).addr)
			}
		}
		return len(md.Brokers) == 3 && slices.ContainsFunc(md.Brokers, func(b kadm.BrokerDetail) bool { return b.NodeID == 2 })
	})
	t.Logf("after the impostor: brokers %+v", brokers)
	// The cluster still takes metadata writes.
	if err := c.createTopic(ctx, "still-working", 3, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestNodeIDTaken: a broker started with the node id of a live broker
// exits non-zero, naming the node id and the live broker's address,
// instead of serving an empty cluster; a broker started with a fresh data
// dir and a node id the cluster knows (another node's configuration
// copied, or a node whose data dir was lost) refuses too, and says how to
// replace a lost disk on purpose. The real broker stays.
func TestNodeIDTaken(t *testing.T) {
	c := newRolesCluster(t, 3, 1, "controller")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor(t, "broker 4 registered", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 1
	})
	bin := binary(t)
	n4 := c.node(4)
	impostor := &node{t: t, id: 4, bin: bin, dir: t.TempDir(), addr: freeAddr(t), http: freeAddr(t), voters: n4.voters, roles: "broker"}
	out := runUntilExit(t, bin, impostor.args(), 60*time.Second)
	if !strings.Contains(out, "node id 4 is registered by another live broker") || !strings.Contains(out, n4.addr) {
		t.Errorf("a second broker 4: want a refusal naming node id 4 and %s, output:\n%s", n4.addr, out)
	}
	t.Logf("a second broker 4: %s", lastLine(out))
	if _, err := os.Stat(filepath.Join(impostor.dir, "data", "meta.properties.unregistered")); err != nil {
		t.Errorf("the refused data dir should stay unregistered: %v", err)
	}

	// Node 4 stopped: its configuration on a fresh data dir.
	n4.stop()
	fresh := &node{t: t, id: 4, bin: bin, dir: t.TempDir(), addr: freeAddr(t), http: freeAddr(t), voters: n4.voters, roles: "broker"}
	out = runUntilExit(t, bin, fresh.args(), 60*time.Second)
	if !strings.Contains(out, "node id 4 is already known to the cluster") || !strings.Contains(out, "meta.properties.unregistered") {
		t.Errorf("a fresh data dir with a known node id: want a refusal naming node id 4 and how to replace a disk, output:\n%s", out)
	}
	t.Logf("broker 4 on a fresh data dir: %s", lastLine(out))
	// A restart of the real node 4 registers and serves.
	n4.start()
	waitFor(t, "node 4 back at its own address", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		if err != nil {
			return false
		}
		return slices.ContainsFunc(md.Brokers, func(b kadm.BrokerDetail) bool {
			return b.NodeID == 4 && net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) == n4.addr
		})
	})
	if err := c.createTopic(ctx, "after-impostors", 1, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

// lastLine is the last line of a process's output: the error it exited
// with.
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	return out[strings.LastIndex(out, "\n")+1:]
}

// runUntilExit runs strata with args and returns its output once it has
// exited non-zero; it fails the test if it exits cleanly or runs longer
// than timeout.
func runUntilExit(t *testing.T, bin string, args []string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("strata %s still running after %v; output:\n%s", strings.Join(args, " "), timeout, out)
	}
	if err == nil {
		t.Fatalf("strata %s exited cleanly, want a refusal; output:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

// runCLI runs the strata command line against the cluster.
func runCLI(t *testing.T, c *testCluster, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.nodes[0].bin, append(args, "--brokers", strings.Join(c.seeds(), ","))...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// forwardedAdmin sends admin requests straight to a broker that is not the
// active controller: it relays them there, and sees the result at once.
func forwardedAdmin(t *testing.T, ctx context.Context, c *testCluster) {
	t.Helper()
	var leader int32
	waitFor(t, "an agreed quorum leader", 10*time.Second, func() bool { leader = c.leader(); return leader > 0 })
	other := leader%int32(len(c.nodes)) + 1
	cl := c.client(kgo.SeedBrokers(c.node(other).addr))
	if _, err := kadm.NewClient(cl).Metadata(ctx); err != nil { // learn broker ids
		t.Fatal(err)
	}
	br := cl.Broker(int(other))
	// Until it has caught up with the metadata log (registered), a broker
	// answers every topic LEADER_NOT_AVAILABLE: wait for node other to
	// serve "spread", then everything below is immediate.
	waitFor(t, fmt.Sprintf("node %d to serve metadata", other), 10*time.Second, func() bool {
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("spread")}}
		resp, err := br.RetriableRequest(ctx, req)
		return err == nil && resp.(*kmsg.MetadataResponse).Topics[0].ErrorCode == 0
	})

	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "forwarded", 3, 1
	create.Topics = append(create.Topics, ct)
	resp, err := br.RetriableRequest(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("CreateTopics through node %d (controller %d): %v", other, leader, kerr.ErrorForCode(code))
	}
	// Ask node other itself (a kadm client asks any broker it knows).
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("forwarded")}}
	mresp, err := br.RetriableRequest(ctx, mreq)
	if err != nil {
		t.Fatal(err)
	}
	if mt := mresp.(*kmsg.MetadataResponse).Topics[0]; mt.ErrorCode != 0 || len(mt.Partitions) != 3 {
		t.Fatalf("node %d does not show the topic it created: %v, %d partitions", other, kerr.ErrorForCode(mt.ErrorCode), len(mt.Partitions))
	}

	alter := kmsg.NewPtrIncrementalAlterConfigsRequest()
	ar := kmsg.NewIncrementalAlterConfigsRequestResource()
	ar.ResourceType, ar.ResourceName = kmsg.ConfigResourceTypeTopic, "forwarded"
	ar.Configs = []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Op: kmsg.IncrementalAlterConfigOpSet, Value: kmsg.StringPtr("60000")}}
	alter.Resources = append(alter.Resources, ar)
	if resp, err = br.RetriableRequest(ctx, alter); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode; code != 0 {
		t.Fatalf("IncrementalAlterConfigs through node %d: %v", other, kerr.ErrorForCode(code))
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"forwarded"}
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: kmsg.StringPtr("forwarded")}}
	if resp, err = br.RetriableRequest(ctx, del); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode; code != 0 {
		t.Fatalf("DeleteTopics through node %d: %v", other, kerr.ErrorForCode(code))
	}
	// (Metadata without auto-creation: kadm's would create it again.)
	mreq = kmsg.NewPtrMetadataRequest()
	mreq.AllowAutoTopicCreation = false
	mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("forwarded")}}
	if resp, err = br.RetriableRequest(ctx, mreq); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.MetadataResponse).Topics[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("node %d still shows the topic it deleted (code %d)", other, code)
	}

	// A client may not create internal topics through a broker.
	internal := kmsg.NewPtrCreateTopicsRequest()
	it := kmsg.NewCreateTopicsRequestTopic()
	it.Topic, it.NumPartitions, it.ReplicationFactor = "__consumer_offsets", 1, 1
	internal.Topics = append(internal.Topics, it)
	if resp, err = br.RetriableRequest(ctx, internal); err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code == 0 {
		t.Fatal("a client created __consumer_offsets through a broker")
	}
}

// TestSeparateRoles: three controller-only nodes and two broker-only
// nodes. Clients talk to the brokers only; topics are placed on the
// brokers; the brokers relay admin requests to the active controller and
// follow the metadata log without voting; the controllers fail over under
// them.
func TestSeparateRoles(t *testing.T) {
	c := newRolesCluster(t, 3, 2, "controller")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitFor(t, "the two brokers to register", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 2
	})
	if err := c.createTopic(ctx, "roles", 4, 20*time.Second); err != nil {
		t.Fatalf("create topic through a broker: %v", err)
	}
	var led map[int32]int32
	waitFor(t, "4 partitions with leaders", 10*time.Second, func() bool {
		var err error
		led, err = c.leaders(ctx, "roles")
		return err == nil && len(led) == 4 && !slices.Contains(slices.Collect(maps.Values(led)), -1)
	})
	per := map[int32]int{}
	for _, l := range led {
		per[l]++
	}
	if per[4] != 2 || per[5] != 2 {
		t.Fatalf("leaders per node %v, want two partitions on each broker (4 and 5) and none on controllers", per)
	}
	const n = 2000
	if err := c.produce(ctx, "roles", 0, n); err != nil {
		t.Fatal(err)
	}
	if seen, err := c.consumeAll(ctx, "roles", "rg", n); err != nil || len(seen) != n {
		t.Fatalf("consumed %d of %d: %v", len(seen), n, err)
	}
	// The brokers see the quorum (DescribeQuorum answered by an observer).
	quorum := runCLI(t, c, "cluster", "quorum")
	if strings.Count(quorum, "follower")+strings.Count(quorum, "leader ") < 3 {
		t.Errorf("strata cluster quorum through a broker:\n%s", quorum)
	}
	// Kill the active controller: the others elect a new one, the brokers
	// stay registered and metadata writes through them go on.
	var old int32
	waitFor(t, "an agreed quorum leader", 10*time.Second, func() bool { old = c.leader(); return old > 0 })
	c.node(old).kill()
	waitFor(t, "a new controller", 15*time.Second, func() bool { l := c.leader(); return l > 0 && l != old })
	if err := c.createTopic(ctx, "roles-after", 2, 20*time.Second); err != nil {
		t.Fatalf("create topic after the controller failed over: %v", err)
	}
	// For longer than the session timeout, nobody may be fenced: every
	// answer lists both brokers.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		md, err := c.metadata(ctx)
		if err != nil {
			continue // a node between answers; fencing shows as a missing broker
		}
		if len(md.Brokers) != 2 {
			t.Fatalf("after the failover the brokers are %+v, want both", md.Brokers)
		}
	}
	// A broker stopped and back: its partitions go and return.
	c.node(5).stop()
	waitFor(t, "broker 5's partitions to be leaderless", 10*time.Second, func() bool {
		return c.leadersMatch(ctx, "roles", without(led, 5))
	})
	c.node(5).start()
	waitFor(t, "broker 5 to lead again", 20*time.Second, func() bool {
		return c.leadersMatch(ctx, "roles", func(p int32) int32 { return led[p] })
	})
	if seen, err := c.consumeAll(ctx, "roles", "", n); err != nil || len(seen) != n {
		t.Fatalf("after restarts consumed %d of %d: %v", len(seen), n, err)
	}
}
