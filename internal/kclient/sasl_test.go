package kclient

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

// saslPeer is a fake SASL listener: it answers SaslHandshake,
// SaslAuthenticate (granting lifetime), ApiVersions and Fetch, and
// records what each connection sent, in order, as "<conn>:<API>".
type saslPeer struct {
	t  *testing.T
	ln net.Listener

	mu       sync.Mutex
	lifetime time.Duration
	events   []string
	tokens   []string // the SASL messages received
	// failNext fails the next SaslAuthenticate of an authenticated
	// connection (a refused re-authentication).
	failNext bool
	// violations are requests that came between a SaslHandshake and the
	// end of its exchange.
	violations []string
	conns      int
}

func newSASLPeer(t *testing.T, lifetime time.Duration) *saslPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &saslPeer{t: t, ln: ln, lifetime: lifetime}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			id := p.conns
			p.mu.Unlock()
			go p.serve(c, id)
		}
	}()
	return p
}

func (p *saslPeer) addr() string { return p.ln.Addr().String() }

// take returns the events since the last call.
func (p *saslPeer) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events
	p.events = nil
	return ev
}

func (p *saslPeer) serve(c net.Conn, id int) {
	defer c.Close()
	authenticated, inExchange := false, false
	for {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		key, version := int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
		corr := frame[4:8]
		body := frame[10+int(binary.BigEndian.Uint16(frame[8:])):]
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if req.IsFlexible() {
			body = body[1:]
		}
		if err := req.ReadFrom(body); err != nil {
			p.t.Errorf("conn %d: decode %s: %v", id, kmsg.NameForKey(key), err)
			return
		}
		p.mu.Lock()
		p.events = append(p.events, fmt.Sprintf("%d:%s", id, kmsg.NameForKey(key)))
		var resp kmsg.Response
		close := false
		switch r := req.(type) {
		case *kmsg.SASLHandshakeRequest:
			inExchange = true
			resp = r.ResponseKind()
		case *kmsg.SASLAuthenticateRequest:
			ar := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			p.tokens = append(p.tokens, string(r.SASLAuthBytes))
			if authenticated && p.failNext {
				p.failNext = false
				ar.ErrorCode = kerr.SaslAuthenticationFailed.Code
				msg := "token refused"
				ar.ErrorMessage = &msg
				close = true
			} else {
				ar.SessionLifetimeMillis = p.lifetime.Milliseconds()
				authenticated, inExchange = true, false
			}
			resp = ar
		default:
			if !authenticated || inExchange {
				p.violations = append(p.violations, fmt.Sprintf("%d:%s (authenticated %v, in an exchange %v)", id, kmsg.NameForKey(key), authenticated, inExchange))
			}
			resp = r.ResponseKind()
		}
		p.mu.Unlock()
		out := append([]byte(nil), corr...)
		if resp.IsFlexible() {
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(out))), out...)); err != nil || close {
			return
		}
	}
}

// tokenMech is OAUTHBEARER with a new token for each exchange.
func tokenMech(n *atomic.Int32) sasl.Mechanism {
	return oauth.Oauth(func(context.Context) (oauth.Auth, error) {
		return oauth.Auth{Token: fmt.Sprintf("token-%d", n.Add(1))}, nil
	})
}

// reauthClient is a client of p whose re-authentication clock is *now
// and whose jitter is j; its log goes to logs.
func reauthClient(p *saslPeer, now *atomic.Int64, j float64, logs io.Writer) (*Client, *atomic.Int32) {
	var tokens atomic.Int32
	c := NewWithOptions(time.Minute, Options{
		Dial: func(ctx context.Context, addr string) (net.Conn, sasl.Mechanism, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "tcp", addr)
			return conn, tokenMech(&tokens), err
		},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return time.Unix(0, now.Load()) },
		Jitter: func() float64 { return j },
	})
	return c, &tokens
}

func apiVersions() kmsg.Request {
	r := kmsg.NewPtrApiVersionsRequest()
	r.SetVersion(0)
	return r
}

func fetchWaiting(d time.Duration) kmsg.Request {
	r := kmsg.NewPtrFetchRequest()
	r.SetVersion(12)
	r.MaxWaitMillis = int32(d.Milliseconds())
	return r
}

