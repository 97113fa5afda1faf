package server

import (
	"encoding/binary"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/record"
)

func recordTo(topic string, p int32, v string) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)}
}

// buildBatch builds a valid batch of n records for raw produce requests.
func buildBatch(t *testing.T, opts record.BatchOptions, ts int64, n int) []byte {
	t.Helper()
	recs := make([]record.Record, n)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Key: []byte("k"), Value: []byte("v" + strconv.Itoa(i))}
	}
	b, err := record.Build(nil, opts, ts, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produceRaw(t *testing.T, c *rawConn, version int16, topic string, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = -1
	req.TimeoutMillis = 5000
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	resp := c.roundTrip(req).(*kmsg.ProduceResponse)
	return resp.Topics[0].Partitions[0]
}

func TestProduceValidation(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": ptr("10000")}, "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.admin().CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": ptr("compact")}, "compacted"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	good := buildBatch(t, record.NewBatchOptions(record.CodecNone), now, 3)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	magic1 := append([]byte(nil), good...)
	magic1[16] = 1
	two := append(append([]byte(nil), good...), good...)
	big := buildBatchValue(t, 20000)
	nullKey, _ := record.Build(nil, record.NewBatchOptions(record.CodecNone), now, []record.Record{{Value: []byte("x")}})
	// Compressed batches whose CRC is right but whose records are not: a
	// broken gzip trailer, and a record count the payload does not hold.
	gz := buildBatch(t, record.NewBatchOptions(record.CodecGzip), now, 3)
	badPayload := append([]byte(nil), gz...)
	badPayload[len(badPayload)-1] ^= 0xff
	fixCRC(badPayload)
	badCount := append([]byte(nil), gz...)
	binary.BigEndian.PutUint32(badCount[57:], 4) // records count
	binary.BigEndian.PutUint32(badCount[23:], 3) // last offset delta
	fixCRC(badCount)
	cases := []struct {
		name  string
		topic string
		batch []byte
		want  *kerr.Error
	}{
		{"good", "v", good, nil},
		{"bad crc", "v", badCRC, kerr.CorruptMessage},
		{"old magic", "v", magic1, kerr.UnsupportedForMessageFormat},
		{"truncated", "v", good[:len(good)-5], kerr.CorruptMessage},
		{"garbage", "v", []byte("not a batch at all, just bytes"), kerr.CorruptMessage},
		{"two batches", "v", two, kerr.InvalidRecord},
		{"too large", "v", big, kerr.MessageTooLarge},
		{"unknown topic", "nope", good, kerr.UnknownTopicOrPartition},
		{"null key on compacted topic", "compacted", nullKey, kerr.InvalidRecord},
		{"gzip good", "v", gz, nil},
		{"gzip payload corrupt", "v", badPayload, kerr.CorruptMessage},
		{"gzip record count wrong", "v", badCount, kerr.CorruptMessage},
	}
	c := n.raw()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := produceRaw(t, c, 9, tc.topic, tc.batch)
			if tc.want == nil && p.ErrorCode != 0 || tc.want != nil && p.ErrorCode != tc.want.Code {
				t.Fatalf("error code %d (%v), want %v", p.ErrorCode, kerr.ErrorForCode(p.ErrorCode), tc.want)
			}
		})
	}
	// Nothing but the good batch landed, and the log still reads.
	lo, err := n.admin().ListEndOffsets(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lo.Lookup("v", 0); o.Offset != 6 {
		t.Fatalf("end offset %d after rejected batches, want 6 (two good batches of 3)", o.Offset)
	}
}

// fixCRC recomputes a batch's CRC-32C after the test edited it.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], record.ComputeCRC(b))
}

