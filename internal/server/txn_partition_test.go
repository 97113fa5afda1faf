package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

// The partition side of transactions over the wire, without a transaction
// coordinator: transactional batches built by hand, markers written with
// WriteTxnMarkers as a coordinator would, read_committed Fetch and
// ListOffsets, DescribeProducers, and franz-go consumers at both isolation
// levels.

func txnBatch(t *testing.T, pid int64, epoch int16, seq int32, txn bool, values ...string) []byte {
	t.Helper()
	opts := record.NewBatchOptions(record.CodecNone)
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, epoch, seq, txn
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte(v)}
	}
	b, err := record.Build(nil, opts, time.Now().UnixMilli(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceTxnRaw(t *testing.T, c *rawConn, txnID *string, topic string, batch []byte) (int16, int64) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.TransactionID, req.Acks, req.TimeoutMillis = txnID, -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.ProduceResponse)
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

func writeMarker(t *testing.T, c *rawConn, topic string, pid int64, epoch int16, coordEpoch int32, commit bool) int16 {
	t.Helper()
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Committed = pid, epoch, coordEpoch, commit
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp := c.roundTrip(req).(*kmsg.WriteTxnMarkersResponse)
	return resp.Markers[0].Topics[0].Partitions[0].ErrorCode
}

type fetched struct {
	errCode  int16
	hw, lso  int64
	aborted  []kmsg.FetchResponseTopicPartitionAbortedTransaction
	nullAbrt bool
	values   []string // data records, "offset:value"
}

func fetchRaw(t *testing.T, c *rawConn, topic string, offset int64, isolation int8, maxWait int32) fetched {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(11)
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes, req.IsolationLevel = -1, maxWait, 1, 1<<20, isolation
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.FetchResponse)
	p := resp.Topics[0].Partitions[0]
	f := fetched{errCode: p.ErrorCode, hw: p.HighWatermark, lso: p.LastStableOffset, aborted: p.AbortedTransactions, nullAbrt: p.AbortedTransactions == nil}
	if err := record.Split(p.RecordBatches, func(b []byte) error {
		h, err := record.Validate(b)
		if err != nil || h.IsControl() {
			return err
		}
		return record.ForEach(b, func(r *record.Record) error {
			f.values = append(f.values, fmt.Sprintf("%d:%s", h.BaseOffset+int64(r.OffsetDelta), r.Value))
			return nil
		})
	}); err != nil {
		t.Fatalf("fetched records: %v", err)
	}
	return f
}

func listLatest(t *testing.T, c *rawConn, topic string, isolation int8) int64 {
	t.Helper()
	off, code := listLatestCode(c, topic, isolation)
	if code != 0 {
		t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(code))
	}
	return off
}

func listLatestCode(c *rawConn, topic string, isolation int8) (int64, int16) {
	return listOffsetCode(c, topic, -1, isolation)
}

func listOffsetCode(c *rawConn, topic string, ts int64, isolation int8) (int64, int16) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(5)
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = ts
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.ListOffsetsResponse)
	p := resp.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

func describeProducers(t *testing.T, c *rawConn, topic string) []string {
	t.Helper()
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{0}
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req).(*kmsg.DescribeProducersResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("DescribeProducers: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	var out []string
	for _, ap := range p.ActiveProducers {
		if ap.LastTimestamp <= 0 {
			t.Errorf("producer %d: last timestamp %d", ap.ProducerID, ap.LastTimestamp)
		}
		out = append(out, fmt.Sprintf("pid=%d epoch=%d seq=%d coord=%d txn=%d", ap.ProducerID, ap.ProducerEpoch, ap.LastSequence, ap.CoordinatorEpoch, ap.CurrentTxnStartOffset))
	}
	return out
}

func consumeAll(t *testing.T, n *testNode, topic string, isolation kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}), kgo.FetchIsolationLevel(isolation))
	ctx := ctxT(t)
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v, want %d records: %v", got, want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value)) })
	}
	return got
}

