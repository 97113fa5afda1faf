package quorum

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

const (
	dialTimeout      = 2 * time.Second
	handshakeTimeout = 5 * time.Second
	writeTimeout     = 5 * time.Second
	sendQueueLen     = 1024
	backoffMin       = 20 * time.Millisecond
	backoffMax       = time.Second
	// A second connection claiming a node id whose current connection
	// delivered a message this recently is a duplicate node, not a
	// reconnect.
	duplicateWindow = 2 * time.Second
)

type transportConfig struct {
	id        uint64
	clusterID string
	peers     map[uint64]string // the other voters
	ln        net.Listener      // nil: accept nothing (a single voter)
	maxFrame  int
	log       *slog.Logger
	// deliver hands a received message to the node; false once it stopped.
	deliver func(raftpb.Message) bool
	// report tells raft how a message fared; it may block until the node
	// takes it, so it is only called from transport goroutines.
	report func(report)
	// view serves observers' fetches; nil: observers are refused.
	view *logView
}

// transport sends each peer's messages on one outgoing connection, through
// a bounded queue, and receives on the connections peers dial in.
type transport struct {
	transportConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    map[uint64]*peer // fixed at construction

	mu        sync.Mutex
	closed    bool
	conns     map[net.Conn]struct{}
	inbound   map[uint64]*inConn
	observers map[net.Conn]uint64 // observer connections and their ids
}

type inConn struct {
	conn     net.Conn
	lastRecv atomic.Int64 // unix nanoseconds
}

func newTransport(cfg transportConfig) *transport {
	ctx, cancel := context.WithCancel(context.Background())
	t := &transport{
		transportConfig: cfg,
		ctx:             ctx,
		cancel:          cancel,
		out:             map[uint64]*peer{},
		conns:           map[net.Conn]struct{}{},
		inbound:         map[uint64]*inConn{},
		observers:       map[net.Conn]uint64{},
	}
	for id, addr := range cfg.peers {
		t.out[id] = &peer{t: t, id: id, addr: addr, q: make(chan raftpb.Message, sendQueueLen),
			log: cfg.log.With("peer", id, "peer_addr", addr)}
	}
	return t
}

func (t *transport) start() {
	if t.ln != nil {
		t.wg.Add(1)
		go t.acceptLoop()
	}
	t.wg.Add(len(t.out))
	for _, p := range t.out {
		go p.run()
	}
}

// stop closes the listener and every connection and waits for the
// transport's goroutines.
func (t *transport) stop() {
	t.cancel()
	if t.ln != nil {
		t.ln.Close()
	}
	t.mu.Lock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// send queues msgs without blocking. Messages that do not fit are dropped
// (raft retransmits); the reports for them are returned for the caller to
// hand to raft itself.
func (t *transport) send(msgs []raftpb.Message) []report {
	var reps []report
	for _, m := range msgs {
		p := t.out[m.To]
		if p == nil {
			t.log.Warn("dropping message for a node that is not a peer", "to", m.To, "type", m.Type.String())
			continue
		}
		select {
		case p.q <- m:
		default:
			p.log.Debug("send queue full, dropping message", "type", m.Type.String())
			reps = append(reps, failureReport(m))
		}
	}
	return reps
}

func failureReport(m raftpb.Message) report {
	if m.Type == raftpb.MsgSnap {
		return report{to: m.To, snapshot: true, status: raft.SnapshotFailure}
	}
	return report{to: m.To}
}

func (t *transport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *transport) untrack(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
	c.Close()
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			t.log.Warn("accept failed", "error", err)
			select {
			case <-t.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if !t.track(c) {
			c.Close()
			return
		}
		t.wg.Add(1)
		go t.serve(c)
	}
}

// serve runs one inbound connection: handshake, then frames into the node,
// or fetches for an observer. Anything malformed closes it.
func (t *transport) serve(c net.Conn) {
	defer t.wg.Done()
	defer t.untrack(c)
	remote := c.RemoteAddr().String()
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	h, err := readHello(c)
	if err != nil {
		t.log.Warn("closing connection: bad handshake", "remote", remote, "error", err)
		return
	}
	if h.observer {
		t.serveObserver(c, h, remote)
		return
	}
	ic := &inConn{conn: c}
	status := t.admit(h, ic)
	_, werr := c.Write(appendAnswer(nil, answer{version: wireVersion, status: status, id: t.id, clusterID: t.clusterID}))
	if status != hsOK {
		t.log.Warn("rejected peer connection", "remote", remote, "reason", hsStatusText(status),
			"peer", h.from, "peer_cluster_id", h.clusterID, "cluster_id", t.clusterID)
		return
	}
	defer t.release(h.from, ic)
	if werr != nil {
		t.log.Debug("peer connection failed during handshake", "peer", h.from, "error", werr)
		return
	}
	c.SetDeadline(time.Time{})
	t.log.Debug("peer connected", "peer", h.from, "remote", remote)
	br := bufio.NewReaderSize(c, 64<<10)
	for {
		m, err := readFrame(br, t.maxFrame)
		if err != nil {
			if t.ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				t.log.Debug("peer connection closed", "peer", h.from, "error", err)
			} else {
				t.log.Warn("closing peer connection: bad frame", "peer", h.from, "remote", remote, "error", err)
			}
			return
		}
		if err := checkPeerMessage(&m, h.from, t.id); err != nil {
			t.log.Warn("closing peer connection: bad message", "peer", h.from, "remote", remote, "error", err)
			return
		}
		ic.lastRecv.Store(time.Now().UnixNano())
		if !t.deliver(m) {
			return
		}
	}
}