// TestInternalTopicsRefuseClientWrites: as in Kafka, clients may read
// __consumer_offsets but not Produce to it or DeleteRecords from it, and
// Metadata marks only Kafka's internal topics as internal.
func TestInternalTopicsRefuseClientWrites(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	// FindCoordinator creates __consumer_offsets; wait until it is served.
	waitFor(t, ctx, "the group coordinator", func() bool {
		for _, r := range adm.FindGroupCoordinators(ctx, "g") {
			return r.Err == nil
		}
		return false
	})
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "__not_internal"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	batch := buildBatch(t, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), 1)
	if p := produceRaw(t, c, 9, broker.OffsetsTopic, batch); p.ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to %s: error %v, want INVALID_TOPIC_EXCEPTION", broker.OffsetsTopic, kerr.ErrorForCode(p.ErrorCode))
	}
	// Not even with the client id brokers use towards each other.
	spoof := n.client(kgo.ClientID(broker.InterBrokerClientID), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := spoof.ProduceSync(ctx, &kgo.Record{Topic: broker.OffsetsTopic, Partition: 0, Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to %s as %s: %v, want INVALID_TOPIC_EXCEPTION", broker.OffsetsTopic, broker.InterBrokerClientID, err)
	}
	if p := produceRaw(t, c, 9, "__not_internal", batch); p.ErrorCode != 0 {
		t.Fatalf("produce to __not_internal: %v", kerr.ErrorForCode(p.ErrorCode))
	}
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{broker.OffsetsTopic: {0: {Topic: broker.OffsetsTopic, Partition: 0, At: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := del.Lookup(broker.OffsetsTopic, 0); !errors.Is(r.Err, kerr.InvalidTopicException) {
		t.Fatalf("DeleteRecords on %s: %v, want INVALID_TOPIC_EXCEPTION", broker.OffsetsTopic, r.Err)
	}
	md, err := adm.Metadata(ctx, broker.OffsetsTopic, "__not_internal")
	if err != nil {
		t.Fatal(err)
	}
	if !md.Topics[broker.OffsetsTopic].IsInternal || md.Topics["__not_internal"].IsInternal {
		t.Fatalf("is_internal: %s %v, __not_internal %v; want true, false", broker.OffsetsTopic,
			md.Topics[broker.OffsetsTopic].IsInternal, md.Topics["__not_internal"].IsInternal)
	}
}

// TestAcksZeroWithFsyncAlways: with log.fsync=always the high watermark
// moves once a batch is durable; records sent with acks=0 must get there
// too, though nobody waits for them.
func TestAcksZeroWithFsyncAlways(t *testing.T) {
	n := startNode(t, "", map[string]string{"log.fsync": "always"})
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, "a0"); err != nil {
		t.Fatal(err)
	}
	cl := n.client(kgo.DefaultProduceTopic("a0"), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	for i := range 10 {
		cl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "acks=0 records to become visible", func() bool {
		lo, err := n.admin().ListEndOffsets(ctx, "a0")
		if err != nil {
			return false
		}
		o, _ := lo.Lookup("a0", 0)
		return o.Offset == 10
	})
}

func buildBatchValue(t *testing.T, size int) []byte {
	b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), []record.Record{{Value: make([]byte, size)}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdempotentSequenceRules(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.Version = 4
	ir := c.roundTrip(init).(*kmsg.InitProducerIDResponse)
	if ir.ErrorCode != 0 || ir.ProducerID < 0 {
		t.Fatalf("init producer id: code %d id %d", ir.ErrorCode, ir.ProducerID)
	}
	batch := func(epoch int16, seq int32, n int) []byte {
		o := record.NewBatchOptions(record.CodecNone)
		o.ProducerID, o.ProducerEpoch, o.BaseSequence = ir.ProducerID, epoch, seq
		return buildBatch(t, o, time.Now().UnixMilli(), n)
	}
	steps := []struct {
		name       string
		batch      []byte
		want       *kerr.Error
		wantOffset int64
	}{
		{"first", batch(0, 0, 2), nil, 0},
		{"next", batch(0, 2, 2), nil, 2},
		{"duplicate of first", batch(0, 0, 2), nil, 0},
		{"duplicate of second", batch(0, 2, 2), nil, 2},
		{"gap", batch(0, 10, 1), kerr.OutOfOrderSequenceNumber, -1},
		{"continues", batch(0, 4, 1), nil, 4},
		{"new epoch must start at 0", batch(1, 5, 1), kerr.OutOfOrderSequenceNumber, -1},
		{"new epoch", batch(1, 0, 1), nil, 5},
		{"stale epoch", batch(0, 5, 1), kerr.InvalidProducerEpoch, -1},
	}
	for _, s := range steps {
		p := produceRaw(t, c, 9, "idem", s.batch)
		if s.want == nil && p.ErrorCode != 0 || s.want != nil && p.ErrorCode != s.want.Code {
			t.Fatalf("%s: error %v, want %v", s.name, kerr.ErrorForCode(p.ErrorCode), s.want)
		}
		if s.want == nil && p.BaseOffset != s.wantOffset {
			t.Fatalf("%s: base offset %d, want %d", s.name, p.BaseOffset, s.wantOffset)
		}
	}
	// Producer state survives a restart: the duplicate is still detected.
	n.restart()
	c = n.raw()
	if p := produceRaw(t, c, 9, "idem", batch(1, 0, 1)); p.ErrorCode != 0 || p.BaseOffset != 5 {
		t.Fatalf("duplicate after restart: error %v offset %d, want the original offset 5", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
	if p := produceRaw(t, c, 9, "idem", batch(1, 1, 1)); p.ErrorCode != 0 || p.BaseOffset != 6 {
		t.Fatalf("next after restart: error %v offset %d", kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
	}
}

func TestListOffsetsAndDeleteRecords(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "lo"); err != nil {
		t.Fatal(err)
	}
	cl := n.client()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		r := recordTo("lo", 0, strconv.Itoa(i))
		r.Timestamp = base.Add(time.Duration(i) * time.Second)
		if i == 7 {
			r.Timestamp = base.Add(time.Hour / 2) // the max timestamp
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string, got kadm.ListedOffsets, wantOffset int64) {
		t.Helper()
		o, ok := got.Lookup("lo", 0)
		if !ok || o.Err != nil {
			t.Fatalf("%s: %v", name, o.Err)
		}
		if o.Offset != wantOffset {
			t.Fatalf("%s: offset %d, want %d", name, o.Offset, wantOffset)
		}
	}
	start, err := adm.ListStartOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	check("earliest", start, 0)
	end, err := adm.ListEndOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	check("latest", end, 10)
	after, err := adm.ListOffsetsAfterMilli(ctx, base.Add(3500*time.Millisecond).UnixMilli(), "lo")
	if err != nil {
		t.Fatal(err)
	}
	check("by time", after, 4)
	future, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "lo")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := future.Lookup("lo", 0); o.Offset != 10 && o.Offset != -1 {
		t.Fatalf("after the last timestamp: offset %d", o.Offset)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "lo"
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Timestamp = -3
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.Offset != 7 || p.Timestamp != base.Add(time.Hour/2).UnixMilli() {
		t.Fatalf("max timestamp: offset %d ts %d, want 7", p.Offset, p.Timestamp)
	}

	// DeleteRecords moves the start; past the high watermark is refused.
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "lo", Partition: 0, At: 4})
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := dr.Lookup("lo", 0); d.Err != nil || d.LowWatermark != 4 {
		t.Fatalf("delete records: %v low watermark %d", d.Err, d.LowWatermark)
	}
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: "lo", Partition: 0, At: 11})
	dr, err = adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := dr.Lookup("lo", 0); !errors.Is(d.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("delete past the end: %v", d.Err)
	}
	n.restart()
	start, err = n.admin().ListStartOffsets(ctx, "lo")
	if err != nil {
		t.Fatal(err)
	}
	check("earliest after delete and restart", start, 4)
	// Fetching below the start is out of range; at the start works.
	cons := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"lo": {0: kgo.NewOffset().At(4)}}))
	fs := cons.PollRecords(ctx, 100)
	if errs := fs.Errors(); len(errs) > 0 {
		t.Fatal(errs[0].Err)
	}
	if rs := fs.Records(); len(rs) == 0 || rs[0].Offset != 4 || string(rs[0].Value) != "4" {
		t.Fatalf("first record after delete: %+v", rs)
	}
}

// TestLongPollWakesOnProduce checks that a fetch waiting for data returns as
// soon as a record arrives, well before max wait.
func TestLongPollWakesOnProduce(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, "lp"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxWaitMillis = 20000
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "lp"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	corr := c.send(req)
	// A second request pipelined behind the long poll is answered after it,
	// in order.
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Version = 9
	mcorr := c.send(mreq)
	time.Sleep(100 * time.Millisecond) // let the fetch start waiting; correctness does not depend on it
	start := time.Now()
	if err := n.client().ProduceSync(ctx, recordTo("lp", 0, "wake")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	got, body, err := c.readResponse(false)
	if err != nil {
		t.Fatal(err)
	}
	if got != corr {
		t.Fatalf("first response has correlation id %d, want the fetch's %d", got, corr)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("fetch answered after %v: not woken by the produce", waited)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if recs := resp.Topics[0].Partitions[0].RecordBatches; len(recs) == 0 {
		t.Fatal("woken fetch carried no records")
	}
	if got, _, err := c.readResponse(true); err != nil || got != mcorr {
		t.Fatalf("pipelined metadata response: corr %d err %v", got, err)
	}
}
