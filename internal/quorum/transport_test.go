package quorum

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// startLone starts node 1 of a three-voter cluster whose other voters never
// come up, and returns it with its address.
func startLone(t *testing.T) (*Node, string, *logSink) {
	return startLoneWith(t, "127.0.0.1:1", "127.0.0.1:1")
}

// startLoneWith starts node 1 of a three-voter cluster with nodes 2 and 3
// listed at the addresses.
func startLoneWith(t *testing.T, addr2, addr3 string) (*Node, string, *logSink) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := newLogSink(t)
	n, err := New(Config{ID: 1, Peers: map[uint64]string{1: ln.Addr().String(), 2: addr2, 3: addr3},
		Dir: t.TempDir(), ClusterID: "lone", Listener: ln, Logger: sink.logger(), StateMachine: &testSM{},
		TickInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n, ln.Addr().String(), sink
}

func dialHello(t *testing.T, addr string, h hello) (net.Conn, answer) {
	t.Helper()
	return dialHelloTo(t, addr, h, "lone")
}

// dialHelloTo sends h to addr and checks that node 1 of cluster answers.
func dialHelloTo(t *testing.T, addr string, h hello, cluster string) (net.Conn, answer) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write(appendHello(nil, h)); err != nil {
		t.Fatal(err)
	}
	a, err := readAnswer(conn)
	if err != nil {
		t.Fatalf("handshake %+v: %v", h, err)
	}
	if a.id != 1 || a.clusterID != cluster {
		t.Fatalf("answer names node %d of %q", a.id, a.clusterID)
	}
	return conn, a
}

// expectClosed fails unless the node closes conn.
func expectClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("%s: connection left open", what)
			}
			return
		}
	}
}

func TestTransportHandshakeRejections(t *testing.T) {
	_, addr, sink := startLone(t)
	for _, tc := range []struct {
		name string
		h    hello
		want byte
	}{
		{"wrong cluster", hello{version: wireVersion, from: 2, to: 1, clusterID: "other"}, hsWrongCluster},
		{"unknown node", hello{version: wireVersion, from: 9, to: 1, clusterID: "lone"}, hsUnknownNode},
		{"our own id", hello{version: wireVersion, from: 1, to: 1, clusterID: "lone"}, hsDuplicateNode},
		{"wrong target", hello{version: wireVersion, from: 2, to: 3, clusterID: "lone"}, hsWrongTarget},
		{"future version", hello{version: 99, from: 2, to: 1, clusterID: "lone"}, hsBadVersion},
	} {
		conn, a := dialHello(t, addr, tc.h)
		if a.status != tc.want {
			t.Errorf("%s: status %q, want %q", tc.name, hsStatusText(a.status), hsStatusText(tc.want))
		}
		if want := min(max(tc.h.version, wireVersion1), wireVersion); a.version != want {
			t.Errorf("%s: answer of version %d, want %d", tc.name, a.version, want)
		}
		expectClosed(t, conn, tc.name)
		if sink.count("rejected peer connection", "reason=\""+hsStatusText(tc.want)+"\"") == 0 {
			t.Errorf("%s: rejection not logged", tc.name)
		}
	}
}

