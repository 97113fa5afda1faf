package main

import (
	"context"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestRawBatchIsValid decodes a raw batch with kmsg: the header fields, the
// CRC (Castagnoli over attributes..end) and every record.
func TestRawBatchIsValid(t *testing.T) {
	value := recordValue(200)
	b := rawBatch(5, value, 1234)
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatal(err)
	}
	if int(rb.Length) != len(b)-12 || rb.Magic != 2 || rb.NumRecords != 5 || rb.LastOffsetDelta != 4 || rb.ProducerID != -1 || rb.FirstSequence != -1 || rb.FirstTimestamp != 1234 {
		t.Fatalf("batch header %+v", rb)
	}
	if want := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(rb.CRC) != want {
		t.Fatalf("crc %x, want %x", uint32(rb.CRC), want)
	}
	recs := rb.Records
	for i := range 5 {
		var r kmsg.Record
		if err := r.ReadFrom(recs); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.OffsetDelta != int32(i) || r.Key != nil || string(r.Value) != string(value) {
			t.Fatalf("record %d: offset delta %d key %q value %d bytes", i, r.OffsetDelta, r.Key, len(r.Value))
		}
		recs = recs[int(r.Length)+varintLen(int64(r.Length)):]
	}
	if len(recs) != 0 {
		t.Fatalf("%d bytes after the records", len(recs))
	}
}

func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func testBroker(t *testing.T, opts ...kfake.Opt) *broker {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// No process: cpu() and the like read /proc/0 and give 0.
	return &broker{addr: c.ListenAddrs()[0]}
}

func testOptions() options {
	return options{recordSize: 100, raw: rawOptions{conns: 2, inflight: 3, partsPerReq: 4, acks: -1, maxVersion: 12}}
}

// TestRawProduceCountsAndVerify runs the generator against kfake: every
// acknowledged record is counted, and verifyRaw finds them all stored.
func TestRawProduceCountsAndVerify(t *testing.T) {
	topics := []string{"t000", "t001", "t002"}
	b := testBroker(t, kfake.SeedTopics(5, topics...))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, acks := range []int16{-1, 1} {
		o := testOptions()
		o.raw.acks = acks
		c := newCounts(len(topics), 5)
		p, err := rawProduce(ctx, b, o, topics, 5, 300_000, 3, "", c)
		if err != nil {
			t.Fatalf("acks %d: %v", acks, err)
		}
		// 15 partitions, 4 per request: 4 requests a sweep, 3 x 100 B
		// records per batch, 4,500 B a sweep.
		var sum int64
		for ti := range topics {
			for p := range 5 {
				n := c.n[ti][p].Load()
				if n == 0 || n%3 != 0 {
					t.Fatalf("acks %d: %s/%d has %d records", acks, topics[ti], p, n)
				}
				sum += n
			}
		}
		// n counts the warm-up sweep; a request count is rounded down.
		if want := int64(300_000 / 100); sum < want-15*3 || sum > want+15*3 {
			t.Fatalf("acks %d: %d records acknowledged, want about %d", acks, sum, want)
		}
		if p.MBps <= 0 || !strings.Contains(p.Note, "acks="+map[int16]string{-1: "-1", 1: "1"}[acks]) {
			t.Fatalf("acks %d: phase %+v", acks, p)
		}
		if acks == -1 {
			v, err := verifyRaw(ctx, b, o, topics, 5, 7, c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(v.Note, "7 partitions read back") {
				t.Fatalf("verify: %+v", v)
			}
			// A count the broker does not have fails the verification.
			c.n[1][2].Add(1)
			if _, err := verifyRaw(ctx, b, o, topics, 5, 7, c); err == nil || !strings.Contains(err.Error(), "t001-2") {
				t.Fatalf("verify with a wrong count: %v", err)
			}
			// (Verified on the first round only: the acks=1 round
			// starts its counts at 0 on the same topics.)
		}
	}
}

// TestRawProduceFailsOnErrorCode: a partition's error in a response ends
// the run with that error (here the topic does not exist).
func TestRawProduceFailsOnErrorCode(t *testing.T) {
	b := testBroker(t, kfake.SeedTopics(2, "t000"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topics := []string{"t000", "missing"}
	_, err := rawProduce(ctx, b, testOptions(), topics, 2, 100_000, 2, "", newCounts(2, 2))
	if err == nil || !strings.Contains(err.Error(), "UNKNOWN_TOPIC_OR_PARTITION") || !strings.Contains(err.Error(), "missing/") {
		t.Fatalf("produce to a missing topic: %v", err)
	}
	// A partition beyond the topic's: the same.
	_, err = rawProduce(ctx, b, testOptions(), topics[:1], 3, 100_000, 2, "", newCounts(1, 3))
	if err == nil || !strings.Contains(err.Error(), "t000/2") {
		t.Fatalf("produce to a missing partition: %v", err)
	}
}
