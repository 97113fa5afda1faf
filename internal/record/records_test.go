package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawBatch wraps already-encoded records in an uncompressed batch header with
// the given counts and a correct CRC, so record-level damage reaches the
// record checks.
func rawBatch(numRecords, lastOffsetDelta int32, records []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(records))
	b[offMagic] = 2
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(lastOffsetDelta))
	binary.BigEndian.PutUint64(b[offProducerID:], ^uint64(0))
	binary.BigEndian.PutUint32(b[offNumRecords:], uint32(numRecords))
	b = append(b, records...)
	b, _ = finishBatch(b, 0)
	return b
}

func enc(recs ...Record) []byte {
	var out []byte
	for i := range recs {
		out, _ = appendRecord(out, &recs[i])
	}
	return out
}

// v returns a hand-encoded varint.
func v(x int64) []byte { return binary.AppendVarint(nil, x) }

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestRecordValidation(t *testing.T) {
	k := []byte("k")
	ok := enc(Record{OffsetDelta: 0, Key: k}, Record{OffsetDelta: 1, Key: k})
	// a record body: attrs, ts, offset, key, value, headers (length added by rec)
	rec := func(body ...[]byte) []byte { b := cat(body...); return cat(v(int64(len(b))), b) }
	tests := []struct {
		name     string
		batch    []byte
		keys     bool
		wantErr  error // nil: valid
		validate bool  // also passes Validate
	}{
		{"ok", rawBatch(2, 1, ok), true, nil, true},
		{"count too high", rawBatch(3, 2, ok), false, ErrCorrupt, true},
		{"count too low", rawBatch(1, 1, ok), false, ErrCorrupt, false},
		{"trailing garbage", rawBatch(2, 1, cat(ok, []byte{0})), false, ErrCorrupt, true},
		{"offset past last delta", rawBatch(2, 0, ok), false, ErrInvalid, false},
		{"offsets not increasing", rawBatch(2, 1, enc(Record{OffsetDelta: 1}, Record{OffsetDelta: 1})), false, ErrInvalid, true},
		{"negative offset", rawBatch(1, 0, enc(Record{OffsetDelta: -1})), false, ErrInvalid, true},
		{"null key, keys required", rawBatch(1, 0, enc(Record{Value: k})), true, ErrInvalid, true},
		{"null key allowed", rawBatch(1, 0, enc(Record{Value: k})), false, nil, true},
		{"empty key ok when required", rawBatch(1, 0, enc(Record{Key: []byte{}})), true, nil, true},
		{"record length negative", rawBatch(1, 0, cat(v(-3), []byte{0, 0, 0, 1, 1, 0})), false, ErrCorrupt, true},
		{"record length past end", rawBatch(1, 0, cat(v(50), []byte{0, 0, 0, 1, 1, 0})), false, ErrCorrupt, true},
		{"record length too small", rawBatch(1, 0, cat(v(3), []byte{0, 0, 0})), false, ErrCorrupt, true},
		{"key length past record", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(10), []byte("ab"), v(-1), v(0))), false, ErrCorrupt, true},
		{"key length -2", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-2), v(-1), v(0))), false, ErrCorrupt, true},
		{"negative header count", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(-1))), false, ErrCorrupt, true},
		{"huge header count", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(1<<30))), false, ErrCorrupt, true},
		{"null header key", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(-1), v(-1))), false, ErrCorrupt, true},
		{"header ok", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(1), v(1), []byte("h"), v(-1))), false, nil, true},
		{"unread bytes in record", rawBatch(1, 0, rec([]byte{0}, v(0), v(0), v(-1), v(-1), v(0), []byte{9})), false, ErrCorrupt, true},
		{"offset delta overflows int32", rawBatch(1, 0, rec([]byte{0}, v(0), v(1<<40), v(-1), v(-1), v(0))), false, ErrCorrupt, true},
		{"bad varint", rawBatch(1, 0, cat([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})), false, ErrCorrupt, true},
		{"negative count", rawBatch(-1, 0, nil), false, ErrInvalid, false},
		{"length field lies", rawBatch(2, 1, ok)[:HeaderSize+3], false, ErrCorrupt, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.validate {
				if _, err := Validate(tt.batch); err != nil {
					t.Fatalf("Validate: %v (the test means to reach the record checks)", err)
				}
			}
			check := func(what string, err error) {
				t.Helper()
				if tt.wantErr == nil && err != nil {
					t.Fatalf("%s: unexpected %v", what, err)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s: err = %v, want %v", what, err, tt.wantErr)
				}
			}
			check("ValidateRecords", ValidateRecords(tt.batch, tt.keys))
			if !tt.keys {
				check("ForEach", ForEach(tt.batch, func(*Record) error { return nil }))
			}
		})
	}
}

func TestForEachStopsOnCallbackError(t *testing.T) {
	b := mustBuild(t, NewBatchOptions(CodecZstd), 0, sampleRecords(10))
	stop := errors.New("stop")
	n := 0
	err := ForEach(b, func(*Record) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("err %v after %d records", err, n)
	}
}

