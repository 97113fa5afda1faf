package storage

import (
	"fmt"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// benchBatch builds a ~16 KiB batch of records with recSize-byte values.
func benchBatch(b *testing.B, recSize int) []byte {
	n := 16 << 10 / recSize
	recs := make([]record.Record, n)
	val := make([]byte, recSize)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: val}
	}
	batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), 1, recs)
	if err != nil {
		b.Fatal(err)
	}
	return batch
}

func benchLog(b *testing.B) *Log {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 64 << 20
	l, err := Open(b.TempDir(), cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func BenchmarkAppend(b *testing.B) {
	for _, recSize := range []int{1024, 100} {
		b.Run(fmt.Sprintf("record=%dB", recSize), func(b *testing.B) {
			batch := benchBatch(b, recSize)
			l := benchLog(b)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				// Append only rewrites header fields outside the CRC, so
				// the same buffer can be appended again.
				if _, err := l.Append(batch, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead measures finding 1 MiB of batches from a random offset:
// index lookup and header scan, not copying the data (the broker sends the
// regions with sendfile).
func BenchmarkRead(b *testing.B) {
	batch := benchBatch(b, 1024)
	l := benchLog(b)
	for range 8192 { // 128 MiB, two segments
		if _, err := l.Append(batch, 0); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	b.ResetTimer()
	var total int64
	i := int64(0)
	for b.Loop() {
		i = (i + 7919) % leo
		res, err := l.Read(i, leo, 1<<20, true)
		if err != nil {
			b.Fatal(err)
		}
		total += res.Size
		res.Release()
	}
	b.SetBytes(total / int64(max(b.N, 1)))
}
