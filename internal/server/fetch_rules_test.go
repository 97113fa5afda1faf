package server

// Broker-level tests, over the wire, for rules that were only tested at the
// storage layer or not at all: Fetch size limits (max_bytes, partition_max_bytes,
// KIP-74), min_bytes with max_wait (fetch sessions: fetch_session_test.go),
// OffsetForLeaderEpoch (KIP-101/320) and DescribeCluster (KIP-700/919).

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

// fetchPart is one partition of a raw fetch request.
type fetchPart struct {
	partition int32
	offset    int64
	maxBytes  int32
}

// fetchTopic describes the topic a raw fetch asks for: by name before v13,
// by id from v13.
type fetchTopic struct {
	name string
	id   [16]byte
}

func newFetchRequest(version int16, topic fetchTopic, maxWaitMs, minBytes, maxBytes int32, parts ...fetchPart) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.ReplicaID = -1
	req.MaxWaitMillis = maxWaitMs
	req.MinBytes = minBytes
	req.MaxBytes = maxBytes
	req.SessionID = 0
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	if version >= 13 {
		ft.TopicID = topic.id
	} else {
		ft.Topic = topic.name
	}
	for _, p := range parts {
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = p.partition
		fp.FetchOffset = p.offset
		fp.PartitionMaxBytes = p.maxBytes
		ft.Partitions = append(ft.Partitions, fp)
	}
	req.Topics = append(req.Topics, ft)
	return req
}

// batchesIn returns the base offsets of the complete record batches in a
// fetched partition's bytes. A trailing partial batch (Kafka may send one
// when a limit cuts a batch) is not counted.
func batchesIn(t *testing.T, b []byte) []int64 {
	t.Helper()
	var bases []int64
	for len(b) >= 12 {
		size := 12 + int(int32(binary.BigEndian.Uint32(b[8:12])))
		if size < record.HeaderSize || size > len(b) {
			break
		}
		bases = append(bases, int64(binary.BigEndian.Uint64(b)))
		b = b[size:]
	}
	return bases
}

// produceTo appends one raw batch to a partition and returns its base offset.
func produceTo(t *testing.T, c *rawConn, topic string, partition int32, batch []byte) int64 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = 9
	req.Acks = -1
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: batch}}}}
	p := c.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("produce to %s[%d]: %v", topic, partition, kerr.ErrorForCode(p.ErrorCode))
	}
	return p.BaseOffset
}

// topicMetadata returns a topic's id and its partitions' leader epochs.
func topicMetadata(t *testing.T, c *rawConn, topic string) ([16]byte, []kmsg.MetadataResponseTopicPartition) {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	resp := c.roundTrip(req).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("metadata for %s: %+v", topic, resp.Topics)
	}
	return resp.Topics[0].TopicID, resp.Topics[0].Partitions
}

