package network

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
)

func TestBufPoolClasses(t *testing.T) {
	var p bufPool
	cases := []struct {
		size    int
		wantCap int
		pooled  bool
	}{
		{8, 4096, true},
		{4096, 4096, true},
		{4097, 8192, true},
		{1 << 20, 1 << 20, true},
		{1<<24 + 1, 1<<24 + 1, false},
	}
	for _, c := range cases {
		b, ref := p.get(c.size)
		if len(b) != c.size || cap(b) != c.wantCap || (ref != nil) != c.pooled {
			t.Fatalf("get(%d): len %d cap %d pooled %v; want cap %d pooled %v", c.size, len(b), cap(b), ref != nil, c.wantCap, c.pooled)
		}
		p.put(ref)
	}
}

// TestRecycledBuffersNeverLeak sends many requests of mixed sizes to a
// handler that copies what it got, recycles the buffer at once and answers
// with the copy: every answer must equal its request, so a recycled buffer
// is never handed out while still in use and never carries old bytes into a
// new request.
func TestRecycledBuffersNeverLeak(t *testing.T) {
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		out := append([]byte(nil), req.Data...)
		req.Recycle()
		req.Recycle() // harmless twice
		r.Respond(&Response{Chunks: []Chunk{{Bytes: out}}})
	})
	_, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 300
	frames := make([][]byte, n)
	for i := range frames {
		payload := make([]byte, rng.IntN(200_000))
		for j := range payload {
			payload[j] = byte(i + j)
		}
		frames[i] = frame(int32(i), payload)
	}
	go func() {
		for _, f := range frames {
			if _, err := c.Write(f); err != nil {
				return
			}
		}
	}()
	for i := range n {
		got, err := readResp(c)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if !bytes.Equal(got, frames[i][4:]) {
			t.Fatalf("response %d differs from its request (%d bytes)", i, len(got))
		}
	}
}
