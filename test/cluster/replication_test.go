package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionState returns leader, ISR and replicas of topic's partition as
// the cluster's metadata says. A broker still catching up with the
// metadata log answers LEADER_NOT_AVAILABLE: it asks again (another broker,
// usually) for up to 10 s before it gives up with leader -2.
func (c *testCluster) partitionState(topic string, p int32) (leader int32, isr, replicas []int32) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		leader, isr, replicas = c.partitionStateOnce(topic, p)
		if leader != -2 || time.Now().After(deadline) {
			return leader, isr, replicas
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *testCluster) partitionStateOnce(topic string, p int32) (leader int32, isr, replicas []int32) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	md, err := c.metadata(ctx)
	if err != nil {
		return -2, nil, nil
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		return -2, nil, nil
	}
	pd, ok := t.Partitions[p]
	if !ok {
		return -2, nil, nil
	}
	return pd.Leader, pd.ISR, pd.Replicas
}

// waitFullISR waits until every partition of topic has all its replicas in
// the ISR.
func (c *testCluster) waitFullISR(topic string, partitions int32, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, topic+" full ISR", timeout, func() bool {
		for p := range partitions {
			leader, isr, replicas := c.partitionState(topic, p)
			if leader < 0 || len(isr) != len(replicas) {
				return false
			}
		}
		return true
	})
}

// waitBrokers waits until metadata lists n brokers (registered and
// unfenced), so that topics of n replicas can be placed.
func (c *testCluster) waitBrokers(ctx context.Context, n int) {
	c.t.Helper()
	waitFor(c.t, fmt.Sprintf("%d brokers", n), 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == n
	})
}

// ackedLog is what a producer had acknowledged: value -> offset, per
// partition.
type ackedLog struct {
	mu    sync.Mutex
	acked map[int32]map[string]int64
	fails int
}

func (a *ackedLog) add(r *kgo.Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.fails++
		return
	}
	if a.acked[r.Partition] == nil {
		a.acked[r.Partition] = map[string]int64{}
	}
	a.acked[r.Partition][string(r.Value)] = r.Offset
}

// checkAllPresent reads every partition from the start up to its end and
// checks that each acknowledged value is there exactly once, at the offset
// it was acknowledged with, and that offsets only grow.
func checkAllPresent(t *testing.T, c *testCluster, topic string, partitions int32, a *ackedLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := c.admin()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	want := int64(0)
	for p := range partitions {
		offsets[topic][p] = kgo.NewOffset().AtStart()
		o, _ := ends.Lookup(topic, p)
		want += o.Offset
	}
	cl := c.client(kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(200*time.Millisecond))
	seen := map[int32]map[string]int64{}
	last := map[int32]int64{}
	got := int64(0)
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records before the deadline", got, want)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Logf("fetch error on %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
			if seen[r.Partition] == nil {
				seen[r.Partition] = map[string]int64{}
			}
			if o, dup := seen[r.Partition][string(r.Value)]; dup {
				t.Errorf("partition %d: value %s at offsets %d and %d", r.Partition, r.Value, o, r.Offset)
			}
			seen[r.Partition][string(r.Value)] = r.Offset
		})
	}
	lost := 0
	for p, vals := range a.acked {
		for v, off := range vals {
			o, ok := seen[p][v]
			switch {
			case !ok:
				lost++
				if lost < 10 {
					t.Errorf("partition %d: acknowledged %s at offset %d was lost", p, v, off)
				}
			case o != off:
				t.Errorf("partition %d: acknowledged %s at offset %d, read at %d", p, v, off, o)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d acknowledged records lost", lost)
	}
}

// loadGen produces unique values round-robin to topic with acks=all and
// idempotence until stopped, recording what was acknowledged.
type loadGen struct {
	acked *ackedLog
	prod  *kgo.Client
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(ctx context.Context, c *testCluster, topic string) *loadGen {
	g := &loadGen{acked: &ackedLog{acked: map[int32]map[string]int64{}}, stop: make(chan struct{}),
		prod: c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0))}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-g.stop:
				return
			default:
			}
			g.prod.Produce(ctx, &kgo.Record{Value: []byte("v" + strconv.Itoa(i))}, g.acked.add)
			if i%200 == 199 {
				g.prod.Flush(ctx)
			}
		}
	}()
	return g
}

// count is how many records were acknowledged so far.
func (g *loadGen) count() int {
	g.acked.mu.Lock()
	defer g.acked.mu.Unlock()
	n := 0
	for _, m := range g.acked.acked {
		n += len(m)
	}
	return n
}

// progress waits until n more records were acknowledged.
func (g *loadGen) progress(t *testing.T, n int, what string) {
	t.Helper()
	before := g.count()
	waitFor(t, what, 60*time.Second, func() bool { return g.count() >= before+n })
}

func (g *loadGen) finish(ctx context.Context) {
	close(g.stop)
	g.wg.Wait()
	g.prod.Flush(ctx)
}

