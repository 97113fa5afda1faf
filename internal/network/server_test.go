package network

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFramingRejectsBadSizes(t *testing.T) {
	var served atomic.Int32
	h := handlerFunc(func(ctx context.Context, req *Request, r Responder) {
		served.Add(1)
		echoHandler(ctx, req, r)
	})
	_, addr := startTCP(t, Config{MaxRequestSize: 1 << 20}, h)
	tests := []struct {
		name string
		size uint32
	}{
		{"negative", 0xffffffff},
		{"min int32", 0x80000000},
		{"zero", 0},
		{"shorter than a request header", 7},
		{"one over max", 1<<20 + 1},
		{"2 GiB claim", 0x7fffffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, addr)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], tt.size)
			if _, err := c.Write(b[:]); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d bytes after a size claim of %d", d, tt.size)
			}
		})
	}
	if n := served.Load(); n != 0 {
		t.Errorf("handler served %d requests, want 0", n)
	}

	// The smallest and the largest legal sizes still work.
	c := dial(t, addr)
	for _, payload := range [][]byte{nil, make([]byte, 1<<20-8)} {
		if _, err := c.Write(frame(1, payload)); err != nil {
			t.Fatal(err)
		}
		got, err := readResp(c)
		if err != nil {
			t.Fatal(err)
		}
		want := append(binary.BigEndian.AppendUint32(nil, 1), payload...)
		if !bytes.Equal(got, want) {
			t.Fatalf("echo of %d bytes: got %d bytes back", len(payload), len(got))
		}
	}
}

// A handler that completes requests in random order, some with NoResponse,
// still gets its responses written in request order.
func TestPipelinedOutOfOrderResponsesComeBackInOrder(t *testing.T) {
	const n = 2000
	type pending struct {
		corr int32
		r    Responder
	}
	work := make(chan pending, n)
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		work <- pending{corrOf(req), r}
	})
	_, addr := startTCP(t, Config{MaxInFlightPerConn: 37}, h)

	// Complete whatever is outstanding in a random order.
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		var batch []pending
		for {
			var p pending
			select {
			case p = <-work:
			case <-stop:
				return
			}
			batch = append(batch[:0], p)
		more:
			for {
				select {
				case p := <-work:
					batch = append(batch, p)
				default:
					break more
				}
			}
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			for _, p := range batch {
				if p.corr%5 == 0 {
					p.r.NoResponse()
					continue
				}
				body := binary.BigEndian.AppendUint32(nil, uint32(p.corr))
				// Split into several chunks to exercise writev coalescing.
				p.r.Respond(&Response{Chunks: []Chunk{{Bytes: body[:1]}, {Bytes: body[1:]}, {Bytes: []byte("xyz")}}})
			}
		}
	}()

	c := dial(t, addr)
	go func() {
		var buf []byte
		for i := range int32(n) {
			buf = append(buf, frame(i, nil)...)
		}
		_, _ = c.Write(buf)
	}()
	for i := range int32(n) {
		if i%5 == 0 {
			continue
		}
		got, err := readResp(c)
		if err != nil {
			t.Fatalf("response for %d: %v", i, err)
		}
		if len(got) != 7 || int32(binary.BigEndian.Uint32(got)) != i || string(got[4:]) != "xyz" {
			t.Fatalf("response %x, want correlation id %d then xyz", got, i)
		}
	}
}

