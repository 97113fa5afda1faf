package storage

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// pwritev writes more buffers than one call takes (IOV_MAX), in order, at
// the offset given, and leaves the caller's slices as they were.
func TestPwritevManyBuffers(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var bufs [][]byte
	var want []byte
	for i := range 3*iovMax + 7 {
		b := bytes.Repeat([]byte{byte(i)}, 1+i%13)
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	before := make([][]byte, len(bufs))
	copy(before, bufs)
	n, err := pwritev(f, bufs, 100)
	if err != nil || n != len(want) {
		t.Fatalf("pwritev: %d bytes, %v; want %d", n, err, len(want))
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:100], make([]byte, 100)) || !bytes.Equal(got[100:], want) {
		t.Fatalf("file holds %d bytes that differ from the buffers written at 100", len(got))
	}
	for i := range bufs {
		if &bufs[i][0] != &before[i][0] || len(bufs[i]) != len(before[i]) {
			t.Fatalf("buffer %d was changed", i)
		}
	}
}