// oneRecordBatch is a batch of a single record with a value of size bytes.
func oneRecordBatch(t *testing.T, size int) []byte {
	t.Helper()
	b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(),
		[]record.Record{{Key: []byte("k"), Value: make([]byte, size)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFetchRulesLimits checks max_bytes, partition_max_bytes and the KIP-74
// rule over three partitions holding three equal batches each, at the
// versions where the response framing or the topic addressing changes.
func TestFetchRulesLimits(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	const topic = "limits"
	if _, err := n.admin().CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	batch := oneRecordBatch(t, 1000)
	S := int32(len(batch)) // every stored batch has exactly this size
	for p := int32(0); p < 3; p++ {
		for i := range 3 {
			if off := produceTo(t, c, topic, p, batch); off != int64(i) {
				t.Fatalf("partition %d batch %d at offset %d", p, i, off)
			}
		}
	}
	id, _ := topicMetadata(t, c, topic)
	const big = 1 << 20
	all := func(pmax int32) []fetchPart {
		return []fetchPart{{0, 0, pmax}, {1, 0, pmax}, {2, 0, pmax}}
	}
	cases := []struct {
		name     string
		maxBytes int32
		parts    []fetchPart
		want     []int // complete batches per partition, in request order
		// oversized: the partition whose single batch may exceed the limits
		// (KIP-74); every other partition stays within them.
		oversized int
	}{
		{"everything fits", big, all(big), []int{3, 3, 3}, -1},
		{"partition_max_bytes caps each partition", big, all(2*S + S/2), []int{2, 2, 2}, -1},
		{"max_bytes spans partitions, then stops", 4*S + S/2, all(big), []int{3, 1, 0}, -1},
		{"max_bytes used up exactly", 3 * S, all(big), []int{3, 0, 0}, -1},
		{"budget left smaller than the next batch", S + S/2, all(big), []int{1, 0, 0}, -1},
		{"partition_max_bytes and max_bytes together", 3 * S, all(2 * S), []int{2, 1, 0}, -1},
		{"KIP-74: first batch past max_bytes", S / 2, all(big), []int{1, 0, 0}, 0},
		{"KIP-74: max_bytes 0 still returns the first batch", 0, all(big), []int{1, 0, 0}, 0},
		{"KIP-74: first batch past partition_max_bytes, not later ones", big, all(S / 2), []int{1, 0, 0}, 0},
		{"KIP-74: applies to the first non-empty partition", S / 2,
			[]fetchPart{{0, 3, big}, {1, 1, big}, {2, 0, big}}, []int{0, 1, 0}, 1},
		{"KIP-74: at a later offset", big,
			[]fetchPart{{0, 2, S / 2}, {1, 2, S / 2}, {2, 0, S / 2}}, []int{1, 0, 0}, 0},
	}
	for _, version := range []int16{4, 11, 12, 13, 17} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("v%d/%s", version, tc.name), func(t *testing.T) {
				req := newFetchRequest(version, fetchTopic{topic, id}, 0, 1, tc.maxBytes, tc.parts...)
				resp := c.roundTrip(req).(*kmsg.FetchResponse)
				if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != len(tc.parts) {
					t.Fatalf("response: error %v, %d topics", kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics))
				}
				total := 0
				for i, p := range resp.Topics[0].Partitions {
					rq := tc.parts[i]
					if p.Partition != rq.partition || p.ErrorCode != 0 || p.HighWatermark != 3 {
						t.Fatalf("partition %d: got partition %d error %v high watermark %d", rq.partition, p.Partition, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
					}
					bases := batchesIn(t, p.RecordBatches)
					if len(bases) != tc.want[i] {
						t.Errorf("partition %d: %d batches (%d bytes), want %d", rq.partition, len(bases), len(p.RecordBatches), tc.want[i])
					}
					for k, b := range bases {
						if b != rq.offset+int64(k) {
							t.Errorf("partition %d: batch %d at offset %d, want %d", rq.partition, k, b, rq.offset+int64(k))
						}
					}
					size := len(p.RecordBatches)
					if i == tc.oversized {
						if len(bases) != 1 || size != int(S) {
							t.Errorf("partition %d: KIP-74 batch: %d batches in %d bytes, want exactly one of %d", rq.partition, len(bases), size, S)
						}
					} else if size > int(rq.maxBytes) {
						t.Errorf("partition %d: %d bytes, over partition_max_bytes %d", rq.partition, size, rq.maxBytes)
					}
					total += size
				}
				if tc.oversized < 0 && total > int(tc.maxBytes) {
					t.Errorf("%d bytes in all, over max_bytes %d", total, tc.maxBytes)
				}
			})
		}
	}
}

