package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/test/internal/testbin"
)

// TestLeaderFullDiskMovesLeadership fills the disk of the leader of an
// rf=3, min.insync.replicas=2 partition under acks=all produce (KIP-858):
// its appends fail, its heartbeat names its log directory offline, and
// the controller moves the leadership to another in-sync replica and
// takes it out of the ISR, within a bounded time; produce goes on through
// the other two. Once space returns, a probe write brings the directory
// back online, the replica catches up as a follower and rejoins the ISR.
// Every acknowledged record is read back exactly once, in order.
func TestLeaderFullDiskMovesLeadership(t *testing.T) {
	c := prepareCluster(t, 3, 0, "", "--set", "replica.lag.time.max.ms=2000")
	// Every node on its own tmpfs: the one to fill is chosen once the
	// quorum has a leader.
	for _, nd := range c.nodes {
		testbin.MountTmpfs(t, filepath.Join(nd.dir, "data"), 64<<20)
		t.Cleanup(nd.kill) // before the tmpfs is unmounted
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	ctx := ctxT(t, 3*time.Minute)
	c.waitBrokers(ctx, 3)
	const topic = "fullleader"
	res, err := c.admin().CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, 3, 30*time.Second)
	// Fill the disk of a broker that is not the active controller, so
	// that its heartbeat carries OfflineLogDirs over the Kafka protocol
	// (BrokerHeartbeat v1), and of the partition it leads.
	waitFor(t, "a quorum leader", 30*time.Second, func() bool { return c.leader() > 0 })
	ctrl := c.leader()
	var full *node
	part := int32(-1)
	for p := range int32(3) {
		if leader, _, _ := c.partitionState(topic, p); leader > 0 && leader != ctrl {
			full, part = c.node(leader), p
			break
		}
	}
	if full == nil {
		t.Fatalf("the active controller (node %d) leads every partition", ctrl)
	}
	data := filepath.Join(full.dir, "data")
	t.Logf("filling node %d's disk (the active controller is node %d); it leads partition %d", full.id, ctrl, part)
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var acked []string
	produce := func(n int, tag string) {
		for i := range n {
			v := fmt.Sprintf("%s-%d", tag, i)
			if err := prod.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			acked = append(acked, v)
		}
	}
	produce(100, "before")

	filler := testbin.Fill(t, data)
	filled := time.Now()
	// Records go on being produced while the test awaits the move: the
	// first that does not fit fails, which takes the directory offline;
	// the producer's retries (KAFKA_STORAGE_ERROR, then
	// NOT_LEADER_OR_FOLLOWER) carry it over to the new leader.
	type result struct {
		acked []string
		err   error
	}
	during := make(chan result, 1)
	go func() {
		var r result
		for i := range 100 {
			v := fmt.Sprintf("during-%d", i)
			if r.err = prod.ProduceSync(ctx, &kgo.Record{Partition: part, Value: []byte(v)}).FirstErr(); r.err != nil {
				r.err = fmt.Errorf("produce %s: %w", v, r.err)
				break
			}
			r.acked = append(r.acked, v)
		}
		during <- r
	}()
	waitFor(t, "leadership to move off the broker with the full disk", 20*time.Second, func() bool {
		leader, isr, _ := c.partitionState(topic, part)
		return leader > 0 && leader != full.id && len(isr) == 2 && !slices.Contains(isr, full.id)
	})
	t.Logf("leadership moved and the ISR shrank %v after the disk filled", time.Since(filled).Round(time.Millisecond))
	r := <-during
	if r.err != nil {
		t.Fatal(r.err)
	}
	acked = append(acked, r.acked...)
	if n := logCount(t, full, "level=ERROR", "log directory offline", "dir="+data, "no space left on device"); n != 1 {
		t.Fatalf("%d log directory ERROR lines on node %d, want 1; log:\n%s", n, full.id, full.tail())
	}
	ctrlLogs := 0
	for _, nd := range c.nodes {
		ctrlLogs += logCount(t, nd, "log directory offline: leadership and ISR membership move", fmt.Sprintf("node=%d", full.id))
	}
	if ctrlLogs != 1 {
		t.Fatalf("%d controller lines for node %d's directory, want 1", ctrlLogs, full.id)
	}
	produce(100, "moved")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.waitFullISR(topic, 3, 60*time.Second)
	if n := logCount(t, full, "level=INFO", "log directory online again", "dir="+data); n != 1 {
		t.Fatalf("%d online-again lines on node %d, want 1; log:\n%s", n, full.id, full.tail())
	}
	produce(100, "after")

	cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	var got []string
	for len(got) < len(acked) {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(got), len(acked))
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, acked) {
		t.Fatalf("read back %d records, not the %d acknowledged, each once and in order", len(got), len(acked))
	}
	// The filled node's own copy is whole too: it leads the partition
	// again (it is the preferred replica: the partition's first leader).
	if _, err := c.admin().ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {part: {}}}); err != nil {
		t.Logf("preferred election: %v", err)
	}
	waitFor(t, "the filled node to lead again after a preferred election", 30*time.Second, func() bool {
		if leader, _, _ := c.partitionState(topic, part); leader == full.id {
			return true
		}
		_, _ = c.admin().ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {part: {}}})
		return false
	})
	produce(10, "back")
	cons2 := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().AtStart()}}))
	got = got[:0]
	for len(got) < len(acked) {
		fs := cons2.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records from node %d", len(got), len(acked), full.id)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, acked) {
		t.Fatalf("read back %d records led by node %d, not the %d acknowledged, each once and in order", len(got), full.id, len(acked))
	}
}

