package record

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stratalog/strata/internal/fuzzbudget"
)

// fuzzSeeds are real batches of every codec, including one with xerial
// framed snappy and one with offset gaps.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	recs := sampleRecords(5)
	for _, c := range allCodecs {
		seeds = append(seeds, mustBuild(t, NewBatchOptions(c), 1, recs))
		seeds = append(seeds, mustBuild(t, NewBatchOptions(c), 1, recs[:1]))
	}
	plain := mustBuild(t, NewBatchOptions(CodecNone), 1, recs)
	x := append([]byte{}, plain[:HeaderSize]...)
	x = append(x, xerialFrame(plain[HeaderSize:], 16)...)
	binary.BigEndian.PutUint16(x[offAttributes:], uint16(CodecSnappy))
	x, _ = finishBatch(x, 0)
	seeds = append(seeds, x)
	gaps := []Record{{OffsetDelta: 1, Key: []byte("a")}, {OffsetDelta: 3, Value: []byte("b")}}
	seeds = append(seeds, mustBuild(t, NewBatchOptions(CodecNone), 1, gaps))
	return seeds
}

func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkBatch(t, b)
		// Most mutations break the CRC; check a copy with the CRC made
		// right too, so the deeper checks see them.
		if len(b) >= HeaderSize {
			fixed := append([]byte{}, b...)
			binary.BigEndian.PutUint32(fixed[offCRC:], ComputeCRC(fixed))
			checkBatch(t, fixed)
		}
	})
}

// checkBatch runs every check on b and the properties that tie them
// together. The decoding (not the re-encoding) is held to the per-input
// CPU budget.
func checkBatch(t *testing.T, b []byte) {
	var verr, rerr, ferr error
	n := 0
	fuzzbudget.Run(t, len(b), func() {
		n = 0
		_, verr = Validate(b)
		rerr = ValidateRecords(b, false)
		_ = ValidateRecords(b, true)
		ferr = ForEach(b, func(r *Record) error {
			n++
			_ = len(r.Key) + len(r.Value) + len(r.Headers)
			return nil
		})
	})
	if (rerr == nil) != (ferr == nil) {
		t.Fatalf("ValidateRecords says %v but ForEach says %v", rerr, ferr)
	}
	plain, err := Recompress(nil, b, CodecNone)
	if verr != nil || rerr != nil {
		return
	}
	// A batch that passes every check recompresses to an equally
	// valid batch holding the same records.
	if err != nil {
		t.Fatalf("Recompress of a valid batch: %v", err)
	}
	if _, err := Validate(plain); err != nil {
		t.Fatalf("recompressed batch fails Validate: %v", err)
	}
	m := 0
	if err := ForEach(plain, func(*Record) error { m++; return nil }); err != nil || m != n {
		t.Fatalf("recompressed batch: %d records (want %d), %v", m, n, err)
	}
}

func FuzzDecompress(f *testing.F) {
	for _, c := range allCodecs {
		for _, in := range [][]byte{{}, []byte("hello hello hello hello"), bytes.Repeat([]byte{1, 2, 3}, 300)} {
			comp, err := Compress(nil, c, in)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(byte(c), comp)
		}
	}
	f.Add(byte(CodecSnappy), xerialFrame([]byte("framed framed framed"), 8))
	f.Fuzz(func(t *testing.T, codec byte, src []byte) {
		c := Codec(codec % 6) // include one unknown codec
		const max = 1 << 20
		var out []byte
		var err error
		fuzzbudget.Run(t, len(src), func() { out, err = decompress([]byte("x"), c, src, max) })
		if err != nil {
			if string(out) != "x" {
				t.Fatalf("dst changed on error: %q", out)
			}
			return
		}
		if string(out[:1]) != "x" || len(out)-1 > max {
			t.Fatalf("bad output: %d bytes", len(out))
		}
		comp, err := Compress(nil, c, out[1:])
		if err != nil {
			t.Fatal(err)
		}
		back, err := decompress(nil, c, comp, max)
		if err != nil || !bytes.Equal(back, out[1:]) {
			t.Fatalf("re-compress round trip: %v", err)
		}
	})
}
