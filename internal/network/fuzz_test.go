package network

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"
)

// FuzzFraming writes an arbitrary byte stream into a connection whose
// handler echoes each request. Whatever the bytes, the server must answer
// every whole frame it accepts, in order, and then either wait for more or
// close the connection — never panic, hang or answer something it was not
// sent. The expected answers are computed by an independent reading of the
// same stream.
func FuzzFraming(f *testing.F) {
	f.Add(frame(1, []byte("hello")))
	f.Add(append(frame(1, nil), frame(2, []byte{1, 2, 3})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0})
	const maxSize = 1 << 16
	f.Fuzz(func(t *testing.T, stream []byte) {
		h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
			out := append([]byte(nil), req.Data...)
			req.Recycle()
			r.Respond(&Response{Chunks: []Chunk{{Bytes: out}}})
		})
		ln := newPipeListener()
		s := New(Config{MaxRequestSize: maxSize, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, h)
		go s.Serve(ln)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s.Shutdown(ctx)
		}()
		c := ln.dial()
		defer c.Close()

		// What the server must answer: each whole frame with a legal size,
		// up to the first illegal size.
		var want [][]byte
		for rest := stream; len(rest) >= 4; {
			size := int32(binary.BigEndian.Uint32(rest))
			if size < minRequestSize || size > maxSize || int(size) > len(rest)-4 {
				break
			}
			want = append(want, rest[4:4+size])
			rest = rest[4+size:]
		}
		go func() {
			c.Write(stream)
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i, w := range want {
			got, err := readResp(c)
			if err != nil {
				t.Fatalf("answer %d of %d: %v", i, len(want), err)
			}
			if string(got) != string(w) {
				t.Fatalf("answer %d differs from its request", i)
			}
		}
	})
}