func TestTxnPartitionWire(t *testing.T) {
	// Batches built by hand, without a coordinator: no KIP-890
	// verification (it is on by default and asks the coordinator).
	n := startNode(t, "", map[string]string{"transaction.partition.verification.enable": "false"})
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, "tx"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	tid := "app-1"

	// A transactional batch needs a transactional id in the request.
	if code, _ := produceTxnRaw(t, c, nil, "tx", txnBatch(t, 1000, 0, 0, true, "a0")); code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional batch without a transactional id: %v", kerr.ErrorForCode(code))
	}
	for _, p := range []struct {
		pid    int64
		txn    bool
		values []string
		want   int64
	}{
		{1000, true, []string{"a0", "a1", "a2"}, 0},
		{-1, false, []string{"n0"}, 3},
		{2000, true, []string{"b0", "b1"}, 4},
	} {
		if code, off := produceTxnRaw(t, c, &tid, "tx", txnBatch(t, p.pid, 0, 0, p.txn, p.values...)); code != 0 || off != p.want {
			t.Fatalf("produce %v: %v at %d, want offset %d", p.values, kerr.ErrorForCode(code), off, p.want)
		}
	}
	if got := listLatest(t, c, "tx", 0); got != 6 {
		t.Fatalf("latest read_uncommitted %d, want 6", got)
	}
	if got := listLatest(t, c, "tx", 1); got != 0 {
		t.Fatalf("latest read_committed %d, want 0 (the first transaction's start)", got)
	}
	// A timestamp lookup stops below the LSO too.
	if off, code := listOffsetCode(c, "tx", 0, 1); code != 0 || off != -1 {
		t.Fatalf("offset for timestamp 0, read_committed: %d (%v), want -1", off, kerr.ErrorForCode(code))
	}
	if off, code := listOffsetCode(c, "tx", 0, 0); code != 0 || off != 0 {
		t.Fatalf("offset for timestamp 0, read_uncommitted: %d (%v), want 0", off, kerr.ErrorForCode(code))
	}
	f := fetchRaw(t, c, "tx", 0, 1, 0)
	if f.errCode != 0 || f.lso != 0 || f.hw != 6 || len(f.values) != 0 || f.nullAbrt || len(f.aborted) != 0 {
		t.Fatalf("read_committed fetch before the markers: %+v", f)
	}
	if f := fetchRaw(t, c, "tx", 0, 0, 0); f.lso != 0 || len(f.values) != 6 || !f.nullAbrt {
		t.Fatalf("read_uncommitted fetch: %+v", f)
	}
	if got, want := describeProducers(t, c, "tx"), []string{"pid=1000 epoch=0 seq=2 coord=-1 txn=0", "pid=2000 epoch=0 seq=1 coord=-1 txn=4"}; !slices.Equal(got, want) {
		t.Fatalf("producers %q, want %q", got, want)
	}

	// The coordinator aborts 1000's transaction and commits 2000's.
	if code := writeMarker(t, c, "tx", 1000, 0, 5, false); code != 0 {
		t.Fatalf("abort marker: %v", kerr.ErrorForCode(code))
	}
	if code := writeMarker(t, c, "tx", 2000, 0, 5, true); code != 0 {
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	// Fencing: an older coordinator epoch, an older producer epoch, an
	// unknown partition.
	if code := writeMarker(t, c, "tx", 2000, 0, 4, true); code != kerr.TransactionCoordinatorFenced.Code {
		t.Fatalf("marker of an older coordinator: %v", kerr.ErrorForCode(code))
	}
	if code := writeMarker(t, c, "tx", 2000, 1, 5, true); code != 0 {
		t.Fatalf("marker with a bumped epoch: %v", kerr.ErrorForCode(code))
	}
	if code := writeMarker(t, c, "tx", 2000, 0, 5, true); code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("marker of an older epoch: %v", kerr.ErrorForCode(code))
	}
	if code := writeMarker(t, c, "nope", 2000, 1, 5, true); code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("marker for an unknown topic: %v", kerr.ErrorForCode(code))
	}
	if got := listLatest(t, c, "tx", 1); got != 9 {
		t.Fatalf("latest read_committed after the markers %d, want 9", got)
	}
	f = fetchRaw(t, c, "tx", 0, 1, 0)
	wantAborted := []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 1000, FirstOffset: 0}}
	if f.errCode != 0 || f.lso != 9 || len(f.values) != 6 || !slices.EqualFunc(f.aborted, wantAborted, func(a, b kmsg.FetchResponseTopicPartitionAbortedTransaction) bool {
		return a.ProducerID == b.ProducerID && a.FirstOffset == b.FirstOffset
	}) {
		t.Fatalf("read_committed fetch after the markers: %+v", f)
	}
	// From inside it (before its marker at 6) it is reported, as Kafka
	// does; from past its marker it is not.
	if f := fetchRaw(t, c, "tx", 4, 1, 0); len(f.aborted) != 1 || len(f.values) != 2 {
		t.Fatalf("read_committed fetch from 4: %+v", f)
	}
	if f := fetchRaw(t, c, "tx", 7, 1, 0); len(f.aborted) != 0 || f.nullAbrt {
		t.Fatalf("read_committed fetch from 7: %+v", f)
	}
	if got, want := describeProducers(t, c, "tx"), []string{"pid=1000 epoch=0 seq=2 coord=5 txn=-1", "pid=2000 epoch=1 seq=-1 coord=5 txn=-1"}; !slices.Equal(got, want) {
		t.Fatalf("producers after the markers %q, want %q", got, want)
	}

	// Real clients: read_committed sees the committed records only.
	if got, want := consumeAll(t, n, "tx", kgo.ReadCommitted(), 3), []string{"3:n0", "4:b0", "5:b1"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed consumer got %v, want %v", got, want)
	}
	if got := consumeAll(t, n, "tx", kgo.ReadUncommitted(), 6); len(got) != 6 {
		t.Fatalf("read_uncommitted consumer got %v", got)
	}

	// A read_committed long poll at the LSO wakes when a commit moves it.
	if code, off := produceTxnRaw(t, c, &tid, "tx", txnBatch(t, 3000, 0, 0, true, "c0")); code != 0 || off != 9 {
		t.Fatalf("produce c0: %v at %d", kerr.ErrorForCode(code), off)
	}
	poll := n.raw()
	type result struct {
		f   fetched
		dur time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		f := fetchRaw(t, poll, "tx", 9, 1, 8000)
		done <- result{f, time.Since(start)}
	}()
	if code := writeMarker(t, c, "tx", 3000, 0, 5, true); code != 0 {
		t.Fatalf("commit marker: %v", kerr.ErrorForCode(code))
	}
	select {
	case r := <-done:
		if len(r.f.values) != 1 || r.f.values[0] != "9:c0" || r.dur > 7*time.Second {
			t.Fatalf("long poll: %+v after %s", r.f, r.dur)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("long poll did not answer")
	}

	// A restart keeps the LSO and the aborted transactions (the clean
	// shutdown's snapshot and .txnindex).
	if code, _ := produceTxnRaw(t, c, &tid, "tx", txnBatch(t, 4000, 0, 0, true, "d0")); code != 0 {
		t.Fatalf("produce d0: %v", kerr.ErrorForCode(code))
	}
	n.restart()
	c = n.raw()
	waitFor(t, ctxT(t), "the partition after restart", func() bool {
		_, code := listLatestCode(c, "tx", 1)
		return code == 0
	})
	if got := listLatest(t, c, "tx", 1); got != 11 {
		t.Fatalf("latest read_committed after restart %d, want 11 (producer 4000's transaction)", got)
	}
	if f := fetchRaw(t, c, "tx", 0, 1, 0); f.lso != 11 || len(f.aborted) != 1 || f.aborted[0].ProducerID != 1000 {
		t.Fatalf("read_committed fetch after restart: %+v", f)
	}
}
