package kclient

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestCancelInterruptsRoundTrip: a request whose peer never answers (a
// long-polling fetch) ends as soon as its context is canceled, not at the
// client's timeout, and the next request dials afresh.
func TestCancelInterruptsRoundTrip(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // read nothing, answer nothing
		}
	}()
	c := New(time.Minute)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(ctx, ln.Addr().String(), "test", kmsg.NewPtrApiVersionsRequest())
		done <- err
	}()
	first := <-accepted // the request is in flight
	defer first.Close()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Do after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Do did not return after its context was canceled")
	}
	// The interrupted connection was dropped: the next request dials again.
	go c.Do(context.Background(), ln.Addr().String(), "test", kmsg.NewPtrApiVersionsRequest())
	select {
	case second := <-accepted:
		second.Close()
	case <-time.After(30 * time.Second):
		t.Fatal("no new connection after the interrupted one")
	}
}

// TestDoIntoReusesBuffer: responses read with DoInto land in the caller's
// buffer, which is reused while big enough and replaced when too small
// (or far too big).
func TestDoIntoReusesBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The peer answers each request with an ApiVersions response listing
	// keys[i] API keys.
	keys := []int{3, 2, 50, 1}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		for _, k := range keys {
			var size [4]byte
			if _, err := io.ReadFull(c, size[:]); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint32(size[:]))
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			resp := kmsg.NewPtrApiVersionsResponse()
			resp.Version = 0
			for i := range k {
				resp.ApiKeys = append(resp.ApiKeys, kmsg.ApiVersionsResponseApiKey{ApiKey: int16(i), MaxVersion: 1})
			}
			body := binary.BigEndian.AppendUint32(nil, binary.BigEndian.Uint32(req[4:8])) // correlation id
			body = resp.AppendTo(body)
			c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
		}
	}()
	c := New(time.Minute)
	defer c.Close()
	var buf []byte
	var firsts []*byte
	for i, k := range keys {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 0
		resp, err := c.DoInto(context.Background(), ln.Addr().String(), "test", req, &buf)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := len(resp.(*kmsg.ApiVersionsResponse).ApiKeys); got != k {
			t.Fatalf("request %d: %d keys, want %d", i, got, k)
		}
		firsts = append(firsts, &buf[:1][0])
	}
	// 3 keys, then 2 (fits: same array), then 50 (grows), then 1 (fits).
	if firsts[0] != firsts[1] || firsts[1] == firsts[2] || firsts[2] != firsts[3] {
		t.Fatalf("buffer reuse: arrays %p %p %p %p, want the first two and the last two the same", firsts[0], firsts[1], firsts[2], firsts[3])
	}
}
