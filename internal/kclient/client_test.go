package kclient

import (
	"context"
	"errors"
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