// checkHello applies what every hello, a voter's or an observer's, must
// match: the wire version, this cluster and this node as the target.
func (t *transport) checkHello(h hello) byte {
	switch {
	case h.version != wireVersion:
		return hsBadVersion
	case h.clusterID != t.clusterID:
		return hsWrongCluster
	case h.to != t.id:
		return hsWrongTarget
	}
	return hsOK
}

// admit checks a hello and registers the connection as the peer's.
func (t *transport) admit(h hello, ic *inConn) byte {
	if st := t.checkHello(h); st != hsOK {
		return st
	}
	switch {
	case h.from == t.id:
		return hsDuplicateNode
	case t.peers[h.from] == "":
		return hsUnknownNode
	}
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.inbound[h.from]; old != nil {
		if now-old.lastRecv.Load() < int64(duplicateWindow) {
			return hsDuplicateNode
		}
		// The old connection went quiet: the peer reconnected.
		old.conn.Close()
	}
	ic.lastRecv.Store(now)
	t.inbound[h.from] = ic
	return hsOK
}

func (t *transport) release(id uint64, ic *inConn) {
	t.mu.Lock()
	if t.inbound[id] == ic {
		delete(t.inbound, id)
	}
	t.mu.Unlock()
}

// dial connects to peer id and runs the handshake.
func (t *transport) dial(id uint64, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(t.ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if !t.track(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	fail := func(err error) (net.Conn, error) {
		t.untrack(c)
		return nil, err
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := c.Write(appendHello(nil, hello{version: wireVersion, from: t.id, to: id, clusterID: t.clusterID})); err != nil {
		return fail(fmt.Errorf("send handshake: %w", err))
	}
	a, err := readAnswer(c)
	switch {
	case err != nil:
		return fail(err)
	case a.status != hsOK:
		return fail(fmt.Errorf("peer refused the handshake: %s (it is node %d of cluster %q)", hsStatusText(a.status), a.id, a.clusterID))
	case a.clusterID != t.clusterID:
		return fail(fmt.Errorf("%w: peer at %s is in cluster %q", ErrClusterIDMismatch, addr, a.clusterID))
	case a.id != id:
		return fail(fmt.Errorf("peer at %s is node %d, not node %d", addr, a.id, id))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// peer owns the outgoing connection to one node.
type peer struct {
	t    *transport
	id   uint64
	addr string
	q    chan raftpb.Message
	log  *slog.Logger

	conn    net.Conn
	bw      *bufio.Writer
	buf     []byte
	backoff time.Duration
	retryAt time.Time
	failing bool
}

func (p *peer) run() {
	defer p.t.wg.Done()
	defer p.disconnect()
	p.backoff = backoffMin
	for {
		var m raftpb.Message
		select {
		case <-p.t.ctx.Done():
			return
		case m = <-p.q:
		}
		if err := p.encode(&m); err != nil {
			p.log.Error("cannot send message", "type", m.Type.String(), "error", err)
			p.fail(m)
			continue
		}
		if p.conn == nil && !p.connect() {
			p.fail(m)
			continue
		}
		if err := p.write(m.Type); err != nil {
			if p.t.ctx.Err() != nil {
				return
			}
			p.log.Warn("send to peer failed", "type", m.Type.String(), "error", err)
			p.disconnect()
			p.failing = true
			p.retryAt = time.Now().Add(p.nextBackoff())
			p.fail(m)
			continue
		}
		if m.Type == raftpb.MsgSnap {
			p.log.Info("sent snapshot", "index", m.Snapshot.Metadata.Index, "bytes", len(m.Snapshot.Data))
			p.t.report(report{to: p.id, snapshot: true, status: raft.SnapshotFinish})
		}
	}
}

// connect dials unless backing off; on failure the queued messages are
// dropped, as raft will resend what still matters.
func (p *peer) connect() bool {
	if time.Now().Before(p.retryAt) {
		return false
	}
	c, err := p.t.dial(p.id, p.addr)
	if err != nil {
		if p.t.ctx.Err() != nil {
			return false
		}
		if !p.failing {
			p.log.Warn("cannot reach peer", "error", err)
		} else {
			p.log.Debug("cannot reach peer", "error", err)
		}
		p.failing = true
		p.retryAt = time.Now().Add(p.nextBackoff())
		p.failQueued()
		return false
	}
	if p.failing {
		p.log.Info("reconnected to peer")
	}
	p.failing = false
	p.backoff = backoffMin
	p.conn = c
	p.bw = bufio.NewWriterSize(c, 64<<10)
	return true
}

func (p *peer) nextBackoff() time.Duration {
	d := p.backoff
	p.backoff = min(2*p.backoff, backoffMax)
	return d/2 + rand.N(d/2+1)
}

func (p *peer) disconnect() {
	if p.conn != nil {
		p.t.untrack(p.conn)
		p.conn, p.bw = nil, nil
	}
}

// encode frames m into p.buf.
func (p *peer) encode(m *raftpb.Message) error {
	if cap(p.buf) > 1<<20 {
		p.buf = nil // do not pin a snapshot's buffer
	}
	buf, err := appendFrame(p.buf[:0], m)
	if err != nil {
		return err
	}
	p.buf = buf
	if n := len(buf) - frameHdrLen; n > p.t.maxFrame {
		return fmt.Errorf("%d bytes exceed the %d-byte message limit", n, p.t.maxFrame)
	}
	return nil
}

// write sends the frame in p.buf, flushing when nothing else is queued (or
// for a snapshot, which is then known to be handed to the peer's kernel).
func (p *peer) write(typ raftpb.MessageType) error {
	timeout := writeTimeout + time.Duration(len(p.buf)>>20)*100*time.Millisecond
	p.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := p.bw.Write(p.buf); err != nil {
		return err
	}
	if typ == raftpb.MsgSnap || len(p.q) == 0 {
		return p.bw.Flush()
	}
	return nil
}

func (p *peer) fail(m raftpb.Message) { p.t.report(failureReport(m)) }

// failQueued drops what is queued, reporting the peer unreachable once and
// every snapshot as failed.
func (p *peer) failQueued() {
	unreachable := false
	for {
		select {
		case m := <-p.q:
			if m.Type == raftpb.MsgSnap {
				p.t.report(failureReport(m))
			} else if !unreachable {
				unreachable = true
				p.t.report(report{to: p.id})
			}
		default:
			return
		}
	}
}
