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
	// identifyTimeout bounds the dial-back that checks a hello's
	// incarnation (see admit).
	identifyTimeout = 3 * time.Second
	// probeTimeout bounds the write of a probe byte (see admit).
	probeTimeout = time.Second
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
	// dialFn connects to a peer (TLS, say); nil: plain TCP.
	dialFn DialFunc
}

// transport sends each peer's messages on one outgoing connection, through
// a bounded queue, and receives on the connections peers dial in.
type transport struct {
	transportConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    map[uint64]*peer // fixed at construction

	// incarnation identifies this process to its peers: random and
	// non-zero, drawn anew at every start (see admit).
	incarnation uint64

	mu        sync.Mutex
	closed    bool
	conns     map[net.Conn]struct{}
	inbound   map[uint64]*inConn
	observers map[net.Conn]uint64 // observer connections and their ids
	// voterIncarnation holds, for each peer, the incarnation of the
	// process last found answering at its voter address.
	voterIncarnation map[uint64]uint64
}

type inConn struct {
	conn        net.Conn
	incarnation uint64       // 0: a version 1 hello
	lastRecv    atomic.Int64 // unix nanoseconds, for the logs
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
		incarnation:     newIncarnation(),

		voterIncarnation: map[uint64]uint64{},
	}
	for id, addr := range cfg.peers {
		t.out[id] = &peer{t: t, id: id, addr: addr, q: make(chan raftpb.Message, sendQueueLen),
			log: cfg.log.With("peer", id, "peer_addr", addr)}
	}
	return t
}

