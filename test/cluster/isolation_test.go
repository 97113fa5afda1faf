package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratalog/strata/internal/record"
)

// netns puts each node in a network namespace of its own, on a bridge in
// this (the test's) namespace, so that the test reaches every node while
// it cuts nodes off from each other with blackhole routes (as test/chaos
// does). It needs root.
type netns struct {
	t      *testing.T
	id     string
	n      int
	subnet string
}

func (e *netns) name(i int) string { return fmt.Sprintf("stc%s-n%d", e.id, i) }
func (e *netns) bridge() string    { return "stcb" + e.id }
func (e *netns) veth(i int) string { return fmt.Sprintf("stcv%sn%d", e.id, i) }
func (e *netns) peer(i int) string { return fmt.Sprintf("stcp%sn%d", e.id, i) }
func (e *netns) ip(i int) string   { return fmt.Sprintf("%s.%d", e.subnet, i) }
func (e *netns) run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetns builds n namespaces, or skips the test where it cannot.
func newNetns(t *testing.T, n int) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	// A pid-derived id keeps names short (link names have 15 bytes)
	// and apart from concurrent runs; 10.78.K/24 keeps off test/chaos's
	// 10.77.K and off any route in use.
	e := &netns{t: t, id: fmt.Sprint(os.Getpid() % 100000), n: n}
	routes, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Skipf("ip route: %v", err)
	}
	for k := range 240 {
		s := fmt.Sprintf("10.78.%d", 10+(os.Getpid()+k)%240)
		if !strings.Contains(string(routes), s+".") {
			e.subnet = s
			break
		}
	}
	if e.subnet == "" {
		t.Skip("no free 10.78.K.0/24")
	}
	t.Cleanup(e.teardown)
	steps := [][]string{
		{"ip", "link", "add", e.bridge(), "type", "bridge"},
		{"ip", "addr", "add", e.ip(254) + "/24", "dev", e.bridge()},
		{"ip", "link", "set", e.bridge(), "up"},
	}
	for i := 1; i <= n; i++ {
		steps = append(steps,
			[]string{"ip", "netns", "add", e.name(i)},
			[]string{"ip", "link", "add", e.veth(i), "type", "veth", "peer", "name", e.peer(i)},
			[]string{"ip", "link", "set", e.peer(i), "netns", e.name(i)},
			[]string{"ip", "link", "set", e.veth(i), "master", e.bridge()},
			[]string{"ip", "link", "set", e.veth(i), "up"},
			[]string{"ip", "netns", "exec", e.name(i), "ip", "addr", "add", e.ip(i) + "/24", "dev", e.peer(i)},
			[]string{"ip", "netns", "exec", e.name(i), "ip", "link", "set", e.peer(i), "up"},
			[]string{"ip", "netns", "exec", e.name(i), "ip", "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := e.run(s...); err != nil {
			t.Fatalf("network namespaces: %v", err)
		}
	}
	return e
}