// TestReauthenticateBeforeSessionEnds walks a connection through its
// sessions with an injected clock (a lifetime of 10 s, re-authentication
// at 90% with this jitter): the exchange runs again on the same
// connection, between two requests, once the re-authentication point is
// reached, with a fresh OAUTHBEARER token, and not before; a fetch that
// the server may hold past that point re-authenticates first; a
// connection idle past the end of its session re-authenticates at its
// next request (Kafka's brokers accept that); a refused re-authentication
// closes the connection with a log line saying why, and the request goes
// on a new one.
func TestReauthenticateBeforeSessionEnds(t *testing.T) {
	p := newSASLPeer(t, 10*time.Second)
	var now atomic.Int64
	var logs bytes.Buffer
	c, tokens := reauthClient(p, &now, 0.5, &logs)
	defer c.Close()
	at := func(d time.Duration) { now.Store(int64(d)) }
	do := func(req kmsg.Request, want ...string) {
		t.Helper()
		if _, err := c.Do(context.Background(), p.addr(), "test", req); err != nil {
			t.Fatalf("at %v: %v", time.Unix(0, now.Load()).Sub(time.Unix(0, 0)), err)
		}
		if got := p.take(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("at %v the peer saw %v, want %v", time.Unix(0, now.Load()).Sub(time.Unix(0, 0)), got, want)
		}
	}
	auth := func(conn int) []string {
		return []string{fmt.Sprintf("%d:SASLHandshake", conn), fmt.Sprintf("%d:SASLAuthenticate", conn)}
	}

	// Dialed and authenticated at 0: re-authentication due at 9 s, the
	// session ends at 10 s.
	do(apiVersions(), append(auth(1), "1:ApiVersions")...)
	at(8999 * time.Millisecond)
	do(apiVersions(), "1:ApiVersions")
	at(9 * time.Second)
	do(apiVersions(), append(auth(1), "1:ApiVersions")...)
	p.mu.Lock()
	sent := p.tokens
	p.mu.Unlock()
	if tokens.Load() != 2 || len(sent) != 2 || sent[0] == sent[1] {
		t.Fatalf("the exchanges sent %q (%d tokens made): want a fresh token for the re-authentication", sent, tokens.Load())
	}

	// Next at 18 s. A fetch at 17.4 s that the server may hold for 500 ms
	// is answered before then: no re-authentication. One at 17.6 s could
	// be answered after: re-authenticate first (next at 26.6 s).
	at(17400 * time.Millisecond)
	do(fetchWaiting(500*time.Millisecond), "1:Fetch")
	at(17600 * time.Millisecond)
	do(fetchWaiting(500*time.Millisecond), append(auth(1), "1:Fetch")...)
	at(26500 * time.Millisecond)
	do(apiVersions(), "1:ApiVersions")

	// Idle past the end of the session (27.6 s): re-authenticated at the
	// next request, on the same connection (next at 37 s).
	at(28 * time.Second)
	do(apiVersions(), append(auth(1), "1:ApiVersions")...)

	// A refused re-authentication (due at 37 s) closes the connection;
	// the request goes on a new one.
	p.mu.Lock()
	p.failNext = true
	p.mu.Unlock()
	at(37 * time.Second)
	do(apiVersions(), append(append(auth(1), auth(2)...), "2:ApiVersions")...)
	if !strings.Contains(logs.String(), "SASL re-authentication failed") || !strings.Contains(logs.String(), "token refused") {
		t.Fatalf("no log line saying why the re-authentication failed:\n%s", logs.String())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.violations) > 0 {
		t.Fatalf("requests inside an exchange: %v", p.violations)
	}
}

// TestReauthenticationWindow: re-authentication comes between 85% and
// 95% of the lifetime, where the jitter puts it.
func TestReauthenticationWindow(t *testing.T) {
	for _, tc := range []struct {
		jitter float64
		due    time.Duration
	}{{0, 8500 * time.Millisecond}, {0.999, 9499 * time.Millisecond}} {
		p := newSASLPeer(t, 10*time.Second)
		var now atomic.Int64
		c, _ := reauthClient(p, &now, tc.jitter, io.Discard)
		for _, at := range []time.Duration{0, tc.due - time.Millisecond, tc.due} {
			now.Store(int64(at))
			if _, err := c.Do(context.Background(), p.addr(), "test", apiVersions()); err != nil {
				t.Fatal(err)
			}
		}
		want := "1:SASLHandshake 1:SASLAuthenticate 1:ApiVersions 1:ApiVersions 1:SASLHandshake 1:SASLAuthenticate 1:ApiVersions"
		if got := strings.Join(p.take(), " "); got != want {
			t.Errorf("jitter %v, due at %v: the peer saw %s, want %s", tc.jitter, tc.due, got, want)
		}
		c.Close()
	}
}

// TestNoReauthenticationWithoutLifetime: a server that sets no session
// lifetime is never re-authenticated with.
func TestNoReauthenticationWithoutLifetime(t *testing.T) {
	p := newSASLPeer(t, 0)
	var now atomic.Int64
	c, _ := reauthClient(p, &now, 0, io.Discard)
	defer c.Close()
	for _, at := range []time.Duration{0, time.Hour, 1000 * time.Hour} {
		now.Store(int64(at))
		if _, err := c.Do(context.Background(), p.addr(), "test", apiVersions()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := strings.Join(p.take(), " "), "1:SASLHandshake 1:SASLAuthenticate 1:ApiVersions 1:ApiVersions 1:ApiVersions"; got != want {
		t.Fatalf("the peer saw %s, want %s", got, want)
	}
}

// TestReauthenticationDoesNotInterleave: callers sharing a connection
// while its sessions come due never put a request between a SaslHandshake
// and the end of its exchange.
func TestReauthenticationDoesNotInterleave(t *testing.T) {
	p := newSASLPeer(t, 20*time.Second)
	var now atomic.Int64
	c, _ := reauthClient(p, &now, 0.5, io.Discard)
	defer c.Close()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// 400 requests a quarter of a second apart: 100 s, five
			// sessions of 18 s.
			for range 100 {
				now.Add(int64(time.Second / 4))
				if _, err := c.Do(context.Background(), p.addr(), "test", apiVersions()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	ev := p.take()
	reauths := strings.Count(strings.Join(ev, " "), "SASLHandshake") - 1
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.violations) > 0 || p.conns != 1 || reauths < 4 {
		t.Fatalf("%d connections, %d re-authentications (want 1 and at least 4), requests inside an exchange: %v", p.conns, reauths, p.violations)
	}
}
