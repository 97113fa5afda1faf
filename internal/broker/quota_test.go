package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quota"
	"github.com/stratalog/strata/internal/quota/quotatest"
	"github.com/stratalog/strata/internal/record"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Unix(1_700_000_000, 0).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time            { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration)       { c.ns.Add(int64(d)) }
func (c *fakeClock) nowFunc() func() time.Time { return c.Now }

func setQuota(t *testing.T, b *Broker, parts []quota.EntityPart, key string, value float64) {
	t.Helper()
	if errs := b.opts.Controller.AlterClientQuotas([]controller.QuotaAlteration{{Entity: parts, Ops: []controller.QuotaOp{{Key: key, Value: value}}}}, false); errs[0] != nil {
		t.Fatal(errs[0])
	}
}

func clientEntity(id string) []quota.EntityPart {
	return []quota.EntityPart{{Type: quota.TypeClientID, Name: &id}}
}

// servedBroker serves a test broker on a loopback listener, its metadata
// pointing clients there.
func servedBroker(t *testing.T, o testBrokerOptions) (*Broker, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // in-process: no other process is told this port
	if err != nil {
		t.Fatal(err)
	}
	o.port = int32(ln.Addr().(*net.TCPAddr).Port)
	b := newTestBrokerWith(t, o)
	srv := network.New(network.Config{}, b)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Stop()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return b, ln.Addr().String()
}

// throttleRecorder pairs a franz-go producer's produce requests with the
// throttle times of their responses (one request in flight), and moves
// the broker's clock on by each throttle time: a producer that takes no
// time of its own and waits exactly what it is told.
type throttleRecorder struct {
	clock *fakeClock
	mu    sync.Mutex
	ex    []quotatest.Exchange
	total time.Duration
}

func (r *throttleRecorder) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, bytes int, _, _ time.Duration, err error) {
	if key != 0 || err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ex = append(r.ex, quotatest.Exchange{Bytes: float64(bytes - 4)}) // the broker counts what follows the size
}

func (r *throttleRecorder) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.ex); n > 0 {
		r.ex[n-1].Throttle = d
	}
	r.total += d
	r.clock.Add(d)
}

func (r *throttleRecorder) throttled() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// TestProducerHeldToQuota: a franz-go producer with a producer_byte_rate
// quota on its client id is held to that rate (±10%), measured from the
// throttle times the broker answers with, never the wall clock: the
// broker's clock moves only by those throttle times. Its connection is
// muted meanwhile, and another client id is not throttled.
func TestProducerHeldToQuota(t *testing.T) {
	const rate = 200 << 10 // bytes per second
	const value = 40 << 10 // one record per request: throttled about 200 ms each
	const run = 4 * time.Second
	clock := newFakeClock()
	b, addr := servedBroker(t, testBrokerOptions{now: clock.nowFunc(),
		overrides: map[string]string{"quota.window.num": "2", "quota.window.size.seconds": "1"}})
	setQuota(t, b, clientEntity("quota-producer"), quota.ProducerByteRate, rate)

	rec := &throttleRecorder{clock: clock}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("quota-producer"), kgo.WithHooks(rec),
		kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxProduceRequestsInflightPerBroker(1),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	payload := make([]byte, value)
	_, _ = rand.Read(payload)
	for rec.throttled() < time.Second+run {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rec.mu.Lock()
	got, ok := quotatest.HeldRate(rec.ex, time.Second)
	n := len(rec.ex)
	// During the first second on the broker's clock every throttle is
	// Kafka's formula exactly: the window is the time since the first
	// record plus the whole windows missing from its minimum (one, of
	// 1 s), and the producer must wait until the bytes it sent are the
	// quota's for the window: sent/rate - (elapsed + 1 s).
	var sent float64
	var elapsed time.Duration
	checked := 0
	for _, x := range rec.ex {
		if elapsed >= time.Second {
			break
		}
		sent += x.Bytes
		want := time.Duration(max(math.Round(sent/rate*1000-float64(elapsed.Milliseconds())-1000), 0)) * time.Millisecond
		if x.Throttle != want {
			t.Errorf("throttle %v after %.0f bytes at %v, want %v", x.Throttle, sent, elapsed, want)
		}
		elapsed += x.Throttle
		checked++
	}
	rec.mu.Unlock()
	if checked < 5 {
		t.Errorf("only %d requests in the first second", checked)
	}
	if !ok {
		t.Fatalf("no measurement from %d requests", n)
	}
	t.Logf("held to %.0f B/s against %d over %d requests (%+.1f%%)", got, rate, n, (got-rate)/rate*100)
	if dev := math.Abs(got-rate) / rate; dev > 0.10 {
		t.Fatalf("producer held to %.0f B/s, quota %d: %.1f%% off", got, rate, dev*100)
	}

	// Another client id has no quota: never throttled.
	free := &throttleRecorder{clock: newFakeClock()}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ClientID("free"), kgo.WithHooks(free), kgo.DefaultProduceTopic("t"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	for range 20 {
		if err := cl2.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if free.throttled() != 0 {
		t.Fatalf("a client without a quota was throttled for %v", free.throttled())
	}
}

// TestFetchQuota: a consumer over its consumer_byte_rate is answered at
// once without records, with the throttle time, and muted; its fetches
// are bounded by what the quota allows in a window; once the throttle
// time has passed, it reads again.
func TestFetchQuota(t *testing.T) {
	clock := newFakeClock()
	b := newTestBrokerWith(t, testBrokerOptions{now: clock.nowFunc(),
		overrides: map[string]string{"quota.window.num": "2", "quota.window.size.seconds": "1"}})
	conn := aliceConn()
	payload := make([]byte, 4000)
	for range 10 {
		if code := produceOne(t, b, conn, "t", 0, payload); code != 0 {
			t.Fatalf("produce: error %d", code)
		}
	}
	setQuota(t, b, clientEntity("reader"), quota.ConsumerByteRate, 10000)
	fetch := func() *kmsg.FetchResponse {
		t.Helper()
		req := v(kmsg.NewPtrFetchRequest(), 12)
		req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, FetchOffset: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}
		resp, err := serveAsClient(t, b, conn, "reader", req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.FetchResponse)
	}
	recordBytes := func(r *kmsg.FetchResponse) int {
		n := 0
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				n += len(p.RecordBatches)
			}
		}
		return n
	}
	// The window allows (2-1) * 1 s * 10000 B: the fetch is cut to that
	// (whole batches, at least one), not the 40 kB there are.
	first := fetch()
	if n := recordBytes(first); n == 0 || n > 10000+4200 || first.ThrottleMillis != 0 {
		t.Fatalf("first fetch: %d record bytes, throttle %d ms; want at most a window's worth, unthrottled", n, first.ThrottleMillis)
	}
	second := fetch()
	if n := recordBytes(second); n != 0 || second.ThrottleMillis <= 0 {
		t.Fatalf("second fetch: %d record bytes, throttle %d ms; want none and a throttle", n, second.ThrottleMillis)
	}
	if conn.MutedFor() <= 0 {
		t.Fatal("the throttled consumer's connection is not muted")
	}
	clock.Add(time.Duration(second.ThrottleMillis) * time.Millisecond)
	if third := fetch(); recordBytes(third) == 0 || third.ThrottleMillis != 0 {
		t.Fatalf("after the throttle: %d record bytes, throttle %d ms", recordBytes(third), third.ThrottleMillis)
	}
}