// isolate cuts node i off from every other node, both ways; the test
// still reaches it.
func (e *netns) isolate(i int) {
	e.t.Helper()
	for j := 1; j <= e.n; j++ {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if err := e.run("ip", "netns", "exec", e.name(r[0]), "ip", "route", "add", "blackhole", e.ip(r[1])+"/32"); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// heal removes the cuts isolate(i) made.
func (e *netns) heal(i int) {
	e.t.Helper()
	for j := 1; j <= e.n; j++ {
		if j == i {
			continue
		}
		for _, r := range [][2]int{{i, j}, {j, i}} {
			if err := e.run("ip", "netns", "exec", e.name(r[0]), "ip", "route", "del", "blackhole", e.ip(r[1])+"/32"); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

func (e *netns) teardown() {
	for i := 1; i <= e.n; i++ {
		out, _ := exec.Command("ip", "netns", "pids", e.name(i)).Output()
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
		exec.Command("ip", "netns", "del", e.name(i)).Run()
		exec.Command("ip", "link", "del", e.veth(i)).Run()
	}
	exec.Command("ip", "link", "del", e.bridge()).Run()
}

// newNetnsCluster starts n combined nodes, node i in namespace i.
func newNetnsCluster(t *testing.T, e *netns, extra ...string) *testCluster {
	t.Helper()
	bin := binary(t)
	c := &testCluster{t: t}
	var quorum []string
	for i := 1; i <= e.n; i++ {
		nd := &node{t: t, id: int32(i), bin: bin, dir: t.TempDir(), addr: e.ip(i) + ":9092", ctrl: e.ip(i) + ":9093",
			ns: e.name(i), extra: extra}
		quorum = append(quorum, fmt.Sprintf("%d@%s", i, nd.ctrl))
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.voters = strings.Join(quorum, ",")
	}
	for _, nd := range c.nodes {
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
	return c
}

// clientOf is a client that knows only the given nodes.
func (c *testCluster) clientOf(ids []int32, opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	var seeds []string
	for _, id := range ids {
		seeds = append(seeds, c.node(id).addr)
	}
	return seededClient(c.t, seeds, opts...)
}

// seededClient is a franz-go client seeded with the given addresses, quick
// to refresh metadata and retry (what the cluster tests await), closed
// when the test ends.
func seededClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceDirect sends one acks=all Produce of a single record straight to
// node id (no metadata, no retries) and returns the partition's answer.
func produceDirect(ctx context.Context, t *testing.T, n *node, topic string, value string, timeout time.Duration) (int64, error) {
	t.Helper()
	batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(),
		[]record.Record{{Value: []byte(value)}})
	if err != nil {
		t.Fatal(err)
	}
	// Produce v12 names the topic (v13 would need its id).
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(kmsg.Produce.Int16(), 12)
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.addr), kgo.MaxVersions(versions))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(timeout / time.Millisecond)
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	rctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(rctx, req)
	if err != nil {
		return -1, err
	}
	r := resp.(*kmsg.ProduceResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		return -1, fmt.Errorf("malformed produce response")
	}
	p := r.Topics[0].Partitions[0]
	return p.BaseOffset, kerr.ErrorForCode(p.ErrorCode)
}

// logHolds reports whether partition 0 of topic on node n holds value in
// its segment files (records are uncompressed).
func logHolds(t *testing.T, n *node, topic, value string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.dir, "data", topic+"-0", "*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("node %d: no segments of %s-0: %v", n.id, topic, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(value)) {
			return true
		}
	}
	return false
}

// TestReplicationIsolatedLeader: the leader of an rf=3 partition is cut
// off from the two other brokers (network namespaces; the test still
// reaches it). Writes sent straight to it with acks=all are never
// acknowledged: it cannot advance its high watermark alone, and the ISR
// shrink it asks for cannot reach the controller (it times out, or answers
// NOT_ENOUGH_REPLICAS / NOT_LEADER_OR_FOLLOWER). The majority side elects a
// new leader and takes acks=all writes. Once healed, the old leader
// truncates what only it had, rejoins the ISR, and when it leads again
// (preferred election) its log holds every acknowledged record once, in
// order, and none of the writes it took while isolated.
func TestReplicationIsolatedLeader(t *testing.T) {
	e := newNetns(t, 3)
	c := newNetnsCluster(t, e, "--set", "replica.lag.time.max.ms=3000")
	ctx := ctxT(t, 4*time.Minute)
	const topic = "isolated"
	c.waitBrokers(ctx, 3)
	if res, err := c.admin().CreateTopic(ctx, 1, 3, nil, topic); err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, 1, 30*time.Second)
	old, _, replicas := c.partitionState(topic, 0)
	if old != replicas[0] {
		t.Fatalf("leader %d is not the preferred replica of %v", old, replicas)
	}
	var majority []int32
	for _, r := range replicas {
		if r != old {
			majority = append(majority, r)
		}
	}

	acked := map[string]int64{}
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce := func(cl *kgo.Client, tag string, n int) {
		t.Helper()
		for i := range n {
			v := fmt.Sprintf("%s-%d", tag, i)
			r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).First()
			if err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			acked[v] = r.Offset
		}
	}
	produce(prod, "before", 50)

	t.Logf("isolating node %d, leader of %s[0] (replicas %v)", old, topic, replicas)
	e.isolate(int(old))

	// The isolated leader takes the writes but can never acknowledge them.
	var isolated []string
	for i := range 3 {
		v := fmt.Sprintf("isolated-%d", i)
		isolated = append(isolated, v)
		off, err := produceDirect(ctx, t, c.node(old), topic, v, 2*time.Second)
		if err == nil {
			t.Fatalf("the isolated leader acknowledged %s at offset %d with acks=all", v, off)
		}
		t.Logf("isolated leader: %s -> %v", v, err)
	}

	// They are in its log, past its high watermark.
	if !logHolds(t, c.node(old), topic, "isolated-2") {
		t.Fatalf("node %d's log does not hold the writes it timed out on: nothing for the heal to truncate", old)
	}

	// The majority elects a new leader and goes on.
	maj := c.clientOf(majority, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	adm := kadm.NewClient(maj)
	waitFor(t, "a new leader on the majority side", 30*time.Second, func() bool {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		md, err := adm.Metadata(mctx, topic)
		if err != nil {
			return false
		}
		p, ok := md.Topics[topic].Partitions[0]
		return ok && p.Leader > 0 && p.Leader != old
	})
	produce(maj, "majority", 50)

	// Still nothing acknowledged by the old leader, the ISR shrink or
	// not (it cannot reach the controller to learn either).
	if off, err := produceDirect(ctx, t, c.node(old), topic, "isolated-late", 2*time.Second); err == nil {
		t.Fatalf("the isolated leader acknowledged a write at offset %d after the new leader took over", off)
	} else {
		isolated = append(isolated, "isolated-late")
		t.Logf("isolated leader, later: %v", err)
	}

	t.Logf("healing node %d", old)
	e.heal(int(old))
	c.waitFullISR(topic, 1, 60*time.Second)
	produce(prod, "after", 50)

	// Make the old leader lead again and read its log.
	waitFor(t, "node back as leader (preferred election)", 60*time.Second, func() bool {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c.admin().ElectLeaders(ectx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
		leader, isr, _ := c.partitionState(topic, 0)
		return leader == old && len(isr) == 3
	})
	// A leader just elected learns its followers' offsets on their next
	// fetches: its high watermark (what ListOffsets answers) may trail the
	// acknowledged end for a moment. Wait for it to cover every
	// acknowledged record.
	var ackedEnd int64
	for _, off := range acked {
		ackedEnd = max(ackedEnd, off+1)
	}
	var end kadm.ListedOffset
	waitFor(t, "the new leader's high watermark to cover the acknowledged records", 30*time.Second, func() bool {
		ends, err := c.admin().ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		end, _ = ends.Lookup(topic, 0)
		return end.Err == nil && end.Offset >= ackedEnd
	})
	cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	var got []string
	offsets := map[string]int64{}
	for next := int64(0); next < end.Offset; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(got), len(acked), ctx.Err())
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Value))
			offsets[string(r.Value)] = r.Offset
			next = r.Offset + 1
		})
	}
	for _, v := range isolated {
		if slices.Contains(got, v) {
			t.Errorf("%s, written only to the isolated leader and never acknowledged, survived", v)
		}
	}
	seen := map[string]bool{}
	for _, v := range got {
		if seen[v] {
			t.Errorf("%s read twice", v)
		}
		seen[v] = true
	}
	for v, off := range acked {
		if offsets[v] != off || !seen[v] {
			t.Errorf("acknowledged %s at offset %d; read at %d (present: %v)", v, off, offsets[v], seen[v])
		}
	}
	// The order the producers saw: before, majority, after.
	want := 0
	for _, tag := range []string{"before", "majority", "after"} {
		for i := range 50 {
			if v := fmt.Sprintf("%s-%d", tag, i); want >= len(got) || got[want] != v {
				t.Fatalf("record %d of the log is %q, want %q", want, got[min(want, len(got)-1)], v)
			}
			want++
		}
	}
	if len(got) != want {
		t.Errorf("the log holds %d records, want the %d acknowledged", len(got), want)
	}
	if logHolds(t, c.node(old), topic, "isolated-") {
		t.Errorf("node %d's segments still hold writes it took while isolated", old)
	}
	t.Logf("old leader %d leads again with the %d acknowledged records; the %d it took alone are gone (log at %s)",
		old, len(got), len(isolated), filepath.Join(c.node(old).dir, "data"))
}
