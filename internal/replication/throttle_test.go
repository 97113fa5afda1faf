package replication

import (
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
)

// bigBatch is one batch of n records of size bytes each.
func bigBatch(t *testing.T, n, size int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(strings.Repeat("x", size))}
	}
	b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func throttleManager(t *testing.T, clk *testClock) *Manager {
	t.Helper()
	m := NewManager(Options{NodeID: 1, DataDir: t.TempDir(), Static: staticConfig(t, false),
		Logger: slog.New(slog.DiscardHandler), Now: clk.Now,
		Quota: QuotaConfig{Windows: 2, WindowSize: time.Second}})
	t.Cleanup(func() { m.Close() })
	return m
}

func brokerCfg(node, key, value string) *metadata.ConfigRecord {
	return &metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, ResourceName: node, Name: key, Value: &value}
}

func topicCfg(topic, key, value string) *metadata.ConfigRecord {
	return &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: topic, Name: key, Value: &value}
}

func TestThrottleRatesFromImage(t *testing.T) {
	clk := newTestClock()
	m := throttleManager(t, clk)
	if l, f := m.ThrottleRates(); l != math.MaxInt64 || f != math.MaxInt64 {
		t.Fatalf("default rates %d %d", l, f)
	}
	steps := []struct {
		recs         []metadata.Record
		leader, foll int64
	}{
		// The cluster default applies ...
		{[]metadata.Record{brokerCfg("", "leader.replication.throttled.rate", "5000")}, 5000, math.MaxInt64},
		// ... unless this broker has its own; other brokers' do not count.
		{[]metadata.Record{brokerCfg("1", "leader.replication.throttled.rate", "700"), brokerCfg("2", "follower.replication.throttled.rate", "1")}, 700, math.MaxInt64},
		{[]metadata.Record{brokerCfg("1", "follower.replication.throttled.rate", "300")}, 700, 300},
		// Removing this broker's value falls back to the default, then to unlimited.
		{[]metadata.Record{&metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, ResourceName: "1", Name: "leader.replication.throttled.rate"}}, 5000, 300},
		{[]metadata.Record{&metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, ResourceName: "", Name: "leader.replication.throttled.rate"}}, math.MaxInt64, 300},
	}
	im := metadata.Empty()
	for i, s := range steps {
		next := mustApply(t, im, s.recs...)
		m.Apply(im, next)
		im = next
		if l, f := m.ThrottleRates(); l != s.leader || f != s.foll {
			t.Fatalf("step %d: rates %d %d, want %d %d", i, l, f, s.leader, s.foll)
		}
	}
}

