package record

import (
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

// allocated is the bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestDecompressDeclaredSizeNotTrusted: a tiny input that declares a huge
// decoded size (a zstd frame's content size, a snappy block's length) is
// refused without allocating that size, at the broker's real bound
// (MaxDecompressedSize). FuzzDecompress found the zstd one through its
// CPU budget: 9 bytes made DecodeAll allocate 256 MiB.
func TestDecompressDeclaredSizeNotTrusted(t *testing.T) {
	zstd256 := []byte("(\xb5/\xfd\xa0\x00\x00\x00\x10") // single segment, content size 256 MiB, no block
	snappy1M := append(binary.AppendUvarint(nil, 1<<20), 0, 0, 0, 0)
	xerial := xerialFrame(nil, 1)
	xerial = binary.BigEndian.AppendUint32(xerial, uint32(len(snappy1M)))
	xerial = append(xerial, snappy1M...)
	for _, tc := range []struct {
		name string
		c    Codec
		in   []byte
	}{
		{"zstd", CodecZstd, zstd256},
		{"snappy", CodecSnappy, snappy1M},
		{"xerial snappy", CodecSnappy, xerial},
	} {
		var err error
		n := allocated(func() { _, err = Decompress(nil, tc.c, tc.in) })
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", tc.name, err)
		}
		if n > 1<<20 {
			t.Errorf("%s: %d bytes of input made %d bytes of allocations", tc.name, len(tc.in), n)
		}
	}
}