// TestFetchRulesMinBytesMaxWait checks that a fetch answers at once when
// min_bytes is met (summed over partitions) and otherwise after max_wait with
// whatever there is.
func TestFetchRulesMinBytesMaxWait(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	const topic = "minbytes"
	if _, err := n.admin().CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	batch := oneRecordBatch(t, 500)
	S := int32(len(batch))
	produceTo(t, c, topic, 0, batch)
	produceTo(t, c, topic, 1, batch)
	// Partition 2 stays empty.

	const (
		long  = 20000 // ms: a fetch that waits this long has failed the test
		short = 200   // ms
		quick = 5 * time.Second
	)
	cases := []struct {
		name        string
		maxWaitMs   int32
		minBytes    int32
		parts       []int32
		wantBatches int
		wantError   *kerr.Error
		waits       bool // answered after max_wait, not before
	}{
		{"min_bytes met at once", long, S, []int32{0}, 1, nil, false},
		{"min_bytes met by the sum over partitions", long, 2 * S, []int32{0, 1, 2}, 2, nil, false},
		{"min_bytes 0", long, 0, []int32{2}, 0, nil, false},
		{"min_bytes not met: max_wait, then what there is", short, 10 * S, []int32{0, 1}, 2, nil, true},
		{"nothing to read: max_wait, then empty", short, 1, []int32{2}, 0, nil, true},
		{"max_wait 0 answers at once", 0, 10 * S, []int32{0, 2}, 1, nil, false},
		{"only failing partitions answer at once", long, 1, []int32{7}, 0, kerr.UnknownTopicOrPartition, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var parts []fetchPart
			for _, p := range tc.parts {
				parts = append(parts, fetchPart{p, 0, 1 << 20})
			}
			req := newFetchRequest(12, fetchTopic{name: topic}, tc.maxWaitMs, tc.minBytes, 1<<20, parts...)
			start := time.Now()
			resp := c.roundTrip(req).(*kmsg.FetchResponse)
			elapsed := time.Since(start)
			if tc.waits {
				if floor := time.Duration(tc.maxWaitMs) * time.Millisecond; elapsed < floor {
					t.Errorf("answered after %v, before max_wait %v", elapsed, floor)
				}
			}
			if elapsed > quick {
				t.Errorf("answered after %v, want well under %v", elapsed, quick)
			}
			got := 0
			for _, p := range resp.Topics[0].Partitions {
				if tc.wantError == nil && p.ErrorCode != 0 || tc.wantError != nil && p.ErrorCode != tc.wantError.Code {
					t.Errorf("partition %d: error %v, want %v", p.Partition, kerr.ErrorForCode(p.ErrorCode), tc.wantError)
				}
				got += len(batchesIn(t, p.RecordBatches))
			}
			if got != tc.wantBatches {
				t.Errorf("%d batches, want %d", got, tc.wantBatches)
			}
		})
	}

	// A waiting fetch that a first append does not satisfy keeps waiting,
	// and answers once a second one reaches min_bytes.
	t.Run("waits across appends until min_bytes", func(t *testing.T) {
		const topic = "minbytes-grow"
		if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
		fc := n.raw()
		req := newFetchRequest(12, fetchTopic{name: topic}, long, 2*S, 1<<20, fetchPart{0, 0, 1 << 20})
		start := time.Now()
		corr := fc.send(req)
		pc := n.raw()
		produceTo(t, pc, topic, 0, batch)
		produceTo(t, pc, topic, 0, batch)
		got, body, err := fc.readResponse(true)
		if err != nil || got != corr {
			t.Fatalf("fetch response: %v (correlation id %d, want %d)", err, got, corr)
		}
		if elapsed := time.Since(start); elapsed > quick {
			t.Fatalf("answered after %v: not woken by the appends", elapsed)
		}
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		if bases := batchesIn(t, resp.Topics[0].Partitions[0].RecordBatches); len(bases) != 2 {
			t.Fatalf("%d batches, want 2: answered before min_bytes", len(bases))
		}
	})
}

