package network

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// tempFile writes n random bytes to a file and returns it open with its data.
func tempFile(t testing.TB, n int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "00000000000000000000.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f, data
}

// mixedResponse answers every request with byte chunks and file regions
// (small, empty and over 1 MiB), and returns the bytes expected on the wire.
func mixedResponse(f *os.File, data []byte, released *atomic.Int32) (Handler, []byte) {
	chunks := []Chunk{
		{Bytes: []byte("head")},
		{File: f, Offset: 0, Len: 10},
		{Bytes: []byte("mid")},
		{Bytes: []byte("dle")},
		{File: f, Offset: 100, Len: 2<<20 + 3},
		{File: f, Offset: 5, Len: 0},
		{File: f, Offset: 5, Len: 1},
		{File: f, Offset: int64(len(data)) - 7, Len: 7},
		{Bytes: []byte("tail")},
	}
	var want []byte
	for _, ch := range chunks {
		if ch.File != nil {
			want = append(want, data[ch.Offset:ch.Offset+ch.Len]...)
		} else {
			want = append(want, ch.Bytes...)
		}
	}
	h := handlerFunc(func(_ context.Context, _ *Request, r Responder) {
		r.Respond(&Response{Chunks: chunks, Release: func() { released.Add(1) }})
	})
	return h, want
}

func TestSendfileOverTCP(t *testing.T) {
	f, data := tempFile(t, 3<<20)
	var released atomic.Int32
	h, want := mixedResponse(f, data, &released)
	s, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	const n = 3
	go func() {
		for i := range int32(n) {
			_, _ = c.Write(frame(i, nil))
		}
	}()
	for i := range n {
		got, err := readResp(c)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("response %d: %d bytes differ from the %d expected", i, len(got), len(want))
		}
	}
	waitFor(t, "releases", func() bool { return released.Load() == n })
	if got := s.sendfileBytes.Load(); got == 0 || s.copiedBytes.Load() != 0 {
		t.Errorf("sendfile bytes %d, copied bytes %d; want all by sendfile", got, s.copiedBytes.Load())
	}
	// The file's own position is untouched.
	if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		t.Errorf("file position %d, %v; want 0", pos, err)
	}
}

func TestFallbackOverPipe(t *testing.T) {
	f, data := tempFile(t, 3<<20)
	var released atomic.Int32
	h, want := mixedResponse(f, data, &released)
	s := New(Config{Logger: testLogger(t)}, h)
	ln := newPipeListener()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	c := ln.dial()
	go func() { _, _ = c.Write(frame(1, nil)) }()
	got, err := readResp(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%d bytes differ from the %d expected", len(got), len(want))
	}
	waitFor(t, "release", func() bool { return released.Load() == 1 })
	if s.sendfileBytes.Load() != 0 || s.copiedBytes.Load() == 0 {
		t.Errorf("sendfile bytes %d, copied bytes %d; want all copied", s.sendfileBytes.Load(), s.copiedBytes.Load())
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

// A file region past the end of the file cannot be sent: the connection is
// closed rather than left with a short frame.
func TestFileRegionPastEOFClosesConnection(t *testing.T) {
	f, _ := tempFile(t, 100)
	for _, tc := range []struct {
		name  string
		force bool
	}{{"sendfile", false}, {"fallback", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var released atomic.Int32
			h := handlerFunc(func(_ context.Context, _ *Request, r Responder) {
				r.Respond(&Response{Chunks: []Chunk{{File: f, Offset: 50, Len: 100}}, Release: func() { released.Add(1) }})
			})
			s, addr := startTCP(t, Config{}, h)
			s.noSendfile = tc.force
			c := dial(t, addr)
			if _, err := c.Write(frame(1, nil)); err != nil {
				t.Fatal(err)
			}
			if _, err := readResp(c); err == nil {
				t.Fatal("read a whole response from a short file region")
			}
			waitFor(t, "release", func() bool { return released.Load() == 1 })
		})
	}
}

func benchmarkFileResponses(b *testing.B, noSendfile bool) {
	const region = 1 << 20
	f, _ := tempFile(b, 4*region)
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		off := int64(corrOf(req)%4) * region
		r.Respond(&Response{Chunks: []Chunk{{Bytes: make([]byte, 64)}, {File: f, Offset: off, Len: region}}})
	})
	s, addr := startTCP(b, Config{}, h)
	s.noSendfile = noSendfile
	c := dial(b, addr)
	go func() {
		for i := range int32(b.N) {
			if _, err := c.Write(frame(i, nil)); err != nil {
				return
			}
		}
	}()
	b.SetBytes(region + 64)
	b.ResetTimer()
	var hdr [4]byte
	for range b.N {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, c, region+64); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteFileSendfile(b *testing.B) { benchmarkFileResponses(b, false) }
func BenchmarkWriteFileFallback(b *testing.B) { benchmarkFileResponses(b, true) }
