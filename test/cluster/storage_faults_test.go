package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/test/internal/testbin"
)

// TestReplicationFollowerFullDisk fills the disk of a follower of an rf=3
// partition: its appends fail, it logs one ERROR for the partition, leaves
// the ISR, and acks=all produce goes on through the other two; once space
// returns it catches up without a restart, says it recovered, and rejoins
// the ISR. Every acknowledged record is read back.
func TestReplicationFollowerFullDisk(t *testing.T) {
	c := prepareCluster(t, 3, 0, "", "--set", "replica.lag.time.max.ms=2000")
	full := c.node(3)
	data := filepath.Join(full.dir, "data")
	testbin.MountTmpfs(t, data, 64<<20)
	t.Cleanup(full.kill) // before the tmpfs is unmounted
	for _, nd := range c.nodes {
		nd.start()
	}
	ctx := ctxT(t, 3*time.Minute)
	c.waitBrokers(ctx, 3)
	const topic = "fullfollower"
	res, err := c.admin().CreateTopic(ctx, 3, 3, nil, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, 3, 30*time.Second)
	part := int32(-1)
	for p := range int32(3) {
		if leader, _, _ := c.partitionState(topic, p); leader != full.id {
			part = p
			break
		}
	}
	if part < 0 {
		t.Fatal("node 3 leads every partition")
	}
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
	produce(100, "during") // waits for node 3 to leave the ISR, then goes on
	waitFor(t, "the follower with the full disk to leave the ISR", 30*time.Second, func() bool {
		_, isr, _ := c.partitionState(topic, part)
		return len(isr) == 2 && !slices.Contains(isr, full.id)
	})
	tp := fmt.Sprintf("partition=%s-%d", topic, part)
	if n := logCount(t, full, "level=ERROR", "partition storage failed", tp, "append as follower", "no space left on device"); n != 1 {
		t.Fatalf("%d ERROR lines for %s on node 3, want 1; log:\n%s", n, tp, full.tail())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.waitFullISR(topic, 3, 60*time.Second)
	if n := logCount(t, full, "level=INFO", "partition storage recovered", tp); n != 1 {
		t.Fatalf("%d recovered lines for %s on node 3, want 1", n, tp)
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
		t.Fatalf("read back %d records, not the %d acknowledged in order", len(got), len(acked))
	}
}

// logCount counts the lines of n's log holding every one of subs.
func logCount(t *testing.T, n *node, subs ...string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "strata.log"))
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		ok := len(line) > 0
		for _, s := range subs {
			ok = ok && bytes.Contains(line, []byte(s))
		}
		if ok {
			count++
		}
	}
	return count
}

// TestMetadataLogFullDisk fills the disk of one node's metadata (Raft) log,
// the quorum leader's and a follower's in turn, while metadata writes go
// on. As Kafka halts a node whose metadata log directory fails, the node
// stops: one ERROR line naming the directory, the cause and what to do,
// exit code 1. The other two go on (metadata writes and acks=all produce).
// Once space is freed the node starts again from a whole metadata log (the
// failed write was cut back: no torn tail to truncate), catches up with the
// quorum and rejoins every ISR; every acknowledged record and every topic
// whose creation was acknowledged is there.
func TestMetadataLogFullDisk(t *testing.T) {
	for _, role := range []string{"leader", "follower"} {
		t.Run(role, func(t *testing.T) { testMetadataLogFullDisk(t, role) })
	}
}