func TestTransportClosesOnBadFrames(t *testing.T) {
	v2 := newFakeVoter(t, 2, 0x2222)
	n, addr, sink := startLoneWith(t, v2.addr, "127.0.0.1:1")
	peer2 := hello{version: wireVersion, from: 2, to: 1, clusterID: "lone", incarnation: 0x2222}
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 2, To: 1, Term: 1})
	badCRC := append([]byte(nil), good...)
	badCRC[5] ^= 1
	var huge [frameHdrLen]byte
	binary.BigEndian.PutUint32(huge[:], 1<<31)
	spoofed, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 3, To: 1})
	local, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHup, From: 2, To: 1})
	prop, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgProp, From: 2, To: 1, Entries: testEntries(5, 5, 1)})
	for _, tc := range []struct {
		name  string
		frame []byte
		log   string
	}{
		{"huge length", huge[:], "bad frame"},
		{"bad crc", badCRC, "bad frame"},
		{"undecodable", frameOf([]byte{0xff, 0xff}), "bad frame"},
		{"spoofed sender", spoofed, "bad message"},
		{"local message", local, "bad message"},
		{"proposal", prop, "bad message"},
	} {
		before := sink.count("closing peer connection: " + tc.log)
		conn, a := dialHello(t, addr, peer2)
		if a.status != hsOK {
			t.Fatalf("%s: handshake refused: %s", tc.name, hsStatusText(a.status))
		}
		// A valid frame first: it is accepted and the connection stays.
		conn.Write(good)
		conn.Write(tc.frame)
		expectClosed(t, conn, tc.name)
		if sink.count("closing peer connection: "+tc.log) != before+1 {
			t.Errorf("%s: not logged as %q", tc.name, tc.log)
		}
		// The connection just closed is not a live duplicate; wait for
		// the node to release it before the next case claims node 2.
		deadline := time.Now().Add(3 * time.Second)
		for {
			n.tr.mu.Lock()
			_, held := n.tr.inbound[2]
			n.tr.mu.Unlock()
			if !held {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("closed connection still registered")
			}
			time.Sleep(time.Millisecond)
		}
	}
	// A second live connection for node 2 is refused: from another
	// process, or from one of version 1.
	conn, a := dialHello(t, addr, peer2)
	if a.status != hsOK {
		t.Fatal("handshake refused")
	}
	conn.Write(good)
	impostor := peer2
	impostor.incarnation = 0x6666
	if _, a := dialHello(t, addr, impostor); a.status != hsNotTheVoter {
		t.Fatalf("second live connection for node 2 from another process: %q", hsStatusText(a.status))
	}
	if _, a := dialHello(t, addr, hello{version: wireVersion1, from: 2, to: 1, clusterID: "lone"}); a.status != hsDuplicateNode {
		t.Fatalf("second live connection for node 2 of version 1: %q", hsStatusText(a.status))
	}
	if st := n.Status(); st.Role == "stopped" {
		t.Fatal("node died")
	}
}

// registered returns the connection node 1 holds for peer id, nil if none.
func registered(n *Node, id uint64) *inConn {
	n.tr.mu.Lock()
	defer n.tr.mu.Unlock()
	return n.tr.inbound[id]
}

// A silent connection is a live one: raft followers send nothing to each
// other, so a real voter's connection may carry nothing for minutes. A
// second connection claiming its id must not take over however long the
// first has been quiet.
func TestTransportSilentPeerNotDisplaced(t *testing.T) {
	n, addr, _ := startLone(t)
	peer2 := hello{version: 1, from: 2, to: 1, clusterID: "lone"}
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 2, To: 1, Term: 1})
	real, a := dialHello(t, addr, peer2)
	if a.status != hsOK {
		t.Fatalf("first connection for node 2 refused: %s", hsStatusText(a.status))
	}
	real.Write(good)
	ic := registered(n, 2)
	if ic == nil {
		t.Fatal("first connection not registered")
	}
	// Silent since the epoch, as far as the transport can tell.
	ic.lastRecv.Store(0)
	other, a := dialHello(t, addr, peer2)
	if a.status == hsOK {
		t.Fatal("a second connection claiming node 2 took over from its silent but live connection")
	}
	expectClosed(t, other, "the second connection")
	if registered(n, 2) != ic {
		t.Fatal("the first connection is no longer node 2's")
	}
	// The first connection still delivers.
	real.Write(good)
	expectOpen(t, real, "the first connection")
}

// expectOpen fails if the node closed conn. Probe bytes (zeros) may
// arrive on it.
func expectOpen(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var b [64]byte
	for {
		k, err := conn.Read(b[:])
		if slices.ContainsFunc(b[:k], func(c byte) bool { return c != 0 }) {
			t.Fatalf("%s: unexpected bytes %x", what, b[:k])
		}
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("%s: closed: %v", what, err)
			}
			return
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// fakeVoter listens as a voter's address and answers identify requests
// with its incarnation (settable, as if the voter restarted); it closes
// anything else.
type fakeVoter struct {
	id          uint64
	addr        string
	incarnation atomic.Uint64
	identifies  atomic.Int64
}

func newFakeVoter(t *testing.T, id, incarnation uint64) *fakeVoter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &fakeVoter{id: id, addr: ln.Addr().String()}
	v.incarnation.Store(incarnation)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if h, err := readHello(c); err == nil && h.identify {
				v.identifies.Add(1)
				c.Write(appendAnswer(nil, answer{version: wireVersion, status: hsOK, id: v.id, clusterID: h.clusterID,
					incarnation: v.incarnation.Load()}))
			}
			c.Close()
		}
	}()
	return v
}