// TestCreateTopicOnFullDisk: on a single node whose log directory is
// offline (its disk full), CreateTopics fails with
// INVALID_REPLICATION_FACTOR naming the offline directory, and leaves no
// directory behind; once space returns it succeeds.
func TestCreateTopicOnFullDisk(t *testing.T) {
	c := prepareCluster(t, 1, 0, "")
	nd := c.node(1)
	data := filepath.Join(nd.dir, "data")
	testbin.MountTmpfs(t, data, 32<<20)
	t.Cleanup(nd.kill)
	nd.start()
	ctx := ctxT(t, 2*time.Minute)
	c.waitBrokers(ctx, 1)
	adm := c.admin()
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "first"); err != nil || res.Err != nil {
		t.Fatalf("create first: %v %v", err, res.Err)
	}
	prod := c.client(kgo.DefaultProduceTopic("first"), kgo.RecordRetries(0), kgo.RequestRetries(0))
	if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	filler := testbin.Fill(t, data)
	// A write fails: the directory is offline from the next heartbeat.
	waitFor(t, "a produce to fail on the full disk", 10*time.Second, func() bool {
		err := prod.ProduceSync(ctx, &kgo.Record{Value: make([]byte, 100<<10)}).FirstErr()
		return err != nil
	})
	var last error
	waitFor(t, "CreateTopics to be refused for the offline directory", 10*time.Second, func() bool {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "second", 1, 1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 5000
		resp, err := req.RequestWith(ctx, c.client())
		if err != nil {
			last = err
			return false
		}
		r := resp.Topics[0]
		last = kerr.ErrorForCode(r.ErrorCode)
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		if r.ErrorCode == kerr.InvalidReplicationFactor.Code {
			if !containsAll(msg, "log directory", "offline", data) {
				t.Fatalf("INVALID_REPLICATION_FACTOR says %q: it should name the offline log directory %s", msg, data)
			}
			t.Logf("CreateTopics on the full disk: %s: %s", kerr.ErrorForCode(r.ErrorCode), msg)
			return true
		}
		if r.ErrorCode == 0 {
			t.Fatalf("CreateTopics on a node whose only log directory is offline succeeded")
		}
		last = fmt.Errorf("%w: %s", last, msg)
		return false
	})
	if _, err := os.Stat(filepath.Join(data, "second-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused topic left a directory behind: %v", err)
	}
	// Adding a partition is refused the same way.
	cps, err := adm.CreatePartitions(ctx, 1, "first")
	if err != nil {
		t.Fatal(err)
	}
	if cp := cps["first"]; !errors.Is(cp.Err, kerr.InvalidReplicationFactor) || !containsAll(cp.ErrMessage, "log directory", "offline", data) {
		t.Fatalf("CreatePartitions on the full disk: %v (%s), want INVALID_REPLICATION_FACTOR naming %s", cp.Err, cp.ErrMessage, data)
	}
	md, err := c.metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.Topics["second"]; ok {
		t.Fatal("the refused topic is in the metadata")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CreateTopics to succeed once space returned", 20*time.Second, func() bool {
		res, err := adm.CreateTopic(ctx, 1, 1, nil, "second")
		return err == nil && (res.Err == nil || errors.Is(res.Err, kerr.TopicAlreadyExists))
	})
	p2 := c.client(kgo.DefaultProduceTopic("second"))
	if err := p2.ProduceSync(ctx, &kgo.Record{Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatalf("produce to the topic created after space returned: %v", err)
	}
}

// containsAll reports whether s holds every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