func TestInFlightLimit(t *testing.T) {
	const limit, n = 8, 40
	var mu sync.Mutex
	var served, completed, maxOutstanding int
	var waiting []Responder
	h := handlerFunc(func(_ context.Context, req *Request, r Responder) {
		mu.Lock()
		defer mu.Unlock()
		served++
		maxOutstanding = max(maxOutstanding, served-completed)
		waiting = append(waiting, r)
	})
	_, addr := startTCP(t, Config{MaxInFlightPerConn: limit}, h)
	c := dial(t, addr)
	var buf []byte
	for i := range int32(n) {
		buf = append(buf, frame(i, nil)...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the limit to be reached", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return served == limit
	})
	for i := range n {
		var r Responder
		waitFor(t, "a waiting request", func() bool {
			mu.Lock()
			defer mu.Unlock()
			if len(waiting) == 0 {
				return false
			}
			r, waiting = waiting[0], waiting[1:]
			completed++
			return true
		})
		r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte{byte(i)}}}})
		got, err := readResp(c)
		if err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("response %d: %x, %v", i, got, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if maxOutstanding != limit {
		t.Errorf("max outstanding requests = %d, want %d", maxOutstanding, limit)
	}
}

func TestCloseConnFlushesEarlierResponses(t *testing.T) {
	h := handlerFunc(func(ctx context.Context, req *Request, r Responder) {
		if corrOf(req) == 2 {
			r.CloseConn(errors.New("unsupported version"))
			return
		}
		echoHandler(ctx, req, r)
	})
	_, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	var buf []byte
	for i := range int32(4) {
		buf = append(buf, frame(i, []byte("p"))...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	for i := range int32(2) {
		got, err := readResp(c)
		if err != nil || int32(binary.BigEndian.Uint32(got)) != i {
			t.Fatalf("response %d: %x, %v", i, got, err)
		}
	}
	expectClosed(t, c)
}

func TestLateAndDoubleCompletion(t *testing.T) {
	rs := make(chan Responder, 1)
	h := handlerFunc(func(_ context.Context, _ *Request, r Responder) { rs <- r })
	s, addr := startTCP(t, Config{}, h)

	// Double completion: the first answer is written once, the second is
	// released and dropped.
	c := dial(t, addr)
	if _, err := c.Write(frame(1, nil)); err != nil {
		t.Fatal(err)
	}
	r := <-rs
	var released atomic.Int32
	mk := func(b string) *Response {
		return &Response{Chunks: []Chunk{{Bytes: []byte(b)}}, Release: func() { released.Add(1) }}
	}
	r.Respond(mk("first"))
	r.Respond(mk("second"))
	r.NoResponse()
	if got, err := readResp(c); err != nil || string(got) != "first" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := c.Write(frame(2, nil)); err != nil {
		t.Fatal(err)
	}
	r = <-rs
	r.Respond(mk("next"))
	if got, err := readResp(c); err != nil || string(got) != "next" {
		t.Fatalf("got %q, %v", got, err)
	}
	waitFor(t, "releases", func() bool { return released.Load() == 3 })

	// Late completion after the client went away: no block, released.
	if _, err := c.Write(frame(3, nil)); err != nil {
		t.Fatal(err)
	}
	r = <-rs
	_ = c.Close()
	waitFor(t, "the connection to close", func() bool { return s.NumConns() == 0 })
	r.Respond(mk("late"))
	r.Respond(mk("later"))
	if got := released.Load(); got != 5 {
		t.Errorf("released %d responses, want 5", got)
	}
}

func TestHandlerPanicClosesOnlyThatConnection(t *testing.T) {
	h := handlerFunc(func(ctx context.Context, req *Request, r Responder) {
		if string(req.Data[8:]) == "panic" {
			panic("boom")
		}
		echoHandler(ctx, req, r)
	})
	_, addr := startTCP(t, Config{}, h)
	a, b := dial(t, addr), dial(t, addr)
	if _, err := a.Write(frame(1, []byte("panic"))); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, a)
	if _, err := b.Write(frame(2, []byte("ok"))); err != nil {
		t.Fatal(err)
	}
	if got, err := readResp(b); err != nil || string(got[4:]) != "ok" {
		t.Fatalf("other connection: %q, %v", got, err)
	}
}

func TestShutdownWaitsForInFlight(t *testing.T) {
	rs := make(chan Responder, 3)
	h := handlerFunc(func(_ context.Context, _ *Request, r Responder) { rs <- r })
	s, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	var buf []byte
	for i := range int32(3) {
		buf = append(buf, frame(i, nil)...)
	}
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	var held []Responder
	for range 3 {
		held = append(held, <-rs)
	}
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	// The listener closes; the connection stays while answers are pending.
	waitFor(t, "the listener to close", func() bool {
		c2, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c2.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with requests in flight", err)
	default:
	}
	for i, r := range held {
		r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte{byte(i)}}}})
	}
	for i := range 3 {
		if got, err := readResp(c); err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("response %d: %x, %v", i, got, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	expectClosed(t, c)
}

func TestShutdownDeadlineClosesConnections(t *testing.T) {
	rs := make(chan Responder, 1)
	h := handlerFunc(func(_ context.Context, _ *Request, r Responder) { rs <- r })
	s, addr := startTCP(t, Config{}, h)
	c := dial(t, addr)
	if _, err := c.Write(frame(1, nil)); err != nil {
		t.Fatal(err)
	}
	r := <-rs
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want context.Canceled", err)
	}
	expectClosed(t, c)
	var released atomic.Bool
	r.Respond(&Response{Release: func() { released.Store(true) }})
	waitFor(t, "the response to a killed connection to be released", released.Load)
}

