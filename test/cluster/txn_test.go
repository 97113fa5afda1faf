package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/stratalog/strata/internal/record"
)

// TestTxnMarkersReplicate: followers replicate transactional batches and
// markers with their producer state, transaction index and last stable
// offset, so that after the leader is killed (-9) the new leader answers
// read_committed reads exactly as the old one did, and can complete a
// transaction the old leader saw begin. The transaction coordinator is
// played by hand (WriteTxnMarkers).
func TestTxnMarkersReplicate(t *testing.T) {
	// Batches built by hand, without a coordinator: no KIP-890
	// verification (on by default, it asks the coordinator).
	c := newRolesCluster(t, 3, 0, "", "--set", "transaction.partition.verification.enable=false")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	waitFor(t, "three registered brokers", 30*time.Second, func() bool {
		md, err := c.metadata(ctx)
		return err == nil && len(md.Brokers) == 3
	})
	waitFor(t, "topic txr", 30*time.Second, func() bool {
		res, err := c.admin().CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": ptr("2")}, "txr")
		if err == nil {
			err = res.Err
		}
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists)
	})
	c.waitFullISR("txr", 1, 30*time.Second)
	leader, _, _ := c.partitionState("txr", 0)
	md, err := c.metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	topicID := md.Topics["txr"].ID
	// Produce below v12: a transaction version 1 producer. From v12
	// (KIP-890 part 2) the partition leader adds the partition to the
	// transaction with its coordinator even with verification off, and
	// this test has no coordinator.
	vers := kversion.Stable()
	vers.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	cl := c.client(kgo.MaxVersions(vers))
	tid := "cluster-app"

	send := func(to int32, req kmsg.Request) kmsg.Response {
		t.Helper()
		resp, err := cl.Broker(int(to)).Request(ctx, req)
		if err != nil {
			t.Fatalf("%s to node %d: %v", kmsg.NameForKey(req.Key()), to, err)
		}
		return resp
	}
	var latest func(to int32, isolation int8) (int64, int16)
	var produceCode func(to int32, pid int64, values ...string) (int64, int16)
	produce := func(to int32, pid int64, values ...string) int64 {
		t.Helper()
		off, code := produceCode(to, pid, values...)
		if code != 0 {
			t.Fatalf("produce %v: %v", values, kerr.ErrorForCode(code))
		}
		return off
	}
	produceCode = func(to int32, pid int64, values ...string) (int64, int16) {
		opts := record.NewBatchOptions(record.CodecNone)
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, 0, 0, true
		recs := make([]record.Record, len(values))
		for i, v := range values {
			recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(v)}
		}
		b, err := record.Build(nil, opts, time.Now().UnixMilli(), recs)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = &tid, -1, 10000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.TopicID = "txr", topicID
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = b
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := send(to, req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
		return p.BaseOffset, p.ErrorCode
	}
	marker := func(to int32, pid int64, commit bool) int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.CoordinatorEpoch, m.Committed = pid, 1, commit
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = "txr", []int32{0}
		m.Topics = append(m.Topics, mt)
		req.Markers = append(req.Markers, m)
		return send(to, req).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
	}
	lso := func(to int32) (int64, int16) { return latest(to, 1) }
	latest = func(to int32, isolation int8) (int64, int16) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = isolation
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "txr"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		p := send(to, req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		return p.Offset, p.ErrorCode
	}

	// The leader may still be applying the topic's creation: the first
	// write retries UNKNOWN_TOPIC_ID, as a client would.
	waitFor(t, "the first write", 20*time.Second, func() bool {
		if md, err := c.metadata(ctx); err == nil {
			topicID = md.Topics["txr"].ID
		}
		_, code := produceCode(leader, 100, "a0", "a1") // 0-1, aborted below
		return code == 0
	})
	produce(leader, 200, "b0") // 2, committed below
	if code := marker(leader, 100, false); code != 0 {
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	if code := marker(leader, 200, true); code != 0 {
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	produce(leader, 300, "c0") // 5, ongoing when the leader dies
	if got, code := lso(leader); code != 0 || got != 5 {
		t.Fatalf("LSO on the leader %d (%v), want 5", got, kerr.ErrorForCode(code))
	}

	// The followers got everything (acks=all with min.insync.replicas=2
	// and a full ISR): kill the leader.
	c.node(leader).kill()
	var newLeader int32
	waitFor(t, "a new leader", 30*time.Second, func() bool {
		l, _, _ := c.partitionState("txr", 0)
		if l < 0 || l == leader {
			return false
		}
		newLeader = l
		_, code := lso(l)
		return code == 0
	})
	if got, _ := lso(newLeader); got != 5 {
		t.Fatalf("LSO on the new leader %d, want 5: producer 300's transaction is still open", got)
	}
	if code := marker(newLeader, 300, true); code != 0 {
		t.Fatalf("commit marker on the new leader: %v", kerr.ErrorForCode(code))
	}
	if got, _ := lso(newLeader); got != 7 {
		t.Fatalf("LSO after the commit %d, want 7", got)
	}

	// read_committed through a real client: the aborted records never show.
	consumeCommitted := func(what string, want ...string) {
		t.Helper()
		cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"txr": {0: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		defer cons.Close()
		var got []string
		for len(got) < len(want) {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("%s: consumed %v: %v", what, got, ctx.Err())
			}
			fs.EachRecord(func(r *kgo.Record) { got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value)) })
		}
		if !slices.Equal(got, want) {
			t.Fatalf("read_committed %s: %v, want %v", what, got, want)
		}
	}
	consumeCommitted("after failover", "2:b0", "5:c0")

	// Producer 400 opens a transaction, then every node is killed -9 and
	// restarted: each recovers its producer state and transaction index
	// from its files, and the leader, whichever it is, has the same LSO.
	produce(newLeader, 400, "d0") // 7
	for _, n := range c.nodes {
		n.kill()
	}
	for _, n := range c.nodes {
		n.start()
	}
	cl = c.client(kgo.MaxVersions(vers))
	var last int32
	waitFor(t, "a leader after the restart", 60*time.Second, func() bool {
		l, _, _ := c.partitionState("txr", 0)
		if l < 0 {
			return false
		}
		last = l
		// The high watermark is back once the ISR has fetched in the new
		// leader's epoch; the LSO is never above it.
		hw, code := latest(l, 0)
		return code == 0 && hw == 8
	})
	if got, _ := lso(last); got != 7 {
		t.Fatalf("LSO after kill -9 of every node %d, want 7: producer 400's transaction is open", got)
	}
	// What kafka-transactions.sh describe-producers shows for a hanging
	// transaction, through kadm (which asks the partition's leader).
	// (A broker still replaying the metadata log answers Metadata with
	// LEADER_NOT_AVAILABLE for a moment: ask again.)
	var part kadm.DescribedProducersPartition
	waitFor(t, "DescribeProducers", 20*time.Second, func() bool {
		dp, err := kadm.NewClient(cl).DescribeProducers(ctx, kadm.TopicsSet{"txr": {0: {}}})
		if err != nil {
			return false
		}
		part = dp["txr"].Partitions[0]
		return part.Err == nil
	})
	if p400, ok := part.ActiveProducers[400]; part.Err != nil || !ok || p400.CurrentTxnStartOffset != 7 || p400.LastSequence != 0 {
		t.Fatalf("described producers of txr-0: %+v (err %v)", part.ActiveProducers, part.Err)
	}
	if p300 := part.ActiveProducers[300]; p300.CurrentTxnStartOffset != -1 || p300.CoordinatorEpoch != 1 {
		t.Fatalf("producer 300 after its commit: %+v", p300)
	}
	if code := marker(last, 400, false); code != 0 {
		t.Fatalf("abort marker after the restart: %v", kerr.ErrorForCode(code))
	}
	if got, _ := lso(last); got != 9 {
		t.Fatalf("LSO after the abort %d, want 9", got)
	}
	// Producer 500 commits one more record: a consumer reading up to it has
	// skipped everything aborted before.
	produce(last, 500, "e0") // 9
	if code := marker(last, 500, true); code != 0 {
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	consumeCommitted("after kill -9 of every node", "2:b0", "5:c0", "9:e0")
}

func ptr(s string) *string { return &s }