// A second process configured with a voter's id is refused whenever it
// comes: while the voter's connection is live but silent, before the voter
// connected at all, and while the voter is down.
func TestTransportImpostorRefused(t *testing.T) {
	v2 := newFakeVoter(t, 2, 0x2222)
	n, addr, sink := startLoneWith(t, v2.addr, "127.0.0.1:1")
	real := hello{version: wireVersion, from: 2, to: 1, clusterID: "lone", incarnation: 0x2222}
	impostor := real
	impostor.incarnation = 0x6666

	// The impostor first: node 2 has no connection yet.
	conn, a := dialHello(t, addr, impostor)
	if a.status != hsNotTheVoter || a.version != wireVersion || a.incarnation != n.tr.incarnation {
		t.Fatalf("impostor before the voter: answer %+v", a)
	}
	expectClosed(t, conn, "impostor before the voter")
	if sink.count("rejected peer connection", "peer=2", "reason=\""+hsStatusText(hsNotTheVoter)+"\"") != 1 {
		t.Error("refusal not logged")
	}
	// Then the real node 2 gets in.
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 2, To: 1, Term: 1})
	rc, a := dialHello(t, addr, real)
	if a.status != hsOK {
		t.Fatalf("the real node 2 refused: %s", hsStatusText(a.status))
	}
	rc.Write(good)
	ic := registered(n, 2)
	// Silent for ever: the impostor is still refused, the voter stays.
	ic.lastRecv.Store(0)
	conn, a = dialHello(t, addr, impostor)
	if a.status != hsNotTheVoter {
		t.Fatalf("impostor while the voter is silent: %s", hsStatusText(a.status))
	}
	expectClosed(t, conn, "impostor while the voter is silent")
	if registered(n, 2) != ic {
		t.Fatal("the impostor displaced the real node 2")
	}
	rc.Write(good)
	expectOpen(t, rc, "the real node 2's connection")
	// Each impostor attempt asks the voter again; the real node's
	// incarnation, once checked, is not.
	if got := v2.identifies.Load(); got != 2 {
		t.Errorf("%d identify requests, want 2 (one per impostor attempt)", got)
	}

	// Node 3 is down: nothing can vouch for a hello claiming it.
	conn, a = dialHello(t, addr, hello{version: wireVersion, from: 3, to: 1, clusterID: "lone", incarnation: 0x3333})
	if a.status != hsUnverified {
		t.Fatalf("node 3 while its address does not answer: %s", hsStatusText(a.status))
	}
	expectClosed(t, conn, "node 3 unverified")
	// Incarnation zero is no process's.
	if _, a := dialHello(t, addr, hello{version: wireVersion, from: 2, to: 1, clusterID: "lone"}); a.status != hsNotTheVoter {
		t.Fatalf("incarnation 0: %s", hsStatusText(a.status))
	}
	if registered(n, 2) != ic {
		t.Fatal("node 2's connection replaced")
	}
}

// A voter that restarted is readmitted at its first attempt, though its
// old connection looks alive (half-open after a crash); the same process
// redialing replaces its own connection too.
func TestTransportRestartedVoterReadmitted(t *testing.T) {
	v2 := newFakeVoter(t, 2, 0x2222)
	n, addr, _ := startLoneWith(t, v2.addr, "127.0.0.1:1")
	first := hello{version: wireVersion, from: 2, to: 1, clusterID: "lone", incarnation: 0x2222}
	old, a := dialHello(t, addr, first)
	if a.status != hsOK {
		t.Fatalf("node 2 refused: %s", hsStatusText(a.status))
	}
	oldIC := registered(n, 2)
	// Node 2 crashes and comes back: its old connection is never closed
	// from its side.
	v2.incarnation.Store(0x2223)
	second := first
	second.incarnation = 0x2223
	cur, a := dialHello(t, addr, second)
	if a.status != hsOK {
		t.Fatalf("restarted node 2 refused: %s", hsStatusText(a.status))
	}
	expectClosed(t, old, "the old incarnation's connection")
	if ic := registered(n, 2); ic == nil || ic == oldIC || ic.incarnation != 0x2223 {
		t.Fatalf("registered connection %+v", ic)
	}
	// The same process redials (its sender gave up on a connection).
	again, a := dialHello(t, addr, second)
	if a.status != hsOK {
		t.Fatalf("redial refused: %s", hsStatusText(a.status))
	}
	expectClosed(t, cur, "the connection the process gave up")
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 2, To: 1, Term: 1})
	again.Write(good)
	expectOpen(t, again, "the redialed connection")
	// The old incarnation, should it still be around, is refused.
	if _, a := dialHello(t, addr, first); a.status != hsNotTheVoter {
		t.Fatalf("the old incarnation: %s", hsStatusText(a.status))
	}
}