// TestRequestPercentageQuota: request_percentage counts handler time; a
// client that used more than its share gets throttle_time_ms (bounded by
// one window) and a muted connection.
func TestRequestPercentageQuota(t *testing.T) {
	clock := newFakeClock()
	// Every reading of the clock moves it 10 ms: each request costs
	// handler time on the fake clock.
	tick := func() time.Time { clock.Add(10 * time.Millisecond); return clock.Now() }
	b := newTestBrokerWith(t, testBrokerOptions{now: tick})
	conn := aliceConn()
	if code := produceOne(t, b, conn, "t", 0, []byte("v")); code != 0 {
		t.Fatalf("produce: error %d", code)
	}
	setQuota(t, b, clientEntity("busy"), quota.RequestPercentage, 1)
	var throttle int32
	for i := 0; i < 100 && throttle == 0; i++ {
		resp, err := serveAsClient(t, b, conn, "busy", v(kmsg.NewPtrMetadataRequest(), 12))
		if err != nil {
			t.Fatal(err)
		}
		throttle = resp.(*kmsg.MetadataResponse).ThrottleMillis
	}
	if throttle <= 0 || throttle > 1000 {
		t.Fatalf("throttle %d ms after 100 requests at 1%%; want some, at most the 1 s window", throttle)
	}
	if conn.MutedFor() <= 0 {
		t.Fatal("not muted")
	}
	// A consumer fetch throttled for its request time gets no records, as
	// in Kafka.
	req := v(kmsg.NewPtrFetchRequest(), 12)
	req.ReplicaID, req.MaxBytes, req.SessionEpoch = -1, 1<<20, -1
	req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}
	resp, err := serveAsClient(t, b, conn, "busy", req)
	if err != nil {
		t.Fatal(err)
	}
	if fr := resp.(*kmsg.FetchResponse); fr.ThrottleMillis <= 0 || len(fr.Topics) != 0 {
		t.Fatalf("throttled fetch: throttle %d ms, %d topics; want a throttle and no records", fr.ThrottleMillis, len(fr.Topics))
	}
	// Another client fetches the record.
	resp, err = serveAsClient(t, b, conn, "other", req)
	if err != nil {
		t.Fatal(err)
	}
	if fr := resp.(*kmsg.FetchResponse); fr.ThrottleMillis != 0 || len(fr.Topics) != 1 || len(fr.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("unthrottled fetch: %+v", fr)
	}
}