func TestIdleTimeout(t *testing.T) {
	rs := make(chan Responder, 1)
	h := handlerFunc(func(_ context.Context, _ *Request, r Responder) { rs <- r })
	s, addr := startTCP(t, Config{IdleTimeout: 20 * time.Millisecond}, h)

	// With a request in flight the connection is not idle.
	busy := dial(t, addr)
	if _, err := busy.Write(frame(1, nil)); err != nil {
		t.Fatal(err)
	}
	r := <-rs
	idle := dial(t, addr)
	expectClosed(t, idle)
	waitFor(t, "the idle connection to go", func() bool { return s.NumConns() == 1 })
	r.Respond(&Response{Chunks: []Chunk{{Bytes: []byte("done")}}})
	if got, err := readResp(busy); err != nil || string(got) != "done" {
		t.Fatalf("got %q, %v", got, err)
	}
	expectClosed(t, busy)
}

func TestConnInfoAndContext(t *testing.T) {
	type seen struct {
		id     uint64
		remote string
		ctx    context.Context
	}
	ch := make(chan seen, 2)
	h := handlerFunc(func(ctx context.Context, req *Request, r Responder) {
		ch <- seen{req.Conn.ID, req.Conn.RemoteAddr.String(), ctx}
		r.NoResponse()
	})
	_, addr := startTCP(t, Config{}, h)
	a, b := dial(t, addr), dial(t, addr)
	for _, c := range []net.Conn{a, b} {
		if _, err := c.Write(frame(0, nil)); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2 := <-ch, <-ch
	if s1.id == s2.id {
		t.Errorf("two connections share id %d", s1.id)
	}
	local := map[string]bool{a.LocalAddr().String(): true, b.LocalAddr().String(): true}
	if !local[s1.remote] || !local[s2.remote] {
		t.Errorf("remote addrs %s, %s; want %v", s1.remote, s2.remote, local)
	}
	// Closing the client cancels the context handlers wait on.
	_ = a.Close()
	_ = b.Close()
	for _, s := range []seen{s1, s2} {
		select {
		case <-s.ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("context not cancelled after the client closed")
		}
	}
}

func ExampleServer() {
	s := New(Config{}, handlerFunc(func(_ context.Context, req *Request, r Responder) {
		r.Respond(&Response{Chunks: []Chunk{{Bytes: req.Data[4:8]}}})
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() { _ = s.Serve(ln) }()
	c, _ := net.Dial("tcp", ln.Addr().String())
	_, _ = c.Write(frame(42, nil))
	got, _ := readResp(c)
	fmt.Println(binary.BigEndian.Uint32(got))
	_ = s.Shutdown(context.Background())
	// Output: 42
}