func newIncarnation() uint64 {
	for {
		if n := rand.Uint64(); n != 0 {
			return n
		}
	}
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
	switch {
	case h.observer:
		t.serveObserver(c, h, remote)
		return
	case h.identify:
		t.serveIdentify(c, h, remote)
		return
	}
	ic := &inConn{conn: c, incarnation: h.incarnation}
	status, holder := t.admit(h, ic)
	// The answer is in the hello's version, or this node's latest for a
	// later one (refused as hsBadVersion).
	a := answer{version: wireVersion1, status: status, id: t.id, clusterID: t.clusterID}
	if h.version >= wireVersion {
		a.version, a.incarnation = wireVersion, t.incarnation
	}
	_, werr := c.Write(appendAnswer(nil, a))
	if status != hsOK {
		t.log.Warn("rejected peer connection", "remote", remote, "reason", hsStatusText(status),
			"peer", h.from, "peer_cluster_id", h.clusterID, "cluster_id", t.clusterID, "version", h.version)
		if holder != nil {
			holder.probe()
		}
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
// match: a known wire version, this cluster and this node as the target.
func (t *transport) checkHello(h hello) byte {
	switch {
	case h.version != wireVersion && h.version != wireVersion1:
		return hsBadVersion
	case h.clusterID != t.clusterID:
		return hsWrongCluster
	case h.to != t.id:
		return hsWrongTarget
	}
	return hsOK
}

// serveIdentify answers an identify request with this process's
// incarnation: the dial-back of a node checking a hello that claims this
// node's id (see admit).
func (t *transport) serveIdentify(c net.Conn, h hello, remote string) {
	status := t.checkHello(h)
	a := answer{version: wireVersion, status: status, id: t.id, clusterID: t.clusterID}
	if status == hsOK {
		a.incarnation = t.incarnation
	} else {
		t.log.Warn("rejected identify request", "remote", remote, "reason", hsStatusText(status),
			"from", h.from, "peer_cluster_id", h.clusterID, "cluster_id", t.clusterID)
	}
	c.Write(appendAnswer(nil, a))
}

// admit checks a voter's hello and registers the connection as the peer's.
//
// Who is node id? Not whoever connected first, nor whoever sent last: Raft
// followers send nothing to each other, so a live voter's connection to a
// follower may stay silent for as long as the leader lasts, and silence
// tells nothing of whether the node behind it is gone. (Taking over a
// connection silent for a few seconds let a second process configured with
// a voter's id displace the real voter on a follower, and once that
// follower led, the real voter was the one refused.) The voter list names
// the voters: node id is the process that listens at peers[id]. Every
// process draws a random incarnation at start and sends it in its hellos
// (version 2), and a hello claiming id is admitted when its incarnation is
// the one the process at peers[id] reports: already known from the answer
// to this node's own handshake with id, or else asked on a short identify
// connection to peers[id]. Then:
//
//   - the connection replaces any other one registered for id: an older
//     one of the same process (it redialed) or one of an earlier
//     incarnation (the voter restarted; after a crash its old connection
//     may be half-open, and would otherwise stay until TCP gives up on it),
//     so a restarted voter is readmitted at its first attempt;
//   - another incarnation is refused (hsNotTheVoter): a process configured
//     with a voter's id but listening elsewhere never gets in, whether the
//     real voter is connected, silent or down at the time;
//   - when peers[id] cannot be asked the hello is refused (hsUnverified)
//     and the dialer retries after its backoff.
//
// An identify costs a connection for each new incarnation of a peer, and
// one for each attempt of an impostor (at most one a second, its backoff).
//
// A version 1 hello, from a node of an older binary during a rolling
// upgrade, has no incarnation to check. It is admitted only when no
// connection is registered for the id; while one is, however quiet, it is
// refused as a duplicate, and the refusal probes the registered connection
// with a byte that its dialer never reads: a live peer's kernel takes it,
// and if the peer's process is gone (its host crashed and came back) the
// host answers with a reset, the connection fails and is released, and the
// restarted node's next attempt gets in. The second return value is that
// connection to probe.
func (t *transport) admit(h hello, ic *inConn) (byte, *inConn) {
	if st := t.checkHello(h); st != hsOK {
		return st, nil
	}
	switch {
	case h.from == t.id:
		return hsDuplicateNode, nil
	case t.peers[h.from] == "":
		return hsUnknownNode, nil
	}
	ic.lastRecv.Store(time.Now().UnixNano())
	if h.version == wireVersion1 {
		t.mu.Lock()
		defer t.mu.Unlock()
		if old := t.inbound[h.from]; old != nil {
			return hsDuplicateNode, old
		}
		t.inbound[h.from] = ic
		return hsOK, nil
	}
	if h.incarnation == 0 {
		return hsNotTheVoter, nil
	}
	t.mu.Lock()
	known := t.voterIncarnation[h.from]
	t.mu.Unlock()
	if known != h.incarnation {
		inc, err := t.identify(h.from)
		if err != nil {
			t.log.Warn("cannot check a peer's hello with the node at its voter address", "peer", h.from,
				"peer_addr", t.peers[h.from], "error", err)
			return hsUnverified, nil
		}
		t.noteIncarnation(h.from, inc)
		if inc != h.incarnation {
			return hsNotTheVoter, nil
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return hsUnverified, nil
	}
	if old := t.inbound[h.from]; old != nil {
		t.log.Info("peer connection replaced", "peer", h.from, "same_process", old.incarnation == h.incarnation,
			"idle", time.Since(time.Unix(0, old.lastRecv.Load())).Round(time.Millisecond))
		old.conn.Close()
	}
	t.inbound[h.from] = ic
	return hsOK, nil
}

// noteIncarnation records the incarnation of the process answering at
// peer id's voter address.
func (t *transport) noteIncarnation(id, inc uint64) {
	t.mu.Lock()
	t.voterIncarnation[id] = inc
	t.mu.Unlock()
}

// identify asks the process at peer id's voter address for its
// incarnation.
func (t *transport) identify(id uint64) (uint64, error) {
	addr := t.peers[id]
	ctx, cancel := context.WithTimeout(t.ctx, identifyTimeout)
	defer cancel()
	c, err := dialWith(ctx, t.dialFn, addr, 0)
	if err != nil {
		return 0, err
	}
	if !t.track(c) {
		c.Close()
		return 0, net.ErrClosed
	}
	defer t.untrack(c)
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := c.Write(appendHello(nil, hello{identify: true, version: wireVersion, from: t.id, to: id, clusterID: t.clusterID})); err != nil {
		return 0, fmt.Errorf("send identify request: %w", err)
	}
	a, err := readAnswer(c)
	switch {
	case err != nil:
		return 0, fmt.Errorf("identify request to %s: %w", addr, err)
	case a.status != hsOK:
		return 0, fmt.Errorf("node at %s refused the identify request: %s", addr, hsStatusText(a.status))
	case a.clusterID != t.clusterID || a.id != id:
		return 0, fmt.Errorf("node at %s is node %d of cluster %q", addr, a.id, a.clusterID)
	case a.version != wireVersion || a.incarnation == 0:
		return 0, fmt.Errorf("node at %s reports no incarnation (version %d)", addr, a.version)
	}
	return a.incarnation, nil
}

// probe writes a byte on an inbound connection, which its dialer never
// reads: if the process at the other end is gone, its host answers with a
// reset and the connection's reader fails.
func (ic *inConn) probe() {
	ic.conn.SetWriteDeadline(time.Now().Add(probeTimeout))
	ic.conn.Write([]byte{0})
}

func (t *transport) release(id uint64, ic *inConn) {
	t.mu.Lock()
	if t.inbound[id] == ic {
		delete(t.inbound, id)
	}
	t.mu.Unlock()
}

// dial connects to peer id and runs the handshake, in version 2 unless
// the peer only speaks version 1.
func (t *transport) dial(id uint64, addr string) (net.Conn, error) {
	c, a, err := t.dialVersion(id, addr, wireVersion)
	if err == nil && a.status == hsBadVersion && a.version == wireVersion1 {
		t.untrack(c)
		c, a, err = t.dialVersion(id, addr, wireVersion1)
	}
	if err != nil {
		return nil, err
	}
	if a.status != hsOK {
		t.untrack(c)
		return nil, fmt.Errorf("peer refused the handshake: %s (it is node %d of cluster %q)", hsStatusText(a.status), a.id, a.clusterID)
	}
	if a.version == wireVersion {
		// The process listening at the voter address: node id itself.
		t.noteIncarnation(id, a.incarnation)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// dialVersion connects to peer id and sends a hello of the version. It
// returns the connection with the answer, also a refusal; an error closes
// the connection.
func (t *transport) dialVersion(id uint64, addr string, version byte) (net.Conn, answer, error) {
	var a answer
	c, err := dialWith(t.ctx, t.dialFn, addr, dialTimeout)
	if err != nil {
		return nil, a, err
	}
	if !t.track(c) {
		c.Close()
		return nil, a, net.ErrClosed
	}
	fail := func(err error) (net.Conn, answer, error) {
		t.untrack(c)
		return nil, a, err
	}
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	h := hello{version: version, from: t.id, to: id, clusterID: t.clusterID, incarnation: t.incarnation}
	if _, err := c.Write(appendHello(nil, h)); err != nil {
		return fail(fmt.Errorf("send handshake: %w", err))
	}
	a, err = readAnswer(c)
	switch {
	case err != nil:
		return fail(err)
	case a.status != hsOK:
		return c, a, nil
	case a.clusterID != t.clusterID:
		return fail(fmt.Errorf("%w: peer at %s is in cluster %q", ErrClusterIDMismatch, addr, a.clusterID))
	case a.id != id:
		return fail(fmt.Errorf("peer at %s is node %d, not node %d", addr, a.id, id))
	}
	return c, a, nil
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