// TestFetchErrorAnswersAtOnce: a fetch in which one partition has an error
// (here OFFSET_OUT_OF_RANGE) is answered at once, as Kafka does, with the
// other partitions' data, not after max_wait; and a franz-go consumer
// whose position is past the end resets without waiting max_wait.
func TestFetchErrorAnswersAtOnce(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	const topic = "oor"
	if _, err := n.admin().CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	batch := oneRecordBatch(t, 100)
	produceTo(t, c, topic, 0, batch)
	produceTo(t, c, topic, 1, batch)
	const maxWait = 30000 // ms; partition 2 is empty, so only the error can end the wait
	for _, v := range []int16{5, 10, 12} {
		req := newFetchRequest(v, fetchTopic{name: topic}, maxWait, 1, 1<<20,
			fetchPart{0, 999, 1 << 20}, fetchPart{2, 0, 1 << 20})
		start := time.Now()
		resp := c.roundTrip(req).(*kmsg.FetchResponse)
		elapsed := time.Since(start)
		t.Logf("v%d: answered after %v", v, elapsed)
		if elapsed > 5*time.Second {
			t.Errorf("v%d: answered after %v: the error waited for max_wait", v, elapsed)
		}
		ps := resp.Topics[0].Partitions
		if ps[0].ErrorCode != kerr.OffsetOutOfRange.Code || ps[1].ErrorCode != 0 {
			t.Errorf("v%d: errors %v, %v; want OFFSET_OUT_OF_RANGE and none", v, kerr.ErrorForCode(ps[0].ErrorCode), kerr.ErrorForCode(ps[1].ErrorCode))
		}
	}
	// With data elsewhere, the error does not hide it.
	req := newFetchRequest(12, fetchTopic{name: topic}, maxWait, 1<<20, 1<<20, fetchPart{0, 999, 1 << 20}, fetchPart{1, 0, 1 << 20})
	resp := c.roundTrip(req).(*kmsg.FetchResponse)
	if got := len(batchesIn(t, resp.Topics[0].Partitions[1].RecordBatches)); got != 1 {
		t.Errorf("partition 1 beside the failing one: %d batches, want 1", got)
	}

	cl := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(999)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(maxWait*time.Millisecond))
	start := time.Now()
	for got := 0; got < 1; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("no record after the reset")
		}
		got += fs.NumRecords()
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("the consumer's reset took %v: the out-of-range answer waited", elapsed)
	} else {
		t.Logf("consumer past the end reset and read in %v", elapsed)
	}
}

// offsetForLeaderEpoch asks for one partition's end offset for an epoch.
func offsetForLeaderEpoch(c *rawConn, version int16, topic string, partition, epoch, current int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = version
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.CurrentLeaderEpoch = partition, epoch, current
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.t.Fatalf("OffsetForLeaderEpoch v%d: %d topics", version, len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0]
}

