package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var groupOverrides = map[string]string{
	"group.initial.rebalance.delay.ms": "0",
	"group.min.session.timeout.ms":     "100",
}

// groupConsumer is a kgo group member that records what it consumes.
type groupConsumer struct {
	t      *testing.T
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

type consumed struct {
	mu    sync.Mutex
	seen  map[string]bool
	first map[int32]int64 // first offset seen per partition
	recs  []*kgo.Record
}

func newConsumed() *consumed {
	return &consumed{seen: map[string]bool{}, first: map[int32]int64{}}
}

func (c *consumed) add(r *kgo.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[string(r.Value)] = true
	if _, ok := c.first[r.Partition]; !ok {
		c.first[r.Partition] = r.Offset
	}
	c.recs = append(c.recs, r)
}

func (c *consumed) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

func startConsumer(t *testing.T, n *testNode, groupID, topic string, into *consumed, opts ...kgo.Opt) *groupConsumer {
	t.Helper()
	cl := n.client(append([]kgo.Opt{
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		// Kafka's minimum session timeout: with less, a member starved of
		// CPU (race-detector suites share the two cores) is evicted, which
		// is correct broker behaviour but not what this test is about.
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		// Any refused commit is logged, so a failure of the committed-offset
		// checks below says what the coordinator answered.
		kgo.AutoCommitCallback(func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				t.Logf("autocommit (generation %d): %v", req.Generation, err)
				return
			}
			for _, tp := range resp.Topics {
				for _, p := range tp.Partitions {
					if p.ErrorCode != 0 {
						t.Logf("autocommit (generation %d) partition %d: %v", req.Generation, p.Partition, kerr.ErrorForCode(p.ErrorCode))
					}
				}
			}
		}),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	gc := &groupConsumer{t: t, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(gc.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(into.add)
		}
	}()
	return gc
}

// stop commits what was polled and leaves the group.
func (gc *groupConsumer) stop() {
	gc.cancel()
	<-gc.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gc.cl.CommitUncommittedOffsets(ctx); err != nil {
		gc.t.Logf("final commit before leaving: %v", err)
	}
	gc.cl.Close()
}

func produceN(t *testing.T, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func waitWithin(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	waitFor(t, ctx, what, cond)
}

// rawMember joins a group over the wire and then goes silent, so that its
// session expires.
func rawMember(t *testing.T, n *testNode, groupID, topic, protocolName string) {
	t.Helper()
	c := n.raw()
	meta := kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{topic}}
	join := kmsg.NewPtrJoinGroupRequest()
	join.SetVersion(3)
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = groupID, 500, 5000
	join.ProtocolType = "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: protocolName, Metadata: meta.AppendTo(nil)}}
	jr := c.roundTrip(join).(*kmsg.JoinGroupResponse)
	if err := kerr.ErrorForCode(jr.ErrorCode); err != nil {
		t.Errorf("raw join: %v", err)
		return
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.SetVersion(1)
	sync.Group, sync.Generation, sync.MemberID = groupID, jr.Generation, jr.MemberID
	sr := c.roundTrip(sync).(*kmsg.SyncGroupResponse)
	if err := kerr.ErrorForCode(sr.ErrorCode); err != nil && err != kerr.RebalanceInProgress {
		t.Errorf("raw sync: %v", err)
	}
}

func committedOffsets(t *testing.T, n *testNode, groupID, topic string) map[int32]int64 {
	t.Helper()
	return committedOffsetsVia(t, n.admin(), groupID, topic)
}

// committedOffsetsVia is committedOffsets through an existing admin client,
// for callers that poll.
func committedOffsetsVia(t *testing.T, adm *kadm.Client, groupID, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, groupID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

func sumOffsets(m map[int32]int64) int64 {
	var sum int64
	for _, o := range m {
		sum += o
	}
	return sum
}

func testGroupConsume(t *testing.T, balancer kgo.GroupBalancer) {
	// A million records, as the issue asks; a tenth under the race
	// detector, which is ten times slower.
	total := 1_000_000
	if raceEnabled || testing.Short() {
		total = 100_000
	}
	const parts = 12
	n := startNode(t, "", groupOverrides)
	topic, groupID := "g-events", "g-"+balancer.ProtocolName()
	if _, err := n.admin().CreateTopic(ctxT(t), parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := n.client(kgo.DefaultProduceTopic(topic))
	got := newConsumed()
	bal := kgo.Balancers(balancer)

	var members []*groupConsumer
	for range 4 {
		members = append(members, startConsumer(t, n, groupID, topic, got, bal))
	}
	produceN(t, prod, topic, 0, total/2)
	waitWithin(t, "first records", 20*time.Second, func() bool { return got.count() > total/8 })

	// One member leaves gracefully, one joins and dies (session timeout).
	members[0].stop()
	members = members[1:]
	rawMember(t, n, groupID, topic, balancer.ProtocolName())
	produceN(t, prod, topic, total/2, total/2)
	members = append(members, startConsumer(t, n, groupID, topic, got, bal))

	waitWithin(t, "every record", 40*time.Second, func() bool { return got.count() == total })
	// Polled is not committed: kgo's default autocommit is at-least-once,
	// so a revoke commits only what was polled before the member's latest
	// poll, and the partition's next owner re-reads (and later commits) the
	// rest. Stopping members one by one is a chain of eager rebalances; a
	// member stopped before it re-read what it took over never commits it.
	// So, like an application draining before shutdown, wait until the
	// running members' autocommits have caught up with the log end.
	adm := n.admin()
	waitWithin(t, "committed offsets to reach the log end", 40*time.Second, func() bool {
		return sumOffsets(committedOffsetsVia(t, adm, groupID, topic)) == int64(total)
	})
	for _, m := range members {
		m.stop()
	}
	// Leaving the group, with its rebalances and revoke-time commits, must
	// not move any committed offset.
	committed := committedOffsets(t, n, groupID, topic)
	if sum := sumOffsets(committed); sum != int64(total) {
		t.Fatalf("after the members left, committed offsets sum to %d, want %d: %v", sum, total, committed)
	}

	// After a restart the group resumes from its committed offsets.
	n.restart()
	if again := committedOffsets(t, n, groupID, topic); fmt.Sprint(again) != fmt.Sprint(committed) {
		t.Fatalf("committed offsets after restart %v, want %v", again, committed)
	}
	prod = n.client(kgo.DefaultProduceTopic(topic))
	produceN(t, prod, topic, total, 1000)
	after := newConsumed()
	m1 := startConsumer(t, n, groupID, topic, after, bal)
	m2 := startConsumer(t, n, groupID, topic, after, bal)
	waitWithin(t, "new records after restart", 30*time.Second, func() bool { return after.count() == 1000 })
	m1.stop()
	m2.stop()
	after.mu.Lock()
	defer after.mu.Unlock()
	for _, r := range after.recs {
		if r.Offset < committed[r.Partition] {
			t.Fatalf("partition %d re-read offset %d before the committed %d", r.Partition, r.Offset, committed[r.Partition])
		}
		if v, _ := strconv.Atoi(string(r.Value)); v < total {
			t.Fatalf("re-read record %d from before the restart", v)
		}
	}
}

func TestGroupConsumeEager(t *testing.T) {
	t.Parallel()
	testGroupConsume(t, kgo.RangeBalancer())
}

func TestGroupConsumeCooperativeSticky(t *testing.T) {
	t.Parallel()
	testGroupConsume(t, kgo.CooperativeStickyBalancer())
}
