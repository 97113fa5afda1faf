package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/klauspost/compress/s2"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// sampleRecords returns n records exercising null and empty keys and values,
// headers with null values, and negative and large timestamp deltas.
func sampleRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		r.OffsetDelta = int32(i)
		r.TimestampDelta = int64(i*37) - 5
		switch i % 4 {
		case 0:
			r.Key = nil
		case 1:
			r.Key = []byte{}
		default:
			r.Key = fmt.Appendf(nil, "key-%d", i)
		}
		if i%5 != 3 {
			r.Value = bytes.Repeat(fmt.Appendf(nil, "value %d ", i), i%20+1)
		}
		for j := range i % 3 {
			var v []byte
			if j != 1 {
				v = fmt.Appendf(nil, "hv%d", j)
			}
			r.Headers = append(r.Headers, RecordHeader{Key: fmt.Sprintf("h%d", j), Value: v})
		}
	}
	recs[n-1].TimestampDelta = 1 << 40
	return recs
}

// cloneRecord deep-copies r, so it survives past a ForEach callback.
func cloneRecord(r *Record) Record {
	c := *r
	c.Key = cloneBytes(r.Key)
	c.Value = cloneBytes(r.Value)
	c.Headers = nil
	for _, h := range r.Headers {
		c.Headers = append(c.Headers, RecordHeader{Key: h.Key, Value: cloneBytes(h.Value)})
	}
	return c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func collect(t *testing.T, batch []byte) []Record {
	t.Helper()
	var got []Record
	if err := ForEach(batch, func(r *Record) error {
		got = append(got, cloneRecord(r))
		return nil
	}); err != nil {
		t.Fatalf("ForEach: %v", err)
	}
	return got
}

func equalRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Attributes != w.Attributes || g.TimestampDelta != w.TimestampDelta || g.OffsetDelta != w.OffsetDelta ||
			!nullEqual(g.Key, w.Key) || !nullEqual(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, g, w)
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !nullEqual(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d: got %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// nullEqual compares byte slices telling nil (null) from empty.
func nullEqual(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func mustBuild(t testing.TB, opts BatchOptions, ts int64, recs []Record) []byte {
	t.Helper()
	b, err := Build(nil, opts, ts, recs)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return b
}

func TestBuildRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		for _, n := range []int{1, 7, 500} {
			t.Run(fmt.Sprintf("%s/%d", c, n), func(t *testing.T) {
				recs := sampleRecords(n)
				opts := BatchOptions{Codec: c, ProducerID: 42, ProducerEpoch: 3, BaseSequence: 100,
					Transactional: true, PartitionLeaderEpoch: 9, BaseOffset: 1000}
				prefix := []byte("prefix")
				b, err := Build(prefix, opts, 1_700_000_000_000, recs)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(b, prefix) {
					t.Fatal("Build clobbered dst")
				}
				b = b[len(prefix):]
				h, err := Validate(b)
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				want := Header{BaseOffset: 1000, Length: int32(len(b) - LogOverhead), PartitionLeaderEpoch: 9, Magic: 2,
					CRC: ComputeCRC(b), Attributes: int16(c) | AttrTransactional, LastOffsetDelta: int32(n - 1),
					FirstTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000 + 1<<40,
					ProducerID: 42, ProducerEpoch: 3, BaseSequence: 100, NumRecords: int32(n)}
				if h != want {
					t.Fatalf("header\n got %+v\nwant %+v", h, want)
				}
				equalRecords(t, collect(t, b), recs)
				if err := ValidateRecords(b, false); err != nil {
					t.Fatalf("ValidateRecords: %v", err)
				}
				if err := ValidateRecords(b, true); !errors.Is(err, ErrInvalid) {
					t.Fatalf("ValidateRecords(requireKeys) with a null key: %v", err)
				}
			})
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		opts BatchOptions
		recs []Record
	}{
		{"empty", NewBatchOptions(CodecNone), nil},
		{"bad codec", NewBatchOptions(Codec(5)), sampleRecords(1)},
		{"negative offset", NewBatchOptions(CodecNone), []Record{{OffsetDelta: -1}}},
		{"repeated offset", NewBatchOptions(CodecGzip), []Record{{OffsetDelta: 0}, {OffsetDelta: 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Build([]byte("x"), tt.opts, 0, tt.recs)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if string(out) != "x" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
}

func TestBuildGapsKept(t *testing.T) {
	recs := []Record{{OffsetDelta: 0, Key: []byte("a")}, {OffsetDelta: 4, Key: []byte("b")}, {OffsetDelta: 9, Key: []byte("c")}}
	b := mustBuild(t, NewBatchOptions(CodecLZ4), 5, recs)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffsetDelta != 9 || h.NumRecords != 3 {
		t.Fatalf("LastOffsetDelta %d NumRecords %d", h.LastOffsetDelta, h.NumRecords)
	}
	// Validate is the produce check and refuses gaps; ForEach accepts them,
	// as a compacted batch on disk has them.
	if _, err := Validate(b); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate of a gapped batch: %v", err)
	}
	equalRecords(t, collect(t, b), recs)
	if err := ValidateRecords(b, true); err != nil {
		t.Fatal(err)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 200<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	inputs := map[string][]byte{
		"empty":    {},
		"one":      {7},
		"text":     bytes.Repeat([]byte("the quick brown fox "), 20000),
		"random":   random,
		"zeros-1M": make([]byte, 1<<20),
	}
	for _, c := range allCodecs {
		for name, in := range inputs {
			t.Run(c.String()+"/"+name, func(t *testing.T) {
				comp, err := Compress([]byte("hdr"), c, in)
				if err != nil {
					t.Fatal(err)
				}
				if string(comp[:3]) != "hdr" {
					t.Fatal("Compress clobbered dst")
				}
				out, err := Decompress([]byte("pre"), c, comp[3:])
				if err != nil {
					t.Fatal(err)
				}
				if string(out[:3]) != "pre" || !bytes.Equal(out[3:], in) {
					t.Fatalf("round trip mismatch: %d bytes back, want %d", len(out)-3, len(in))
				}
			})
		}
	}
}

func TestUnknownCodec(t *testing.T) {
	if _, err := Compress(nil, 7, []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Compress: %v", err)
	}
	if _, err := Decompress(nil, -1, []byte("x")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Decompress: %v", err)
	}
}

// xerialFrame frames in as the Java client does, in blocks of size bytes.
func xerialFrame(in []byte, size int) []byte {
	out := append([]byte{}, xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for len(in) > 0 {
		n := min(size, len(in))
		blk := s2.EncodeSnappy(nil, in[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
		out = append(out, blk...)
		in = in[n:]
	}
	return out
}

func TestSnappyXerial(t *testing.T) {
	in := bytes.Repeat([]byte("xerial framed snappy "), 10000)
	framed := xerialFrame(in, 32<<10)
	out, err := Decompress(nil, CodecSnappy, framed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatal("xerial round trip mismatch")
	}
	// A whole batch whose records are xerial framed, as a Java producer
	// sends it.
	recs := sampleRecords(50)
	plain := mustBuild(t, NewBatchOptions(CodecNone), 1, recs)
	batch := append([]byte{}, plain[:HeaderSize]...)
	batch = append(batch, xerialFrame(plain[HeaderSize:], 100)...)
	binary.BigEndian.PutUint16(batch[offAttributes:], uint16(CodecSnappy))
	batch, _ = finishBatch(batch, 0)
	if _, err := Validate(batch); err != nil {
		t.Fatal(err)
	}
	equalRecords(t, collect(t, batch), recs)

	bad := []struct {
		name string
		in   []byte
	}{
		{"short length", framed[:18]},
		{"block overruns", framed[:len(framed)-1]},
		{"garbage block", append(append([]byte{}, framed[:16]...), 0, 0, 0, 3, 0xff, 0xff, 0xff)},
	}
	for _, b := range bad {
		if _, err := Decompress(nil, CodecSnappy, b.in); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", b.name, err)
		}
	}
}

func TestDecompressBound(t *testing.T) {
	big := make([]byte, 100<<10)
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			comp, err := Compress(nil, c, big)
			if err != nil {
				t.Fatal(err)
			}
			for _, max := range []int{0, 1, 64 << 10, len(big) - 1} {
				out, err := decompress([]byte("keep"), c, comp, max)
				if !errors.Is(err, ErrInvalid) || !errors.Is(err, ErrTooLarge) {
					t.Fatalf("max %d: err = %v, want ErrInvalid+ErrTooLarge", max, err)
				}
				if string(out) != "keep" {
					t.Fatalf("dst not restored: %q", out[:min(len(out), 10)])
				}
			}
			if out, err := decompress(nil, c, comp, len(big)); err != nil || len(out) != len(big) {
				t.Fatalf("exact bound: %d bytes, %v", len(out), err)
			}
		})
	}
	t.Run("xerial", func(t *testing.T) {
		if _, err := decompress(nil, CodecSnappy, xerialFrame(big, 32<<10), 50<<10); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("snappy declares 4GiB", func(t *testing.T) {
		bomb := binary.AppendUvarint(nil, 0xffffffff)
		if _, err := Decompress(nil, CodecSnappy, append(bomb, 0, 0)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("zstd declares 1GiB", func(t *testing.T) {
		// A single-segment frame declaring a 1 GiB content size, with one
		// RLE block: the decoder must refuse it before allocating.
		f := binary.LittleEndian.AppendUint32(nil, 0xFD2FB528)
		f = append(f, 0xE0) // 8-byte content size, single segment
		f = binary.LittleEndian.AppendUint64(f, 1<<30)
		bh := uint32(1) | 1<<1 | (128<<10)<<3 // last block, RLE, 128 KiB
		f = append(f, byte(bh), byte(bh>>8), byte(bh>>16), 'z')
		if _, err := Decompress(nil, CodecZstd, f); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestDecompressGarbage(t *testing.T) {
	inputs := [][]byte{nil, {0}, []byte("definitely not compressed data at all"), bytes.Repeat([]byte{0xff}, 64)}
	for _, c := range allCodecs[1:] {
		for i, in := range inputs {
			out, err := Decompress([]byte("d"), c, in)
			if err == nil {
				// Snappy's literal-only blocks can be tiny; accept any
				// success that at least keeps dst.
				if string(out[:1]) != "d" {
					t.Fatalf("%s input %d: dst clobbered", c, i)
				}
				continue
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s input %d: err %v wraps neither ErrCorrupt nor ErrInvalid", c, i, err)
			}
		}
	}
	// A truncated stream of every codec must fail.
	src := bytes.Repeat([]byte("truncate me "), 5000)
	for _, c := range allCodecs[1:] {
		comp, _ := Compress(nil, c, src)
		if _, err := Decompress(nil, c, comp[:len(comp)/2]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s truncated: err = %v", c, err)
		}
	}
}

func TestCRCMismatch(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, NewBatchOptions(c), 1, sampleRecords(20))
		for _, pos := range []int{offAttributes, offNumRecords, HeaderSize, len(b) - 1} {
			bad := slices.Clone(b)
			bad[pos] ^= 0x10
			if _, err := Validate(bad); !errors.Is(err, ErrBadCRC) {
				t.Errorf("%s flip at %d: err = %v, want ErrBadCRC", c, pos, err)
			}
		}
		// Fields outside the CRC may change freely.
		ok := slices.Clone(b)
		SetBaseOffset(ok, 77)
		SetPartitionLeaderEpoch(ok, 5)
		if _, err := Validate(ok); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

func TestSetLogAppendTime(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, NewBatchOptions(c), 1000, sampleRecords(5))
		SetLogAppendTime(b, 123456789)
		h, err := Validate(b)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if !h.IsLogAppendTime() || h.MaxTimestamp != 123456789 || h.FirstTimestamp != 1000 || h.Codec() != c {
			t.Fatalf("%s: header %+v", c, h)
		}
	}
}

func TestRecompress(t *testing.T) {
	recs := sampleRecords(100)
	opts := BatchOptions{ProducerID: 7, ProducerEpoch: 1, BaseSequence: 5, Transactional: true,
		PartitionLeaderEpoch: 3, BaseOffset: 50}
	for _, from := range allCodecs {
		opts.Codec = from
		src := mustBuild(t, opts, 99, recs)
		SetLogAppendTime(src, 555)
		srcH, _ := ParseHeader(src)
		for _, to := range allCodecs {
			t.Run(from.String()+"->"+to.String(), func(t *testing.T) {
				out, err := Recompress([]byte("x"), src, to)
				if err != nil {
					t.Fatal(err)
				}
				out = out[1:]
				h, err := Validate(out)
				if err != nil {
					t.Fatal(err)
				}
				want := srcH
				want.Attributes = srcH.Attributes&^AttrCompressionMask | int16(to)
				want.Length, want.CRC = h.Length, h.CRC
				if h != want {
					t.Fatalf("header\n got %+v\nwant %+v", h, want)
				}
				equalRecords(t, collect(t, out), recs)
			})
		}
	}
	if _, err := Recompress(nil, []byte("short"), CodecGzip); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	if _, err := Recompress(nil, mustBuild(t, NewBatchOptions(CodecNone), 0, recs), 9); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad codec: %v", err)
	}
}
