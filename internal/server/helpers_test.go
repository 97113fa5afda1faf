package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/config"
)

// testNode is an in-process broker on a loopback port.
type testNode struct {
	t    *testing.T
	dir  string
	over map[string]string
	srv  *Server
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("STRATA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode starts a broker with data in dir (a new temp dir if empty).
func startNode(t *testing.T, dir string, overrides map[string]string) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	over := map[string]string{"listen": "127.0.0.1:0", "data.dir": dir, "http.listen": "127.0.0.1:0"}
	for k, v := range overrides {
		over[k] = v
	}
	n := &testNode{t: t, dir: dir, over: over}
	n.start()
	t.Cleanup(func() {
		if n.srv != nil {
			n.stop()
		}
	})
	return n
}

func (n *testNode) start() {
	n.t.Helper()
	cfg, err := config.LoadBroker("", nil, n.over)
	if err != nil {
		n.t.Fatalf("config: %v", err)
	}
	srv, err := Start(cfg, testLogger(n.t))
	if err != nil {
		n.t.Fatalf("start: %v", err)
	}
	n.srv = srv
	// Restart on the same port, so clients' seeds stay valid.
	n.over["listen"] = srv.Addr().String()
}

func (n *testNode) stop() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		n.t.Errorf("shutdown: %v", err)
	}
	n.srv = nil
}

func (n *testNode) restart() {
	n.stop()
	n.start()
}

func (n *testNode) addr() string { return n.over["listen"] }

func (n *testNode) client(opts ...kgo.Opt) *kgo.Client {
	n.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(n.addr())}, opts...)...)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(cl.Close)
	return cl
}

func (n *testNode) admin() *kadm.Client {
	return kadm.NewClient(n.client())
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawConn speaks the wire protocol directly, for requests a client library
// would refuse to send.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	corr int32
}

func (n *testNode) raw() *rawConn {
	n.t.Helper()
	c, err := net.Dial("tcp", n.addr())
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { c.Close() })
	return &rawConn{t: n.t, conn: c, r: bufio.NewReader(c)}
}

// frame sends bytes as a request frame (size prefix added).
func (c *rawConn) frame(b []byte) {
	c.t.Helper()
	buf := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
	if _, err := c.conn.Write(append(buf, b...)); err != nil {
		c.t.Fatal(err)
	}
}

// request encodes req at its set version with a header and sends it.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.corr++
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	c.frame(req.AppendTo(b))
	return c.corr
}

// readResponse reads one response frame and returns the body after the
// correlation id (and tag section when flexible).
func (c *rawConn) readResponse(flexibleHeader bool) (int32, []byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	if flexibleHeader {
		body = body[1:]
	}
	return corr, body, nil
}

// roundTrip sends req and decodes the response into resp.
func (c *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	got, body, err := c.readResponse(resp.IsFlexible() && req.Key() != 18)
	if err != nil {
		c.t.Fatalf("%s: read response: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got != corr {
		c.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// expectClosed checks that the broker closes the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatal("connection still open and sending data, want closed")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatal("connection still open after 10s, want closed")
	}
}
