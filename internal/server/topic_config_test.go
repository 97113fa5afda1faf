package server

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

// fetchRawBatches fetches a partition from offset 0 and returns the record
// batches exactly as the broker sent them.
func fetchRawBatches(t *testing.T, n *testNode, topic string) [][]byte {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.Version = 11
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	resp := n.raw().roundTrip(req).(*kmsg.FetchResponse)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch %s: error %d", topic, p.ErrorCode)
	}
	var out [][]byte
	if err := record.Split(p.RecordBatches, func(b []byte) error {
		out = append(out, append([]byte(nil), b...))
		return nil
	}); err != nil {
		t.Fatalf("fetched batches: %v", err)
	}
	return out
}

func TestCompressionTypeRecompresses(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	cases := []struct {
		topicCodec string
		sent       kgo.CompressionCodec
		want       record.Codec
	}{
		{"zstd", kgo.NoCompression(), record.CodecZstd},
		{"uncompressed", kgo.GzipCompression(), record.CodecNone},
		{"lz4", kgo.SnappyCompression(), record.CodecLZ4},
		{"producer", kgo.SnappyCompression(), record.CodecSnappy},
	}
	for _, c := range cases {
		t.Run(c.topicCodec, func(t *testing.T) {
			topic := "comp-" + c.topicCodec
			if _, err := n.admin().CreateTopic(ctx, 1, 1, map[string]*string{"compression.type": ptr(c.topicCodec)}, topic); err != nil {
				t.Fatal(err)
			}
			cl := n.client(kgo.ProducerBatchCompression(c.sent), kgo.DefaultProduceTopic(topic))
			var recs []*kgo.Record
			for i := range 50 {
				recs = append(recs, &kgo.Record{Key: []byte("k"), Value: []byte("value " + strconv.Itoa(i) + " compressible compressible compressible")})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			batches := fetchRawBatches(t, n, topic)
			if len(batches) == 0 {
				t.Fatal("no batches")
			}
			count := 0
			for _, b := range batches {
				h, err := record.Validate(b)
				if err != nil {
					t.Fatalf("stored batch invalid: %v", err)
				}
				if h.Codec() != c.want {
					t.Fatalf("stored with %v, want %v", h.Codec(), c.want)
				}
				if err := record.ForEach(b, func(r *record.Record) error {
					if want := "value " + strconv.Itoa(count) + " compressible compressible compressible"; string(r.Value) != want {
						t.Fatalf("record %d = %q, want %q", count, r.Value, want)
					}
					count++
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			if count != 50 {
				t.Fatalf("%d records, want 50", count)
			}
		})
	}
}

func TestLogAppendTime(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 1, 1, map[string]*string{"message.timestamp.type": ptr("LogAppendTime")}, "lat"); err != nil {
		t.Fatal(err)
	}
	cl := n.client()
	old := time.Now().Add(-48 * time.Hour)
	r := &kgo.Record{Topic: "lat", Value: []byte("x"), Timestamp: old}
	before := time.Now().Add(-time.Second)
	res := cl.ProduceSync(ctx, r)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	b := fetchRawBatches(t, n, "lat")[0]
	h, err := record.Validate(b)
	if err != nil {
		t.Fatalf("batch after LogAppendTime rewrite: %v", err)
	}
	if !h.IsLogAppendTime() || time.UnixMilli(h.MaxTimestamp).Before(before) {
		t.Fatalf("timestamp type log-append %v, max timestamp %v (sent %v)", h.IsLogAppendTime(), time.UnixMilli(h.MaxTimestamp), old)
	}
	cons := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"lat": {0: kgo.NewOffset().AtStart()}}))
	recs := cons.PollRecords(ctx, 1).Records()
	if len(recs) != 1 || recs[0].Timestamp.Before(before) {
		t.Fatalf("consumer sees timestamp %v, want the broker's append time", recs)
	}
}

// TestRetentionBySizeAndTime runs the broker's own maintenance loop with a
// short check interval and waits for it to delete old segments.
func TestRetentionBySizeAndTime(t *testing.T) {
	n := startNode(t, "", map[string]string{"log.retention.check.interval.ms": "50"})
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"segment.bytes":   ptr("4096"),
		"retention.bytes": ptr("8192"),
	}, "bysize"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{
		"segment.bytes": ptr("4096"),
		"retention.ms":  ptr("3600000"),
	}, "bytime"); err != nil {
		t.Fatal(err)
	}
	// Uncompressed, one record per batch: about 570 bytes a batch, seven
	// batches a segment, so the sizes below are predictable.
	cl := n.client(kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := make([]byte, 500)
	old := time.Now().Add(-2 * time.Hour)
	for i := range 100 {
		if err := cl.ProduceSync(ctx,
			&kgo.Record{Topic: "bysize", Value: value},
			&kgo.Record{Topic: "bytime", Value: value, Timestamp: old.Add(time.Duration(i) * time.Millisecond)},
		).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// New records keep the active segment of "bytime" young.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "bytime", Value: value}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// Retention may already have run while the records were written; wait
	// for the pass that follows the last write.
	waitFor(t, ctx, "retention to trim both topics", func() bool {
		start, err := adm.ListStartOffsets(ctx, "bysize", "bytime")
		if err != nil {
			return false
		}
		s1, _ := start.Lookup("bysize", 0)
		s2, _ := start.Lookup("bytime", 0)
		// bysize keeps at most retention.bytes plus the segment that
		// would take it below; bytime keeps only the segment holding the
		// fresh record (the last of the old ones share it).
		size := logDirSize(ctx, adm, "bysize")
		return s1.Offset > 0 && size > 0 && size <= 8192+4096 && s2.Offset >= 90
	})
	// The remaining records are still readable from the new start.
	start, _ := adm.ListStartOffsets(ctx, "bysize")
	s, _ := start.Lookup("bysize", 0)
	cons := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"bysize": {0: kgo.NewOffset().AtStart()}}))
	recs := cons.PollRecords(ctx, 1).Records()
	if len(recs) != 1 || recs[0].Offset != s.Offset {
		t.Fatalf("first record after retention: %+v, want offset %d", recs, s.Offset)
	}
}

// logDirSize returns the on-disk size of a one-partition topic as
// DescribeLogDirs reports it, or -1 if it cannot be had (yet).
func logDirSize(ctx context.Context, adm *kadm.Client, topic string) int64 {
	ld, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return -1
	}
	var size int64 = -1
	ld.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic {
				size = p.Size
			}
		})
	})
	return size
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
