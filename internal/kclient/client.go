package kclient

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
)

// Client sends Kafka requests from this node to another node's Kafka
// listener. All nodes run the same binary, so each request goes at the
// version it is built with, without an ApiVersions round trip. One
// connection per address, one request in flight on it at a time: a caller
// that needs requests in parallel (a follower fetching from several
// leaders) uses a Client per stream.
//
// On a SASL listener the client authenticates each new connection and
// re-authenticates it between requests before the session the server
// granted ends (KIP-368, sasl.go).
type Client struct {
	timeout  time.Duration
	maxBytes int32
	dial     DialFunc
	log      *slog.Logger
	now      func() time.Time
	jitter   func() float64

	mu    sync.Mutex
	conns map[string]*conn
}

type conn struct {
	mu     sync.Mutex
	c      net.Conn
	r      *bufio.Reader
	corrID int32
	// mech authenticates c on a SASL listener (nil: no SASL); reauthAt
	// is when to run the exchange again (zero: never, the server set no
	// session lifetime).
	mech     sasl.Mechanism
	reauthAt time.Time
}

// New returns a client whose requests time out after timeout (or the
// context's deadline, if sooner).
func New(timeout time.Duration) *Client {
	return NewWithOptions(timeout, Options{})
}

// DialFunc opens a connection to another node's listener: TCP, then the
// TLS handshake for an SSL or SASL_SSL listener. On a SASL listener it
// also returns the mechanism to authenticate with (nil otherwise); the
// client runs the exchange on the new connection before its first
// request, and again before the session ends. It is called at each dial,
// so what it returns may change while the client lives.
type DialFunc func(ctx context.Context, addr string) (net.Conn, sasl.Mechanism, error)

// Options are a Client's optional collaborators.
type Options struct {
	// Dial opens connections (nil: plain TCP, no SASL).
	Dial DialFunc
	// Logger says why a connection was re-authenticated or dropped
	// (nil: discarded).
	Logger *slog.Logger
	// Now is the clock of the re-authentication schedule (nil:
	// time.Now); I/O deadlines always use the real clock.
	Now func() time.Time
	// Jitter returns a number in [0, 1) placing each re-authentication
	// within its window (nil: math/rand/v2).
	Jitter func() float64
}

// NewWithOptions is New with the given options.
func NewWithOptions(timeout time.Duration, o Options) *Client {
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, addr string) (net.Conn, sasl.Mechanism, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			return c, nil, err
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	return &Client{timeout: timeout, maxBytes: 64 << 20, dial: o.Dial, log: o.Logger, now: o.Now, jitter: o.Jitter, conns: map[string]*conn{}}
}

// Do sends req to addr with the given client id and returns the decoded
// response. Any transport error drops the connection.
func (c *Client) Do(ctx context.Context, addr, clientID string, req kmsg.Request) (kmsg.Response, error) {
	return c.DoInto(ctx, addr, clientID, req, nil)
}

// DoInto is Do reading the response into *buf, grown as needed and kept
// there for the next call: the response may alias *buf (decoded byte
// fields such as a fetch's records are slices of it) and is valid only
// until the next call with the same buf. A caller that is done with each
// response before it sends the next request (the replica fetcher) then
// allocates no buffer per response, which at replication rates is most of
// a follower's garbage. A nil buf allocates afresh, as Do.
func (c *Client) DoInto(ctx context.Context, addr, clientID string, req kmsg.Request, buf *[]byte) (kmsg.Response, error) {
	c.mu.Lock()
	rc := c.conns[addr]
	if rc == nil {
		rc = &conn{}
		c.conns[addr] = rc
	}
	c.mu.Unlock()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	resp, err := rc.roundTrip(ctx, addr, clientID, c, req, buf)
	if err != nil {
		rc.drop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		return nil, fmt.Errorf("%s to %s: %w", kmsg.NameForKey(req.Key()), addr, err)
	}
	return resp, nil
}

// reuseLimit is the size above which a reused response buffer is dropped
// once a response needs less than a quarter of it: one large catch-up
// response does not pin its buffer for good.
const reuseLimit = 1 << 20

func (rc *conn) roundTrip(ctx context.Context, addr, clientID string, c *Client, req kmsg.Request, reuse *[]byte) (kmsg.Response, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if rc.c != nil {
		// Between requests: re-authenticate if the session reaches its
		// re-authentication point before the server answers this one.
		rc.maybeReauthenticate(ctx, c, addr, clientID, deadline, serverHold(req))
	}
	if rc.c == nil {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		conn, mech, err := c.dial(dctx, addr)
		cancel()
		if err != nil {
			return nil, err
		}
		rc.c, rc.r, rc.mech, rc.reauthAt = conn, bufio.NewReader(conn), mech, time.Time{}
		if mech != nil {
			if err := rc.authenticate(ctx, c, addr, clientID, deadline); err != nil {
				return nil, fmt.Errorf("SASL %s: %w", mech.Name(), err)
			}
		}
	}
	return rc.exchange(ctx, clientID, req, deadline, reuse, c.maxBytes)
}

// exchange writes req on the connection and reads its response, by the
// deadline or until ctx is canceled.
func (rc *conn) exchange(ctx context.Context, clientID string, req kmsg.Request, deadline time.Time, reuse *[]byte, maxBytes int32) (kmsg.Response, error) {
	if err := rc.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// A canceled context interrupts the round trip at once (the read of a
	// long-polling fetch, say): the connection is dropped with the error.
	nc := rc.c
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	rc.corrID++
	// Request header v1 (v2 for flexible requests: a tag section).
	buf := make([]byte, 4, 128)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(rc.corrID))
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(clientID)))
	buf = append(buf, clientID...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	if _, err := rc.c.Write(buf); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(rc.r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 4 || n > maxBytes {
		return nil, fmt.Errorf("response of %d bytes", n)
	}
	var body []byte
	switch {
	case reuse == nil:
		body = make([]byte, n)
	case cap(*reuse) < int(n) || (cap(*reuse) > reuseLimit && int(n) < cap(*reuse)/4):
		*reuse = make([]byte, n)
		body = *reuse
	default:
		body = (*reuse)[:n]
	}
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != rc.corrID {
		return nil, fmt.Errorf("response for correlation id %d, want %d", got, rc.corrID)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() {
		// Response header v1: a tag section; Strata writes none.
		if len(body) == 0 || body[0] != 0 {
			return nil, errors.New("unexpected tagged fields in response header")
		}
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return resp, nil
}

// drop closes the connection; the next request dials again.
func (rc *conn) drop() {
	if rc.c != nil {
		rc.c.Close()
	}
	rc.c, rc.r = nil, nil
}

// Close drops every connection.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, rc := range c.conns {
		rc.mu.Lock()
		rc.drop()
		rc.mu.Unlock()
		delete(c.conns, addr)
	}
}