// TestTruncatedAndDamaged checks every prefix and a sweep of byte flips of
// batches of every codec: errors, never a panic, and ErrBadCRC from Validate
// for flips inside the CRC range.
func TestTruncatedAndDamaged(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, NewBatchOptions(c), 0, sampleRecords(6))
		for n := range len(b) {
			p := b[:n]
			if _, err := Validate(p); err == nil {
				t.Fatalf("%s: Validate accepted %d of %d bytes", c, n, len(b))
			}
			if err := ValidateRecords(p, false); err == nil {
				t.Fatalf("%s: ValidateRecords accepted %d of %d bytes", c, n, len(b))
			}
			if err := ForEach(p, func(*Record) error { return nil }); err == nil {
				t.Fatalf("%s: ForEach accepted %d of %d bytes", c, n, len(b))
			}
		}
		for i := HeaderSize; i < len(b); i++ {
			d := slices.Clone(b)
			d[i] ^= 0xa5
			if _, err := Validate(d); !errors.Is(err, ErrBadCRC) {
				t.Fatalf("%s: flip at %d: %v", c, i, err)
			}
			_ = ValidateRecords(d, true)
			_ = ForEach(d, func(*Record) error { return nil })
			_, _ = Recompress(nil, d, CodecGzip)
		}
	}
}

func TestValidateRecordsNoAllocs(t *testing.T) {
	b := mustBuild(t, NewBatchOptions(CodecNone), 0, sampleRecords(200))
	allocs := testing.AllocsPerRun(20, func() {
		if err := ValidateRecords(b, false); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("ValidateRecords allocates %.1f times per uncompressed batch", allocs)
	}
}

// franzBatch encodes recs as franz-go does: kmsg records, kgo's default
// compressor, a kmsg.RecordBatch, and the CRC over attributes onwards.
func franzBatch(t *testing.T, codec kgo.CompressionCodec, recs []kmsg.Record) []byte {
	t.Helper()
	var raw []byte
	for i := range recs {
		r := recs[i]
		r.Length = int32(len(r.AppendTo(nil)) - 1) // length 0 encodes as one byte
		raw = r.AppendTo(raw)
	}
	attrs := int16(0)
	if comp, err := kgo.DefaultCompressor(codec); err != nil {
		t.Fatal(err)
	} else if comp != nil {
		out, used := comp.Compress(new(bytes.Buffer), raw)
		raw = slices.Clone(out)
		attrs = int16(used)
	}
	rb := kmsg.RecordBatch{
		FirstOffset: 0, PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: 1000, MaxTimestamp: 1000 + int64(len(recs)),
		ProducerID: 12, ProducerEpoch: 0, FirstSequence: 0, NumRecords: int32(len(recs)), Records: raw,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-LogOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestFranzGoInterop(t *testing.T) {
	codecs := []kgo.CompressionCodec{kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}
	var krecs []kmsg.Record
	for i := range 300 {
		kr := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i),
			Key: []byte{byte(i), 'k'}, Value: bytes.Repeat([]byte{byte(i)}, i)}
		if i%3 == 0 {
			kr.Headers = []kmsg.Header{{Key: "trace", Value: []byte("abc")}}
		}
		krecs = append(krecs, kr)
	}
	for i, codec := range codecs {
		c := Codec(i)
		t.Run(c.String(), func(t *testing.T) {
			// franz-go -> us.
			b := franzBatch(t, codec, krecs)
			h, err := Validate(b)
			if err != nil {
				t.Fatal(err)
			}
			if h.Codec() != c {
				t.Fatalf("codec %s, want %s", h.Codec(), c)
			}
			got := collect(t, b)
			if len(got) != len(krecs) {
				t.Fatalf("%d records, want %d", len(got), len(krecs))
			}
			for j, r := range got {
				kr := krecs[j]
				if !bytes.Equal(r.Key, kr.Key) || !bytes.Equal(r.Value, kr.Value) || r.OffsetDelta != kr.OffsetDelta ||
					r.TimestampDelta != kr.TimestampDelta64 || len(r.Headers) != len(kr.Headers) {
					t.Fatalf("record %d: got %+v", j, r)
				}
			}

			// us -> franz-go: decompress with kgo's decompressor and
			// decode with kmsg.
			var ours []Record
			for _, kr := range krecs {
				r := Record{TimestampDelta: kr.TimestampDelta64, OffsetDelta: kr.OffsetDelta, Key: kr.Key, Value: kr.Value}
				for _, kh := range kr.Headers {
					r.Headers = append(r.Headers, RecordHeader{Key: kh.Key, Value: kh.Value})
				}
				ours = append(ours, r)
			}
			b = mustBuild(t, NewBatchOptions(c), 1000, ours)
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(b); err != nil {
				t.Fatal(err)
			}
			if uint32(rb.CRC) != ComputeCRC(b) || int(rb.Length) != len(b)-LogOverhead {
				t.Fatal("kmsg sees a different CRC or length")
			}
			raw, err := kgo.DefaultDecompressor().Decompress(rb.Records, kgo.CompressionCodecType(c))
			if err != nil {
				t.Fatal(err)
			}
			for j := range krecs {
				var kr kmsg.Record
				if err := kr.ReadFrom(raw); err != nil {
					t.Fatalf("record %d: %v", j, err)
				}
				if !bytes.Equal(kr.Key, krecs[j].Key) || !bytes.Equal(kr.Value, krecs[j].Value) || len(kr.Headers) != len(krecs[j].Headers) {
					t.Fatalf("record %d differs after franz-go decode", j)
				}
				raw = raw[len(kr.AppendTo(nil)):]
			}
			if len(raw) != 0 {
				t.Fatalf("%d bytes left over", len(raw))
			}
		})
	}
}
