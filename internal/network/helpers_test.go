package network

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// handlerFunc adapts a function to Handler.
type handlerFunc func(ctx context.Context, req *Request, r Responder)

func (f handlerFunc) Serve(ctx context.Context, req *Request, r Responder) { f(ctx, req, r) }

// echoHandler answers each request with its own payload.
var echoHandler = handlerFunc(func(_ context.Context, req *Request, r Responder) {
	r.Respond(&Response{Chunks: []Chunk{{Bytes: req.Data[4:]}}})
})

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startTCP serves h on a loopback TCP listener and shuts down at test end.
func startTCP(t testing.TB, cfg Config, h Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		if tt, ok := t.(*testing.T); ok {
			cfg.Logger = testLogger(tt)
		}
	}
	s := New(cfg, h)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// frame builds a request: size, api key 0, version 0, correlation id, payload.
func frame(corr int32, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	binary.BigEndian.PutUint32(b, uint32(8+len(payload)))
	binary.BigEndian.PutUint32(b[8:], uint32(corr))
	return append(b, payload...)
}

func corrOf(req *Request) int32 { return int32(binary.BigEndian.Uint32(req.Data[4:8])) }

// readResp reads one size-prefixed response.
func readResp(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	_, err := io.ReadFull(c, b)
	return b, err
}

// expectClosed checks that the server closes c without sending anything.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("read = %d, %v; want the connection closed", n, err)
	}
}

// pipeListener is a net.Listener over net.Pipe, to exercise non-TCP conns.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial() net.Conn {
	a, b := net.Pipe()
	select {
	case l.conns <- a:
	case <-l.closed:
	}
	return b
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// waitFor polls cond until it holds or the test times out.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
