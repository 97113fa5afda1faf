package storage

import (
	"fmt"
	"os"
	"path/filepath"
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

// BenchmarkAppendManyLogs appends small batches (4 records of 200 B, as
// the many-partitions benchmark's generator sends) round-robin over many
// journaled logs, one journal Sync per 1,000 batches (a produce request of
// 1,000 partitions): the per-batch cost of the journaled append path when
// each log is cold in the CPU's cache (issue 14). The data dir is
// STRATA_BENCH_DIR if set, else a temporary directory.
func BenchmarkAppendManyLogs(b *testing.B) {
	recs := make([]record.Record, 4)
	for i := range recs {
		recs[i] = record.Record{OffsetDelta: int32(i), Value: make([]byte, 200)}
	}
	batch, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), 1, recs)
	if err != nil {
		b.Fatal(err)
	}
	// writes=none replaces the segments' and the journal's writes with
	// nothing (FileIO), leaving the CPU cost of the append path itself.
	discard := &FileIO{WriteAt: func(_ *os.File, p []byte, _ int64) (int, error) { return len(p), nil }}
	for _, c := range []struct {
		logs int
		io   *FileIO
	}{{1000, nil}, {10000, nil}, {1000, discard}, {10000, discard}} {
		n, io := c.logs, c.io
		name := fmt.Sprintf("logs=%d/writes=file", n)
		if io != nil {
			name = fmt.Sprintf("logs=%d/writes=none", n)
		}
		b.Run(name, func(b *testing.B) {
			data := b.TempDir()
			if d := os.Getenv("STRATA_BENCH_DIR"); d != "" {
				var err error
				if data, err = os.MkdirTemp(d, "bench"); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(data) })
			}
			j, err := OpenJournal(data, JournalOptions{IO: io})
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultConfig()
			logs := make([]*Log, n)
			for i := range logs {
				dir := filepath.Join(data, fmt.Sprintf("t%d-%d", i/100, i%100))
				if logs[i], err = Open(dir, cfg, Options{Journal: j, Lazy: true, IO: io, TopicID: [16]byte{byte(i / 100)}}); err != nil {
					b.Fatal(err)
				}
			}
			b.Cleanup(func() {
				for _, l := range logs {
					l.Close()
				}
				j.Close()
			})
			// One batch per log first: the logs' directories and segments
			// exist before the timing starts.
			for _, l := range logs {
				if _, err := l.AppendJournaled(batch, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := logs[i%n].AppendJournaled(batch, 0); err != nil {
					b.Fatal(err)
				}
				if i++; i%1000 == 0 {
					if err := j.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