// TestLeaderThrottle: which follower reads the leader holds back once its
// throttled byte rate is over leader.replication.throttled.rate.
func TestLeaderThrottle(t *testing.T) {
	clk := newTestClock()
	m := throttleManager(t, clk)
	id := metadata.NewUUID()
	recs := []metadata.Record{&metadata.TopicRecord{Name: "t", ID: id}}
	for i := int32(0); i < 3; i++ {
		// Replica 3 is out of sync everywhere; 2 is in sync.
		recs = append(recs, &metadata.PartitionRecord{TopicID: id, Partition: i, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}, Leader: 1, LeaderEpoch: 1})
	}
	// Partitions 0 and 1 are leader-throttled on this broker (1); 2 is
	// listed only for broker 2.
	recs = append(recs, topicCfg("t", "leader.replication.throttled.replicas", "0:1,1:1,2:2"),
		brokerCfg("1", "leader.replication.throttled.rate", "1000"))
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, recs...)
	m.Apply(im0, im1)
	var ps [3]*Partition
	for i := range ps {
		ps[i] = mustGet(t, m, "t", int32(i))
		if _, err := ps[i].Append(bigBatch(t, 4, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(p *Partition, replica int32) FetchResult {
		t.Helper()
		res, err := p.Read(FetchParams{Offset: 0, MaxBytes: 1 << 20, MinOneBatch: true, CurrentLeaderEpoch: -1, ReplicaID: replica, LastFetchedEpoch: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(res.Release)
		return res
	}
	// Under the rate: everyone reads.
	r := read(ps[0], 3)
	if r.Throttled || r.Records.Size == 0 {
		t.Fatalf("under the rate: throttled %v, %d bytes", r.Throttled, r.Records.Size)
	}
	r.Sent() // about 4 kB over the 1 s minimum span: above 1000 B/s
	if !m.env.leaderQuota.exceeded() {
		t.Fatalf("leader quota not exceeded at %.0f B/s", m.env.leaderQuota.rate())
	}
	for _, tc := range []struct {
		name      string
		part      int
		replica   int32
		throttled bool
	}{
		{"out-of-sync follower of a throttled replica", 0, 3, true},
		{"same quota for every throttled partition", 1, 3, true},
		{"in-sync follower is never throttled", 0, 2, false},
		{"partition throttled on another broker only", 2, 3, false},
	} {
		r := read(ps[tc.part], tc.replica)
		if r.Throttled != tc.throttled || (r.Records.Size == 0) != tc.throttled {
			t.Errorf("%s: throttled %v with %d bytes, want throttled %v", tc.name, r.Throttled, r.Records.Size, tc.throttled)
		}
		if r.HighWatermark < 0 || r.LogStartOffset != 0 {
			t.Errorf("%s: high watermark %d, log start %d", tc.name, r.HighWatermark, r.LogStartOffset)
		}
	}
	// Consumers are not followers: never throttled (they read up to the
	// high watermark, 0 here, as 2 has not fetched past 0).
	if r := read(ps[0], -1); r.Throttled {
		t.Error("consumer read throttled")
	}
	// A throttled fetch still records the follower's progress.
	ps[0].mu.Lock()
	f := ps[0].followers[3]
	ps[0].mu.Unlock()
	if f == nil || f.leo != 0 {
		t.Fatalf("follower 3 progress not recorded: %+v", f)
	}
	// Reads of unthrottled partitions do not count toward the rate.
	before := m.env.leaderQuota.rate()
	r = read(ps[2], 3)
	r.Sent()
	if got := m.env.leaderQuota.rate(); got != before {
		t.Fatalf("unthrottled read counted: rate %.0f -> %.0f", before, got)
	}
	// In-sync throttled replicas' bytes do count, as in Kafka.
	r = read(ps[0], 2)
	r.Sent()
	if got := m.env.leaderQuota.rate(); got <= before {
		t.Fatalf("in-sync read of a throttled replica not counted: %.0f -> %.0f", before, got)
	}
	// Once the samples age out, the follower reads again.
	clk.Advance(2 * time.Second)
	if r := read(ps[0], 3); r.Throttled || r.Records.Size == 0 {
		t.Fatalf("after the window: throttled %v, %d bytes", r.Throttled, r.Records.Size)
	}
	// "*" throttles every replica of the topic; raising the rate lifts it.
	im2 := mustApply(t, im1, topicCfg("t", "leader.replication.throttled.replicas", "*"))
	m.Apply(im1, im2)
	r = read(ps[2], 3)
	r.Sent()
	r.Sent()
	if r := read(ps[2], 3); !r.Throttled {
		t.Fatal("* did not throttle partition 2")
	}
	im3 := mustApply(t, im2, brokerCfg("1", "leader.replication.throttled.rate", "100000000"))
	m.Apply(im2, im3)
	if r := read(ps[2], 3); r.Throttled {
		t.Fatal("still throttled after the rate went up")
	}
}

// TestFollowerThrottle: the fetcher leaves out throttled partitions that
// are behind the leader's high watermark while the follower rate is
// exceeded, and counts their bytes.
func TestFollowerThrottle(t *testing.T) {
	clk := newTestClock()
	m := throttleManager(t, clk)
	id := metadata.NewUUID()
	recs := []metadata.Record{&metadata.TopicRecord{Name: "f", ID: id}}
	for i := int32(0); i < 2; i++ {
		// Led by broker 2, which is not in the image's brokers: the
		// manager starts no fetcher, the test builds its own.
		recs = append(recs, &metadata.PartitionRecord{TopicID: id, Partition: i, Replicas: []int32{2, 1}, ISR: []int32{2}, Leader: 2, LeaderEpoch: 1})
	}
	recs = append(recs, topicCfg("f", "follower.replication.throttled.replicas", "0:1,1:3"),
		brokerCfg("", "follower.replication.throttled.rate", "1000"))
	im0 := metadata.Empty()
	im1 := mustApply(t, im0, recs...)
	m.Apply(im0, im1)
	p0, p1 := mustGet(t, m, "f", 0), mustGet(t, m, "f", 1)
	f := &fetcher{nodeID: 1, leader: 2, cfg: m.opts.Fetcher, quota: m.env.followerQuota, log: m.log,
		parts: map[TopicPartition]*Partition{{"f", 0}: p0, {"f", 1}: p1}, delay: map[TopicPartition]time.Time{}}
	built := func() (map[TopicPartition]fetching, time.Time) {
		_, parts, _, next := f.build()
		return parts, next
	}
	if parts, next := built(); len(parts) != 2 || !next.IsZero() {
		t.Fatalf("under the rate: %d partitions, next %v", len(parts), next)
	}

	// An answer for partition 0 counts toward the rate (1 is not
	// throttled on this broker: its list names broker 3).
	batch := bigBatch(t, 4, 1000)
	resp := kmsg.NewPtrFetchResponse()
	for i, b := range [][]byte{batch, batch} {
		rt := kmsg.NewFetchResponseTopic()
		rt.Topic = "f"
		rp := kmsg.NewFetchResponseTopicPartition()
		rp.Partition = int32(i)
		rp.HighWatermark = 4
		rp.RecordBatches = b
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
	}
	parts, _ := built()
	f.handle(resp, parts)
	if got, want := m.env.followerQuota.rate(), float64(len(batch)); got != want {
		t.Fatalf("follower rate %.0f, want %.0f (partition 0's bytes over 1 s)", got, want)
	}
	if p0.LogEndOffset() != 4 || p1.LogEndOffset() != 4 {
		t.Fatalf("answers not applied: log ends %d %d", p0.LogEndOffset(), p1.LogEndOffset())
	}
	// Both partitions caught up with the leader's high watermark (4): in
	// sync, never throttled.
	if parts, _ := built(); len(parts) != 2 {
		t.Fatalf("in-sync partitions left out: %d", len(parts))
	}
	// The leader's high watermark moves on: partition 0 is behind again,
	// and left out while the rate is over.
	p0.leaderHW.Store(100)
	p1.leaderHW.Store(100)
	parts, next := built()
	if _, ok := parts[TopicPartition{"f", 0}]; ok || len(parts) != 1 {
		t.Fatalf("throttled partition fetched: %v", parts)
	}
	if d := time.Until(next); next.IsZero() || d > throttleRecheck {
		t.Fatalf("next recheck %v", next)
	}
	clk.Advance(2 * time.Second)
	if parts, _ := built(); len(parts) != 2 {
		t.Fatalf("after the window: %d partitions", len(parts))
	}
}