// TestOffsetForLeaderEpoch checks end offsets per epoch, unknown partitions
// and current_leader_epoch fencing, before and after the leader epoch moves
// without any write (a controlled shutdown fences the broker; its next
// heartbeat gives the leadership back, each step bumping the epoch).
func TestOffsetForLeaderEpoch(t *testing.T) {
	n := startNode(t, "", map[string]string{"broker.heartbeat.interval.ms": "50"})
	ctx := ctxT(t)
	const topic = "ofle"
	if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	produceTo(t, c, topic, 0, buildBatch(t, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), 5))
	// Partition 1 stays empty.
	_, parts := topicMetadata(t, c, topic)
	e0 := parts[0].LeaderEpoch
	if e0 < 0 || parts[1].LeaderEpoch != e0 {
		t.Fatalf("leader epochs %d %d", e0, parts[1].LeaderEpoch)
	}

	type want struct {
		epoch  int32
		offset int64
		err    *kerr.Error
	}
	type probe struct {
		name           string
		topic          string
		partition      int32
		epoch, current int32
		minVersion     int16 // current_leader_epoch exists from v2
		want           want
	}
	run := func(t *testing.T, probes []probe) {
		for _, version := range []int16{0, 1, 2, 3, 4} {
			for _, pr := range probes {
				if version < pr.minVersion {
					continue
				}
				t.Run(fmt.Sprintf("v%d/%s", version, pr.name), func(t *testing.T) {
					p := offsetForLeaderEpoch(c, version, pr.topic, pr.partition, pr.epoch, pr.current)
					w := pr.want
					if w.err != nil {
						if p.ErrorCode != w.err.Code {
							t.Fatalf("error %v, want %v", kerr.ErrorForCode(p.ErrorCode), w.err)
						}
						if p.EndOffset != -1 {
							t.Fatalf("end offset %d with an error, want -1", p.EndOffset)
						}
						return
					}
					if p.ErrorCode != 0 {
						t.Fatalf("error %v", kerr.ErrorForCode(p.ErrorCode))
					}
					wantEpoch := w.epoch
					if version == 0 {
						wantEpoch = -1 // not in the v0 response
					}
					if p.EndOffset != w.offset || p.LeaderEpoch != wantEpoch {
						t.Fatalf("epoch %d end offset %d, want epoch %d end offset %d", p.LeaderEpoch, p.EndOffset, wantEpoch, w.offset)
					}
				})
			}
		}
	}

	run(t, []probe{
		{"current epoch: the log end offset", topic, 0, e0, -1, 0, want{e0, 5, nil}},
		{"current epoch, fenced by itself", topic, 0, e0, e0, 2, want{e0, 5, nil}},
		{"current epoch of an empty partition", topic, 1, e0, -1, 0, want{e0, 0, nil}},
		{"epoch above the current one", topic, 0, e0 + 1, -1, 0, want{-1, -1, nil}},
		{"undefined epoch", topic, 0, -1, -1, 0, want{-1, -1, nil}},
		{"current_leader_epoch from the future", topic, 0, e0, e0 + 1, 2, want{err: kerr.UnknownLeaderEpoch}},
		{"unknown topic", "nope", 0, e0, -1, 0, want{err: kerr.UnknownTopicOrPartition}},
		{"unknown partition", topic, 9, e0, -1, 0, want{err: kerr.UnknownTopicOrPartition}},
		{"negative partition", topic, -1, e0, -1, 0, want{err: kerr.UnknownTopicOrPartition}},
	})

	// Move the leader epoch without writing: controlled shutdown over the
	// wire (BrokerHeartbeat with WantShutdown) fences this broker, and its
	// own next heartbeat brings it and its leadership back.
	hb := kmsg.NewPtrBrokerHeartbeatRequest()
	hb.Version = 0
	hb.BrokerID = 1
	hb.BrokerEpoch = n.srv.link.Epoch()
	hb.WantShutdown = true
	hb.CurrentMetadataOffset = -1
	if resp := c.roundTrip(hb).(*kmsg.BrokerHeartbeatResponse); resp.ErrorCode != 0 {
		t.Fatalf("controlled shutdown: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	var e1 int32
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, parts = topicMetadata(t, c, topic)
		if p0, p1 := parts[0], parts[1]; p0.Leader == 1 && p1.Leader == 1 && p0.LeaderEpoch > e0 && p1.LeaderEpoch == p0.LeaderEpoch {
			e1 = p0.LeaderEpoch
			// The partitions reopen once the new image reaches them.
			if offsetForLeaderEpoch(c, 4, topic, 0, e1, e1).ErrorCode == 0 &&
				offsetForLeaderEpoch(c, 4, topic, 1, e1, e1).ErrorCode == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership not back at a new epoch: %+v", parts)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if e1 < e0+2 {
		t.Fatalf("leader epoch %d after a fence and an unfence from %d", e1, e0)
	}

	t.Run("after the epoch moved", func(t *testing.T) {
		run(t, []probe{
			{"old epoch ends at the log end", topic, 0, e0, -1, 0, want{e0, 5, nil}},
			{"epoch between the last written and the current: the last written", topic, 0, e0 + 1, -1, 0, want{e0, 5, nil}},
			{"epoch before the current one of an empty partition", topic, 1, e0 + 1, -1, 0, want{e0 + 1, 0, nil}},
			{"current epoch without writes: the log end offset", topic, 0, e1, e1, 2, want{e1, 5, nil}},
			{"current epoch of an empty partition", topic, 1, e1, -1, 0, want{e1, 0, nil}},
			{"stale current_leader_epoch is fenced", topic, 0, e0, e0, 2, want{err: kerr.FencedLeaderEpoch}},
			{"current_leader_epoch from the future", topic, 0, e1, e1 + 1, 2, want{err: kerr.UnknownLeaderEpoch}},
			{"epoch above the current one", topic, 0, e1 + 1, -1, 0, want{-1, -1, nil}},
		})
	})

	// Writes at the new epoch: the old epoch now ends where the new one
	// starts, and the new one at the log end.
	produceTo(t, c, topic, 0, buildBatch(t, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), 2))
	produceTo(t, c, topic, 1, buildBatch(t, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), 4))
	t.Run("after writes at the new epoch", func(t *testing.T) {
		run(t, []probe{
			{"old epoch ends where the new one starts", topic, 0, e0, e1, 2, want{e0, 5, nil}},
			{"epoch between them: the old one, as before the writes", topic, 0, e0 + 1, -1, 0, want{e0, 5, nil}},
			{"current epoch", topic, 0, e1, e1, 2, want{e1, 7, nil}},
			{"epoch before every write: the start of the first one", topic, 1, e0, -1, 0, want{e0, 0, nil}},
			{"current epoch of the once empty partition", topic, 1, e1, e1, 2, want{e1, 4, nil}},
		})
	})
}

