package broker

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/record"
)

// fakeVerifier answers VerifyPartition from a table and records the calls;
// with gate set, calls wait for it to be closed.
type fakeVerifier struct {
	mu    sync.Mutex
	calls []string
	errs  map[int64]error
	gate  chan struct{}
}

func (v *fakeVerifier) VerifyPartition(ctx context.Context, txnID string, pid int64, epoch int16, topic string, partition int32) error {
	v.mu.Lock()
	v.calls = append(v.calls, txnID+"/"+topic)
	gate, err := v.gate, v.errs[pid]
	v.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// AddPartitionToTxn makes fakeVerifier a TxnPartitionAdder too.
func (v *fakeVerifier) AddPartitionToTxn(ctx context.Context, txnID string, pid int64, epoch int16, topic string, partition int32) error {
	v.mu.Lock()
	v.calls = append(v.calls, "add:"+txnID+"/"+topic)
	err := v.errs[pid]
	v.mu.Unlock()
	return err
}

func (v *fakeVerifier) ncalls() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.calls)
}

type markerSeen struct {
	partition int32
	pid       int64
	epoch     int16
	commit    bool
	offset    int64
}

type fakeMarkers struct {
	mu   sync.Mutex
	seen []markerSeen
}

func (m *fakeMarkers) OnTxnMarker(partition int32, pid int64, epoch int16, commit bool, offset int64) {
	m.mu.Lock()
	m.seen = append(m.seen, markerSeen{partition, pid, epoch, commit, offset})
	m.mu.Unlock()
}

func txnProduceReq(t *testing.T, txnID *string, topic string, pid int64, seq int32, txn bool) *kmsg.ProduceRequest {
	t.Helper()
	opts := record.NewBatchOptions(record.CodecNone)
	opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = pid, 0, seq, txn
	b, err := record.Build(nil, opts, time.Now().UnixMilli(), []record.Record{{Value: []byte("v")}})
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.TransactionID, req.Acks, req.TimeoutMillis = txnID, 1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = b
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// serveAsync starts serving req on connection conn and returns its recorder.
func serveAsync(b *Broker, req kmsg.Request, conn uint64) *recorder {
	rec := newRecorder()
	ci := &network.ConnInfo{ID: conn, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}}
	b.Serve(context.Background(), &network.Request{Conn: ci, Data: frameFor(req, 7)}, rec)
	return rec
}

