package network

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestMuteHoldsTheNextRequest checks KIP-219's muting: the throttled
// request is answered at once, and the connection's next request is not
// read until the mute ends.
func TestMuteHoldsTheNextRequest(t *testing.T) {
	const mute = time.Second
	var mu sync.Mutex
	var mutedAt, secondAt time.Time
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		mu.Lock()
		switch corrOf(req) {
		case 1:
			req.Conn.Mute(mute)
			req.Conn.Mute(mute / 10) // a shorter mute does not cut it short
			mutedAt = time.Now()
		case 2:
			secondAt = time.Now()
		}
		mu.Unlock()
		r.Respond(&Response{Chunks: []Chunk{{Bytes: req.Data[4:8]}}})
	})
	_, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	if _, err := c.Write(append(frame(1, nil), frame(2, nil)...)); err != nil {
		t.Fatal(err)
	}
	if _, err := readResp(c); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	early := !secondAt.IsZero()
	mu.Unlock()
	if early {
		t.Fatal("the request after a muting one was read before its answer came back")
	}
	if _, err := readResp(c); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := secondAt.Sub(mutedAt); got < mute {
		t.Fatalf("next request read %v after the mute, want at least %v", got, mute)
	}
}

// TestMutedConnectionCloses checks that a muted connection whose client
// goes away is cleaned up at once rather than after the mute.
func TestMutedConnectionCloses(t *testing.T) {
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		req.Conn.Mute(time.Hour)
		r.Respond(&Response{Chunks: []Chunk{{Bytes: req.Data[4:8]}}})
	})
	s, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	if _, err := c.Write(frame(1, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := readResp(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a muted connection: %v", err)
	}
}