// createReplicated creates topic with rf=3 and min.insync.replicas=2 on a
// three-broker cluster and waits for every ISR to be full.
func createReplicated(ctx context.Context, t *testing.T, c *testCluster, topic string, parts int32) {
	t.Helper()
	c.waitBrokers(ctx, 3)
	res, err := c.admin().CreateTopic(ctx, parts, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, parts, 30*time.Second)
}

// TestReplicationKillLeader: rf=3, acks=all idempotent producers keep
// writing while the leader of a partition is killed with SIGKILL and
// restarted, 20 rounds (3 with -short), the partitions in turn; every
// acknowledged record is read back once, in order, and the restarted
// replicas rejoin the ISR every round.
func TestReplicationKillLeader(t *testing.T) {
	c := newCluster(t, 3)
	ctx := ctxT(t, 6*time.Minute)
	const topic, parts = "replicated", 3
	createReplicated(ctx, t, c, topic, parts)
	load := startLoad(ctx, c, topic)
	rounds := 20
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		p := int32(round % parts)
		load.progress(t, 500, "progress before the kill")
		leader, _, _ := c.partitionState(topic, p)
		if leader < 1 {
			t.Fatalf("round %d: partition %d has no leader", round, p)
		}
		victim := c.node(leader)
		t.Logf("round %d: killing node %d, the leader of partition %d, at %d acknowledged", round, leader, p, load.count())
		victim.kill()
		load.progress(t, 500, "progress without the killed leader")
		victim.start()
		c.waitFullISR(topic, parts, 60*time.Second)
	}
	load.finish(ctx)
	t.Logf("%d records acknowledged, %d produce errors", load.count(), load.acked.fails)
	checkAllPresent(t, c, topic, parts, load.acked)
}

// TestReplicationCleanStop: stopping a leader's broker cleanly (SIGTERM)
// moves its leaderships first (controlled shutdown), so acks=all
// producers see no error at all; it rejoins the ISR when it restarts.
func TestReplicationCleanStop(t *testing.T) {
	c := newCluster(t, 3)
	ctx := ctxT(t, 3*time.Minute)
	const topic, parts = "clean-stop", 3
	createReplicated(ctx, t, c, topic, parts)
	load := startLoad(ctx, c, topic)
	load.progress(t, 500, "progress before the stop")
	leader, _, _ := c.partitionState(topic, 0)
	c.node(leader).stop()
	if tail := c.node(leader).tail(); strings.Contains(tail, "controlled shutdown") {
		t.Fatalf("node %d's controlled shutdown did not complete:\n%s", leader, tail)
	}
	if now, _, _ := c.partitionState(topic, 0); now == leader {
		t.Fatalf("partition 0 still led by stopped node %d", leader)
	}
	load.progress(t, 500, "progress without the stopped broker")
	c.node(leader).start()
	c.waitFullISR(topic, parts, 60*time.Second)
	load.progress(t, 500, "progress after the restart")
	load.finish(ctx)
	if load.acked.fails != 0 {
		t.Errorf("%d produce errors across a clean stop", load.acked.fails)
	}
	checkAllPresent(t, c, topic, parts, load.acked)
}

// TestReplicationPausedFollower: a follower that stops fetching (SIGSTOP)
// leaves the ISR after replica.lag.time.max.ms, acks=all writes go on
// with the remaining two, and after SIGCONT it catches up and rejoins.
func TestReplicationPausedFollower(t *testing.T) {
	c := newRolesCluster(t, 3, 0, "", "--set", "replica.lag.time.max.ms=2000")
	ctx := ctxT(t, 2*time.Minute)
	const topic = "paused"
	c.waitBrokers(ctx, 3)
	res, err := c.admin().CreateTopic(ctx, 1, 3, nil, topic)
	if err != nil || res.Err != nil {
		t.Fatalf("create rf=3: %v %v", err, res.Err)
	}
	c.waitFullISR(topic, 1, 30*time.Second)
	leader, _, replicas := c.partitionState(topic, 0)
	var follower *node
	for _, r := range replicas {
		if r != leader {
			follower = c.node(r)
			break
		}
	}
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce := func(n int, tag string) {
		for i := range n {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", tag, i)}).FirstErr(); err != nil {
				t.Fatalf("produce %s-%d: %v", tag, i, err)
			}
		}
	}
	produce(100, "before")
	follower.paused = true // a metadata request to it would hang
	follower.cmd.Process.Signal(syscall.SIGSTOP)
	waitFor(t, "the paused follower to leave the ISR", 30*time.Second, func() bool {
		_, isr, _ := c.partitionState(topic, 0)
		return len(isr) == 2 && !slices.Contains(isr, follower.id)
	})
	produce(100, "during")
	follower.cmd.Process.Signal(syscall.SIGCONT)
	follower.paused = false
	c.waitFullISR(topic, 1, 30*time.Second)
	produce(100, "after")
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
