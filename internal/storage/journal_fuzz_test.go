package storage

import (
	"bytes"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// FuzzParseFrame: a journal file is read back after a crash, torn or
// damaged anywhere. parseFrame never panics, never claims more bytes than
// it was given, returns a batch frame only with one whole batch whose own
// CRC holds, and what it accepts is exactly what appendFrame writes for
// the same contents (so a damaged frame is never taken for a whole one
// with other contents).
func FuzzParseFrame(f *testing.F) {
	batch := makeBatch(f, batchSpec{n: 3, size: 20, ts: 7})
	record.SetBaseOffset(batch, 42)
	for _, kind := range []byte{frameKindBatch, frameKindBatchHead} {
		fr := appendFrame(nil, kind, [16]byte{9}, "topic-3", batch)
		f.Add(fr)
		f.Add(fr[:len(fr)-1])
		f.Add(append(fr, appendFrame(nil, frameKindBarrier, [16]byte{9}, "topic-3", nil)...))
	}
	f.Add(appendFrame(nil, frameKindBarrier, [16]byte{1}, "a-0", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, id, name, payload, n, err := parseFrame(b)
		if err != nil {
			return
		}
		if n < frameFixed || n > len(b) {
			t.Fatalf("frame of %d bytes out of %d", n, len(b))
		}
		written := b[8] // the kind as written; parseFrame reports both batch kinds as frameKindBatch
		if kind == frameKindBatch {
			h, err := record.ParseHeader(payload)
			if err != nil || h.Size() != len(payload) {
				t.Fatalf("batch frame without one whole batch: %v", err)
			}
			if written == frameKindBatchHead && record.ComputeCRC(payload) != h.CRC {
				t.Fatal("batch frame whose batch CRC does not hold")
			}
		}
		if again := appendFrame(nil, written, id, name, payload); !bytes.Equal(again, b[:n]) {
			t.Fatalf("accepted frame differs from what appendFrame writes for its contents (kind %d, name %q)", written, name)
		}
	})
}
