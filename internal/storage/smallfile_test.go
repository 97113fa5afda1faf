package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratalog/strata/internal/record"
)

// ReadSmallFile reads files of every size around its buffer's whole,
// and reports a missing file as os.ErrNotExist.
func TestReadSmallFile(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 511, 512, 513, 1024, 5000} {
		want := bytes.Repeat([]byte{'x'}, n)
		for i := range want {
			want[i] = byte(i)
		}
		name := filepath.Join(dir, "f")
		if err := os.WriteFile(name, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSmallFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes, err %v", n, len(got), err)
		}
	}
	if _, err := ReadSmallFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file: %v, want os.ErrNotExist", err)
	}
	if _, err := ReadSmallFile(dir); err == nil {
		t.Fatal("reading a directory succeeded")
	}
}

// headerReader returns the same headers as readHeader for batches small
// and larger than its buffer, across its buffer's edges, going back, and
// fails on a header cut by the end of the data.
func TestHeaderReader(t *testing.T) {
	var data []byte
	var positions []int64
	for i, size := range []int{10, 300, 70 << 10, 5, 200 << 10, 1000, 40 << 10, 40 << 10, 3} {
		positions = append(positions, int64(len(data)))
		data = append(data, makeBatch(t, batchSpec{n: 1 + i%3, size: size, ts: int64(i)})...)
	}
	name := filepath.Join(t.TempDir(), "seg")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	end := int64(len(data))
	hr := headerReader{f: f}
	check := func(pos int64) {
		t.Helper()
		want, err := readHeader(f, pos, make([]byte, record.HeaderSize))
		if err != nil {
			t.Fatal(err)
		}
		got, err := hr.header(pos, end)
		if err != nil || got != want {
			t.Fatalf("header at %d: %+v %v, want %+v", pos, got, err, want)
		}
	}
	for _, pos := range positions {
		check(pos)
	}
	for i := len(positions) - 1; i >= 0; i-- {
		check(positions[i])
	}
	if _, err := hr.header(end-10, end); err == nil {
		t.Fatal("a header cut by the end of the data was read")
	}
}

// writeSmallFile creates, empties (O_TRUNC) or writes at an offset, and
// reports a missing directory as os.ErrNotExist.
func TestWriteSmallFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	check := func(want string) {
		t.Helper()
		got, err := os.ReadFile(name)
		if err != nil || string(got) != want {
			t.Fatalf("file holds %q (err %v), want %q", got, err, want)
		}
	}
	if err := writeSmallFile(name, []byte("hello world"), 0, 0, false); err != nil {
		t.Fatal(err)
	}
	check("hello world")
	if err := writeSmallFile(name, []byte("WORLD"), 6, 0, true); err != nil {
		t.Fatal(err)
	}
	check("hello WORLD")
	if err := writeSmallFile(name, []byte("hi"), 0, unix.O_TRUNC, false); err != nil {
		t.Fatal(err)
	}
	check("hi")
	err := writeSmallFile(filepath.Join(name+"-missing", "g"), []byte("x"), 0, 0, false)
	var pe *os.PathError
	if !errors.Is(err, os.ErrNotExist) || !errors.As(err, &pe) {
		t.Fatalf("write into a missing directory: %v, want a *os.PathError for ErrNotExist", err)
	}
}

// writeFileNew creates a new file in place, replaces an existing one
// through a temporary file (never tearing it), and leaves nothing behind
// when it cannot create the file.
func TestWriteFileNew(t *testing.T) {
	dir := t.TempDir()
	if err := writeFileNew(dir, "f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSmallFile(filepath.Join(dir, "f")); err != nil || string(got) != "one" {
		t.Fatalf("new file: %q, %v", got, err)
	}
	if err := writeFileNew(dir, "f", []byte("second")); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSmallFile(filepath.Join(dir, "f")); err != nil || string(got) != "second" {
		t.Fatalf("replaced file: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f"+tmpSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	err := writeFileNew(filepath.Join(dir, "missing"), "f", []byte("x"))
	if !errors.Is(err, ErrIO) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing directory: %v, want ErrIO wrapping ENOENT", err)
	}
}
