package cluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

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