// TestDescribeCluster checks the cluster id, controller and broker list
// (advertised host and port, rack), and Kafka's answers for other endpoint
// types: 2 (controllers) asked of a broker is MISMATCHED_ENDPOINT_TYPE, an
// unknown type UNSUPPORTED_ENDPOINT_TYPE.
func TestDescribeCluster(t *testing.T) {
	const clusterID = "fetchRulesTestCluster0"
	n := startNode(t, "", map[string]string{
		"node.id":            "3",
		"cluster.id":         clusterID,
		"broker.rack":        "rack-a",
		"advertised.address": "broker-3.example:29092",
	})
	c := n.raw()
	for v := int16(0); v <= 2; v++ {
		for _, ep := range []int8{1, 0, 2, 3, -1} {
			if v == 0 && ep != 1 {
				continue // v0 has no endpoint type: always brokers
			}
			t.Run("v"+strconv.Itoa(int(v))+"/endpoint type "+strconv.Itoa(int(ep)), func(t *testing.T) {
				req := kmsg.NewPtrDescribeClusterRequest()
				req.Version = v
				req.EndpointType = ep
				resp := c.roundTrip(req).(*kmsg.DescribeClusterResponse)
				switch ep {
				case 1:
				case 2:
					if resp.ErrorCode != kerr.MismatchedEndpointType.Code {
						t.Fatalf("error %v, want %v", kerr.ErrorForCode(resp.ErrorCode), kerr.MismatchedEndpointType)
					}
					return
				default:
					if resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
						t.Fatalf("error %v, want %v", kerr.ErrorForCode(resp.ErrorCode), kerr.UnsupportedEndpointType)
					}
					return
				}
				if resp.ErrorCode != 0 {
					t.Fatalf("error %v", kerr.ErrorForCode(resp.ErrorCode))
				}
				if resp.ClusterID != clusterID || resp.ControllerID != 3 {
					t.Fatalf("cluster id %q controller %d, want %q and 3", resp.ClusterID, resp.ControllerID, clusterID)
				}
				if v >= 1 && resp.EndpointType != 1 {
					t.Fatalf("endpoint type %d, want 1 (brokers)", resp.EndpointType)
				}
				if len(resp.Brokers) != 1 {
					t.Fatalf("brokers %+v, want one", resp.Brokers)
				}
				b := resp.Brokers[0]
				if b.NodeID != 3 || b.Host != "broker-3.example" || b.Port != 29092 || b.Rack == nil || *b.Rack != "rack-a" || b.IsFenced {
					t.Fatalf("broker %+v (rack %v), want 3 at broker-3.example:29092 in rack-a, not fenced", b, b.Rack)
				}
			})
		}
	}
	// A broker without a rack answers a null rack.
	n2 := startNode(t, "", nil)
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version = 1
	resp := n2.raw().roundTrip(req).(*kmsg.DescribeClusterResponse)
	if resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.Brokers[0].Rack != nil {
		t.Fatalf("no rack: error %v brokers %+v", kerr.ErrorForCode(resp.ErrorCode), resp.Brokers)
	}
	if host, port := resp.Brokers[0].Host, resp.Brokers[0].Port; host+":"+strconv.Itoa(int(port)) != n2.addr() {
		t.Fatalf("advertised %s:%d, want the listener %s", host, port, n2.addr())
	}
}