// TestNoQuotaNoAllocation: with no quota set, the quota checks of a
// request allocate nothing.
func TestQuotaCheckNoAllocation(t *testing.T) {
	b := newTestBroker(t)
	req := v(kmsg.NewPtrProduceRequest(), 9)
	r := &request{conn: aliceConn(), key: 0, version: 9, clientID: "app", body: req, raw: &network.Request{Data: make([]byte, 100)}}
	h := b.handlers[0]
	b.refreshQuotas()
	if n := testing.AllocsPerRun(1000, func() {
		if b.quotaBefore(r, h) {
			b.quotaAfter(r, time.Now())
		}
	}); n != 0 {
		t.Fatalf("%v allocations per request without quotas", n)
	}
}

// serveAsClient serves req for conn with clientID in the request header
// and decodes the response, reading file regions (fetched records) too.
func serveAsClient(t *testing.T, b *Broker, conn *network.ConnInfo, clientID string, req kmsg.Request) (kmsg.Response, error) {
	t.Helper()
	rec := newRecorder()
	b.Serve(context.Background(), &network.Request{Conn: conn, Data: frameForClient(req, 7, clientID)}, rec)
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no response", kmsg.NameForKey(req.Key()))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.resp == nil {
		return nil, rec.closed
	}
	var buf []byte
	for _, c := range rec.resp.Chunks {
		if c.File == nil {
			buf = append(buf, c.Bytes...)
			continue
		}
		region := make([]byte, c.Len)
		if _, err := c.File.ReadAt(region, c.Offset); err != nil {
			t.Fatal(err)
		}
		buf = append(buf, region...)
	}
	if rec.resp.Release != nil {
		rec.resp.Release()
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body := buf[4:]
	if resp.IsFlexible() {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// frameForClient encodes a request with clientID in its header.
func frameForClient(req kmsg.Request, corr int32, clientID string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(clientID)))
	b = append(b, clientID...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

// produceOne appends one batch with value to topic/partition, acks=1.
func produceOne(t *testing.T, b *Broker, conn *network.ConnInfo, topic string, partition int32, value []byte) int16 {
	t.Helper()
	batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), []record.Record{{Value: value}})
	if err != nil {
		t.Fatal(err)
	}
	req := v(kmsg.NewPtrProduceRequest(), 9)
	req.Acks, req.TimeoutMillis = 1, 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: partition, Records: batch}}}}
	resp, err := serveAsClient(t, b, conn, "writer", req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

// TestQuotaExemptions: the brokers' client id does not lift a produce
// quota (only relayed admin requests are exempt), and a replica fetch is
// never throttled by a consumer quota.
func TestQuotaExemptions(t *testing.T) {
	clock := newFakeClock()
	b := newTestBrokerWith(t, testBrokerOptions{now: clock.nowFunc(),
		overrides: map[string]string{"quota.window.num": "2", "quota.window.size.seconds": "1"}})
	conn := aliceConn()
	if code := produceOne(t, b, conn, "t", 0, make([]byte, 1000)); code != 0 {
		t.Fatalf("produce: error %d", code)
	}
	setQuota(t, b, []quota.EntityPart{{Type: quota.TypeClientID}}, quota.ProducerByteRate, 10)
	setQuota(t, b, []quota.EntityPart{{Type: quota.TypeClientID}}, quota.ConsumerByteRate, 10)
	batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), clock.Now().UnixMilli(), []record.Record{{Value: make([]byte, 1000)}})
	if err != nil {
		t.Fatal(err)
	}
	produce := v(kmsg.NewPtrProduceRequest(), 9)
	produce.Acks, produce.TimeoutMillis = 1, 5000
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	resp, err := serveAsClient(t, b, conn, InterBrokerClientID, produce)
	if err != nil {
		t.Fatal(err)
	}
	if pr := resp.(*kmsg.ProduceResponse); pr.ThrottleMillis <= 0 {
		t.Fatal("a producer claiming the brokers' client id escaped its quota")
	}
	fetch := v(kmsg.NewPtrFetchRequest(), 12)
	fetch.ReplicaID, fetch.MaxBytes, fetch.SessionEpoch = 2, 1<<20, -1
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LogStartOffset: -1}}}}
	for range 3 {
		resp, err = serveAsClient(t, b, conn, "replica", fetch)
		if err != nil {
			t.Fatal(err)
		}
		fr := resp.(*kmsg.FetchResponse)
		if fr.ThrottleMillis != 0 || len(fr.Topics) != 1 || len(fr.Topics[0].Partitions[0].RecordBatches) < 2000 {
			t.Fatalf("replica fetch: throttle %d ms, %+v", fr.ThrottleMillis, fr.Topics)
		}
	}
}
