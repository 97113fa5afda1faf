package record

import (
	"bytes"
	"fmt"
	"testing"
)

// benchBatch builds a batch of about size bytes of 1 KiB records.
func benchBatch(b *testing.B, c Codec, size int) []byte {
	return benchBatchOf(b, c, size, 1024)
}

// benchBatchOf builds a batch of about size bytes of records with values of
// valueSize bytes.
func benchBatchOf(b *testing.B, c Codec, size, valueSize int) []byte {
	value := bytes.Repeat([]byte("v"), valueSize)
	recs := make([]Record, size/(len(value)+16))
	for i := range recs {
		recs[i] = Record{OffsetDelta: int32(i), TimestampDelta: int64(i), Key: fmt.Appendf(nil, "k%d", i), Value: value}
	}
	return mustBuild(b, NewBatchOptions(c), 0, recs)
}

func BenchmarkValidate1MiB(b *testing.B) {
	batch := benchBatch(b, CodecNone, 1<<20)
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := Validate(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateRecords1MiB(b *testing.B) {
	for _, size := range []int{1024, 100} {
		b.Run(fmt.Sprintf("value=%dB", size), func(b *testing.B) {
			batch := benchBatchOf(b, CodecNone, 1<<20, size)
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ValidateRecords(batch, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkForEach(b *testing.B) {
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			batch := benchBatch(b, c, 1<<20)
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				if err := ForEach(batch, func(*Record) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	value := bytes.Repeat([]byte("benchmark value "), 64)
	recs := make([]Record, 1000)
	for i := range recs {
		recs[i] = Record{OffsetDelta: int32(i), Key: []byte("key"), Value: value}
	}
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(recs) * len(value)))
			b.ReportAllocs()
			var dst []byte
			for b.Loop() {
				var err error
				if dst, err = Build(dst[:0], NewBatchOptions(c), 0, recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
