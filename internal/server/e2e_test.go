package server

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestProduceConsumeEveryCodecAcrossRestart produces a million records (fewer
// under the race detector) over 8 partitions with idempotent producers, a
// fifth with each compression codec, restarts the broker, and checks that
// every record comes back exactly once, in order per partition, at
// contiguous offsets.
func TestProduceConsumeEveryCodecAcrossRestart(t *testing.T) {
	total := 1_000_000
	if raceEnabled || testing.Short() {
		total = 100_000
	}
	const partitions = 8
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, partitions, 1, nil, "e2e"); err != nil {
		t.Fatal(err)
	}
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	}
	per := total / len(codecs)
	pad := bytes.Repeat([]byte("strata "), 8)
	start := time.Now()
	for _, c := range codecs {
		cl := n.client(kgo.ProducerBatchCompression(c.codec), kgo.DefaultProduceTopic("e2e"),
			kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))
		var failed atomic.Int64
		var firstErr atomic.Value
		for i := range per {
			v := make([]byte, 0, 96)
			v = append(v, c.name...)
			v = append(v, '|')
			v = strconv.AppendInt(v, int64(i), 10)
			v = append(v, '|')
			v = append(v, pad...)
			r := &kgo.Record{Key: strconv.AppendInt(nil, int64(i%997), 10), Value: v}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			})
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if f := failed.Load(); f > 0 {
			t.Fatalf("%s: %d records failed, first: %v", c.name, f, firstErr.Load())
		}
		cl.Close()
	}
	t.Logf("produced %d records in %v", per*len(codecs), time.Since(start))

	n.restart()

	offsets := map[int32]int64{}
	for p := range int32(partitions) {
		offsets[p] = 0
	}
	cl := n.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"e2e": offsetsAt(partitions, kgo.NewOffset().AtStart())}),
		kgo.FetchMaxWait(200*time.Millisecond))
	// last[partition][codec] is the last sequence seen.
	last := map[int32]map[string]int64{}
	seen := map[string]int{}
	got := 0
	for got < per*len(codecs) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("timed out after %d of %d records", got, per*len(codecs))
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Offset != offsets[r.Partition] {
				t.Fatalf("partition %d: offset %d, want %d (gap or repeat)", r.Partition, r.Offset, offsets[r.Partition])
			}
			offsets[r.Partition]++
			parts := bytes.SplitN(r.Value, []byte("|"), 3)
			codec := string(parts[0])
			seq, err := strconv.ParseInt(string(parts[1]), 10, 64)
			if err != nil || !bytes.Equal(parts[2], pad) {
				t.Fatalf("corrupt value %q", r.Value)
			}
			if want := strconv.Itoa(int(seq % 997)); string(r.Key) != want {
				t.Fatalf("key %q, want %q", r.Key, want)
			}
			if last[r.Partition] == nil {
				last[r.Partition] = map[string]int64{}
			}
			if prev, ok := last[r.Partition][codec]; ok && seq <= prev {
				t.Fatalf("partition %d codec %s: seq %d after %d (out of order)", r.Partition, codec, seq, prev)
			}
			last[r.Partition][codec] = seq
			id := codec + "|" + string(parts[1])
			seen[id]++
			if seen[id] > 1 {
				t.Fatalf("record %s seen twice", id)
			}
		})
	}
	if len(seen) != per*len(codecs) {
		t.Fatalf("saw %d distinct records, want %d", len(seen), per*len(codecs))
	}
	// Nothing beyond what was produced.
	lo, err := n.admin().ListEndOffsets(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	lo.Each(func(o kadm.ListedOffset) { end += o.Offset })
	if end != int64(per*len(codecs)) {
		t.Fatalf("end offsets sum to %d, want %d", end, per*len(codecs))
	}
	t.Logf("verified %d records across restart in %v", got, time.Since(start))
}

func offsetsAt(n int, o kgo.Offset) map[int32]kgo.Offset {
	m := map[int32]kgo.Offset{}
	for p := range int32(n) {
		m[p] = o
	}
	return m
}