// A version 1 peer (an older binary) is refused while a connection for its
// id is open; the refusal probes that connection, and a dead one (its
// host resets it) is released so that the next attempt gets in.
func TestTransportVersion1DeadPeerProbed(t *testing.T) {
	n, addr, _ := startLone(t)
	peer2 := hello{version: wireVersion1, from: 2, to: 1, clusterID: "lone"}
	old, a := dialHello(t, addr, peer2)
	if a.status != hsOK || a.version != wireVersion1 {
		t.Fatalf("answer %+v", a)
	}
	// The old connection's process is gone; its host resets the
	// connection on the first byte it receives.
	probed := make(chan struct{})
	go func() {
		old.SetReadDeadline(time.Time{})
		var b [1]byte
		if _, err := old.Read(b[:]); err == nil {
			old.(*net.TCPConn).SetLinger(0)
		}
		old.Close()
		close(probed)
	}()
	if _, a := dialHello(t, addr, peer2); a.status != hsDuplicateNode {
		t.Fatalf("second version 1 connection: %s", hsStatusText(a.status))
	}
	select {
	case <-probed:
	case <-time.After(5 * time.Second):
		t.Fatal("the registered connection was not probed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for registered(n, 2) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the reset connection is still registered")
		}
		time.Sleep(time.Millisecond)
	}
	if _, a := dialHello(t, addr, peer2); a.status != hsOK {
		t.Fatalf("node 2 after its dead connection went: %s", hsStatusText(a.status))
	}
}

// oldNode listens like a version 1 voter: it refuses other versions as
// the old binary does and records the hello versions it sees.
func oldNode(t *testing.T, id uint64) (string, func() []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var versions []byte
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The version 1 reader: a version 2 hello's incarnation is
			// left unread, as the old binary leaves it.
			var b [4 + 1 + 8 + 8 + 1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				c.Close()
				continue
			}
			cid, _ := readClusterID(c, b[21])
			mu.Lock()
			versions = append(versions, b[4])
			conns = append(conns, c)
			mu.Unlock()
			st := hsOK
			if b[4] != wireVersion1 {
				st = hsBadVersion
			}
			c.Write(appendAnswer(nil, answer{version: wireVersion1, status: st, id: id, clusterID: cid}))
			if st != hsOK {
				c.Close()
			}
		}
	}()
	return ln.Addr().String(), func() []byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(versions)
	}
}

// A new node dials a node of the old version (a rolling upgrade) in
// version 1 after it answers bad version; a new node in version 2, and it
// learns the incarnation at the voter address from the answer.
func TestTransportDialFallsBackToVersion1(t *testing.T) {
	n, _, _ := startLone(t)
	oldAddr, versions := oldNode(t, 2)
	c, err := n.tr.dial(2, oldAddr)
	if err != nil {
		t.Fatalf("dial a version 1 node: %v", err)
	}
	c.Close()
	if got := versions(); !slices.Equal(got, []byte{wireVersion, wireVersion1}) {
		t.Fatalf("hello versions %v, want 2 then 1", got)
	}
	// A node of this version answers the version 2 hello with its
	// incarnation, which is then the one known for its voter address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan hello, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h, _ := readHello(c)
		seen <- h
		c.Write(appendAnswer(nil, answer{version: wireVersion, status: hsOK, id: 2, clusterID: "lone", incarnation: 0x77}))
		io.Copy(io.Discard, c)
	}()
	c, err = n.tr.dial(2, ln.Addr().String())
	if err != nil {
		t.Fatalf("dial a version 2 node: %v", err)
	}
	defer c.Close()
	if h := <-seen; h.version != wireVersion || h.incarnation != n.tr.incarnation || h.from != 1 || h.to != 2 {
		t.Fatalf("hello %+v", h)
	}
	n.tr.mu.Lock()
	got := n.tr.voterIncarnation[2]
	n.tr.mu.Unlock()
	if got != 0x77 {
		t.Fatalf("learned incarnation %x, want 77", got)
	}
}