func testMetadataLogFullDisk(t *testing.T, role string) {
	c := prepareCluster(t, 3, 0, "")
	metaDirs := map[int32]string{}
	for _, nd := range c.nodes {
		metaDirs[nd.id] = testbin.MountMetadataTmpfs(t, filepath.Join(nd.dir, "data"), 16<<20)
		t.Cleanup(nd.kill) // before the tmpfs is unmounted
	}
	for _, nd := range c.nodes {
		nd.start()
	}
	ctx := ctxT(t, 3*time.Minute)
	c.waitBrokers(ctx, 3)
	const topic = "metafull"
	res, err := c.admin().CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, 3, 30*time.Second)
	if err := c.produce(ctx, topic, 0, 300); err != nil {
		t.Fatalf("produce before: %v", err)
	}

	var victim *node
	waitFor(t, "a quorum leader", 30*time.Second, func() bool { return c.leader() > 0 })
	lead := c.leader()
	for _, nd := range c.nodes {
		if (nd.id == lead) == (role == "leader") {
			victim = nd
			break
		}
	}
	t.Logf("filling the metadata log's disk of node %d (%s of the quorum)", victim.id, role)
	testbin.Fill(t, metaDirs[victim.id])

	// Metadata writes until the node stops: the last page of its WAL
	// segment may hold a few more records.
	var created []string
	var exitErr error
	for i := 0; exitErr == nil; i++ {
		if i == 200 {
			t.Fatalf("node %d still runs after %d metadata writes on a full disk; log:\n%s", victim.id, i, victim.tail())
		}
		name := fmt.Sprintf("meta-%d", i)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := c.admin().CreateTopic(cctx, 1, 2, nil, name)
		cancel()
		if err == nil && res.Err == nil {
			created = append(created, name)
		}
		select {
		case exitErr = <-victim.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
	victim.logFile.Close()
	victim.cmd = nil
	var ee *exec.ExitError
	if !errors.As(exitErr, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("node %d exited with %v, want exit code 1", victim.id, exitErr)
	}
	metaDir := filepath.Join(victim.dir, "data", "__cluster_metadata-0")
	if n := logCount(t, victim, "level=ERROR", "metadata log cannot be written", "dir="+metaDir, "no space left on device", "free space on"); n != 1 {
		t.Fatalf("%d ERROR lines on the metadata log, want 1; log:\n%s", n, victim.tail())
	}
	if n := logCount(t, victim, "level=ERROR"); n != 1 {
		t.Fatalf("%d ERROR lines in all, want only the one on the metadata log; log:\n%s", n, victim.tail())
	}
	t.Logf("node %d exited with %v after %d topics were created; its last lines:\n%s", victim.id, exitErr, len(created), lastLines(victim, 4))

	// The other two go on.
	waitFor(t, "a quorum leader among the other two", 30*time.Second, func() bool { return c.leader() > 0 })
	for i := range 3 {
		name := fmt.Sprintf("meta-after-%d", i)
		if res, err := c.admin().CreateTopic(ctx, 1, 2, nil, name); err != nil || res.Err != nil {
			t.Fatalf("create %s with node %d down: %v %v", name, victim.id, err, res.Err)
		}
		created = append(created, name)
	}
	if err := c.produce(ctx, topic, 300, 300); err != nil {
		t.Fatalf("produce with node %d down: %v", victim.id, err)
	}

	// Space returns; the node starts from a whole log and rejoins.
	if err := os.Remove(filepath.Join(metaDirs[victim.id], "filler")); err != nil {
		t.Fatal(err)
	}
	victim.start()
	c.waitBrokers(ctx, 3)
	if n := logCount(t, victim, "truncating torn write"); n != 0 {
		t.Fatalf("the restart truncated a torn WAL tail: the failed write was not cut back; log:\n%s", victim.tail())
	}
	waitFor(t, "node "+fmt.Sprint(victim.id)+" caught up with the quorum", 30*time.Second, func() bool {
		q, err := victim.quorum()
		if err != nil {
			return false
		}
		var end int64 = -1
		for _, v := range q.CurrentVoters {
			if v.ReplicaID == victim.id {
				end = v.LogEndOffset
			}
		}
		return end >= 0 && end == q.HighWatermark
	})
	c.waitFullISR(topic, 3, 60*time.Second)
	md, err := c.metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range created {
		if _, ok := md.Topics[name]; !ok {
			t.Fatalf("topic %s, created while node %d's disk was full, is gone", name, victim.id)
		}
	}
	seen, err := c.consumeAll(ctx, topic, "", 600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		if !seen[fmt.Sprintf("r%d", i)] {
			t.Fatalf("acknowledged record r%d is missing", i)
		}
	}
}

// lastLines returns the last n lines of n's log.
func lastLines(nd *node, n int) string {
	b, _ := os.ReadFile(filepath.Join(nd.dir, "strata.log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