func decodeRecorded(t *testing.T, rec *recorder, req kmsg.Request) kmsg.Response {
	t.Helper()
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no response")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var buf []byte
	for _, c := range rec.resp.Chunks {
		buf = append(buf, c.Bytes...)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body := buf[4:]
	if resp.IsFlexible() {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp
}

func produced(resp kmsg.Response) (int16, int64) {
	p := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

// KIP-890 part 1: a transactional batch that would start a transaction is
// verified with the coordinator first, and the coordinator's answer decides.
func TestProduceTxnVerification(t *testing.T) {
	b := newTestBroker(t)
	v := &fakeVerifier{errs: map[int64]error{
		2: kerr.InvalidTxnState,
		3: kerr.NotCoordinator,
		4: errors.New("partition not in the transaction"),
		6: kerr.ProducerFenced,
	}}
	b.opts.TxnVerifier = v
	tid := "tx-app"

	if code, off := produced(roundTrip(t, b, txnProduceReq(t, &tid, "t", 1, 0, true))); code != 0 || off != 0 {
		t.Fatalf("first batch: %v at %d", kerr.ErrorForCode(code), off)
	}
	if v.ncalls() != 1 || v.calls[0] != "tx-app/t" {
		t.Fatalf("verifier calls %v, want one for tx-app/t", v.calls)
	}
	// The transaction is ongoing: no verification for the next batch.
	if code, off := produced(roundTrip(t, b, txnProduceReq(t, &tid, "t", 1, 1, true))); code != 0 || off != 1 {
		t.Fatalf("second batch: %v at %d", kerr.ErrorForCode(code), off)
	}
	if v.ncalls() != 1 {
		t.Fatalf("verifier called again: %v", v.calls)
	}
	for pid, want := range map[int64]*kerr.Error{2: kerr.InvalidTxnState, 3: kerr.NotEnoughReplicas, 4: kerr.InvalidTxnState, 6: kerr.InvalidProducerEpoch} {
		if code, _ := produced(roundTrip(t, b, txnProduceReq(t, &tid, "t", pid, 0, true))); code != want.Code {
			t.Errorf("producer %d: %v, want %v", pid, kerr.ErrorForCode(code), want)
		}
	}
	// Produce v12+ (transaction version 2): the leader adds the partition.
	req := txnProduceReq(t, &tid, "t", 7, 0, true)
	req.SetVersion(12)
	if code, _ := produced(roundTrip(t, b, req)); code != 0 || v.calls[len(v.calls)-1] != "add:tx-app/t" {
		t.Fatalf("produce v12: %v, calls %v", kerr.ErrorForCode(code), v.calls)
	}
	// Non-transactional batches are never verified.
	n := v.ncalls()
	if code, _ := produced(roundTrip(t, b, txnProduceReq(t, nil, "t", 9, 0, false))); code != 0 || v.ncalls() != n {
		t.Fatalf("idempotent batch: %v, calls %v", kerr.ErrorForCode(code), v.calls)
	}

	// While a verification is in flight, later requests of the connection
	// wait their turn: producer 5's second batch lands after its first.
	v.mu.Lock()
	v.gate = make(chan struct{})
	v.mu.Unlock()
	first := serveAsync(b, txnProduceReq(t, &tid, "t", 5, 0, true), 42)
	second := serveAsync(b, txnProduceReq(t, &tid, "t", 5, 1, true), 42)
	select {
	case <-second.done:
		t.Fatal("the second request was answered before the first was verified")
	default:
	}
	close(v.gate)
	c1, o1 := produced(decodeRecorded(t, first, txnProduceReq(t, &tid, "t", 5, 0, true)))
	c2, o2 := produced(decodeRecorded(t, second, txnProduceReq(t, &tid, "t", 5, 1, true)))
	if c1 != 0 || c2 != 0 || o2 != o1+1 {
		t.Fatalf("pipelined batches: %v at %d, %v at %d", kerr.ErrorForCode(c1), o1, kerr.ErrorForCode(c2), o2)
	}
}

func TestWriteTxnMarkersHandler(t *testing.T) {
	b := newTestBroker(t)
	hook := &fakeMarkers{}
	b.opts.TxnMarkers = hook
	if res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: OffsetsTopic, Partitions: 1, ReplicationFactor: 1}}, false); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	tid := "tx"
	if code, _ := produced(roundTrip(t, b, txnProduceReq(t, &tid, "t", 11, 0, true))); code != 0 {
		t.Fatalf("produce: %v", kerr.ErrorForCode(code))
	}
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.SetVersion(1)
	for _, m := range []struct {
		pid    int64
		commit bool
		topics map[string][]int32
	}{
		{11, false, map[string][]int32{"t": {0, 1, 7}, OffsetsTopic: {0}, "missing": {0}}},
	} {
		wm := kmsg.NewWriteTxnMarkersRequestMarker()
		wm.ProducerID, wm.ProducerEpoch, wm.CoordinatorEpoch, wm.Committed = m.pid, 0, 1, m.commit
		for _, topic := range []string{"t", OffsetsTopic, "missing"} {
			mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			mt.Topic, mt.Partitions = topic, m.topics[topic]
			wm.Topics = append(wm.Topics, mt)
		}
		req.Markers = append(req.Markers, wm)
	}
	resp := roundTrip(t, b, req).(*kmsg.WriteTxnMarkersResponse)
	got := map[string]int16{}
	for _, rt := range resp.Markers[0].Topics {
		for _, rp := range rt.Partitions {
			got[rt.Topic+"/"+string(rune('0'+rp.Partition))] = rp.ErrorCode
		}
	}
	want := map[string]int16{"t/0": 0, "t/1": 0, "t/7": kerr.UnknownTopicOrPartition.Code, OffsetsTopic + "/0": 0, "missing/0": kerr.UnknownTopicOrPartition.Code}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %v, want %v", k, kerr.ErrorForCode(got[k]), kerr.ErrorForCode(w))
		}
	}
	hook.mu.Lock()
	seen := hook.seen
	hook.mu.Unlock()
	if len(seen) != 1 || seen[0] != (markerSeen{partition: 0, pid: 11, epoch: 0, commit: false, offset: 0}) {
		t.Fatalf("marker hook saw %+v, want the __consumer_offsets marker at 0", seen)
	}
	// WriteTxnMarkers v2, transaction version 2: a marker must bump the
	// epoch (KIP-890 part 2).
	v2 := kmsg.NewPtrWriteTxnMarkersRequest()
	v2.SetVersion(2)
	wm := kmsg.NewWriteTxnMarkersRequestMarker()
	wm.ProducerID, wm.ProducerEpoch, wm.CoordinatorEpoch, wm.TransactionVersion, wm.Committed = 11, 0, 1, 2, true
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = "t", []int32{0}
	wm.Topics = append(wm.Topics, mt)
	v2.Markers = append(v2.Markers, wm)
	if code := roundTrip(t, b, v2).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidProducerEpoch.Code {
		t.Fatalf("TV2 commit marker with the producer's epoch, after its abort: %v, want INVALID_PRODUCER_EPOCH", kerr.ErrorForCode(code))
	}
	// The same marker as the producer's last one (abort, epoch 0) is a
	// resend: acknowledged (it is replicated: one replica), not written
	// again.
	p, err := b.opts.Partitions.Get("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	leo := p.LogEndOffset()
	v2.Markers[0].Committed = false
	if code := roundTrip(t, b, v2).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("resent TV2 marker: %v, want success", kerr.ErrorForCode(code))
	}
	if got := p.LogEndOffset(); got != leo {
		t.Fatalf("resent marker written again: log end %d, was %d", got, leo)
	}
	// The aborted transaction is in t-0's producer state and index.
	if lso := p.LastStableOffset(); lso != 2 {
		t.Fatalf("LSO %d, want 2", lso)
	}
	dp := kmsg.NewPtrDescribeProducersRequest()
	dt := kmsg.NewDescribeProducersRequestTopic()
	dt.Topic, dt.Partitions = "t", []int32{0, 5}
	dp.Topics = append(dp.Topics, dt)
	dr := roundTrip(t, b, dp).(*kmsg.DescribeProducersResponse)
	ps := dr.Topics[0].Partitions
	if ps[1].ErrorCode != kerr.UnknownTopicOrPartition.Code || len(ps[0].ActiveProducers) != 1 {
		t.Fatalf("DescribeProducers: %+v", ps)
	}
	if ap := ps[0].ActiveProducers[0]; ap.ProducerID != 11 || ap.CoordinatorEpoch != 1 || ap.CurrentTxnStartOffset != -1 || ap.LastSequence != 0 {
		t.Fatalf("active producer %+v", ap)
	}
}
