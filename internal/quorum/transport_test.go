package quorum

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// startLone starts node 1 of a three-voter cluster whose other voters never
// come up, and returns it with its address.
func startLone(t *testing.T) (*Node, string, *logSink) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := newLogSink(t)
	n, err := New(Config{ID: 1, Peers: map[uint64]string{1: ln.Addr().String(), 2: "127.0.0.1:1", 3: "127.0.0.1:1"},
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
		expectClosed(t, conn, tc.name)
		if sink.count("rejected peer connection", "reason=\""+hsStatusText(tc.want)+"\"") == 0 {
			t.Errorf("%s: rejection not logged", tc.name)
		}
	}
}

func TestTransportClosesOnBadFrames(t *testing.T) {
	n, addr, sink := startLone(t)
	peer2 := hello{version: wireVersion, from: 2, to: 1, clusterID: "lone"}
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
	// A second live connection for node 2 is refused as a duplicate.
	conn, a := dialHello(t, addr, peer2)
	if a.status != hsOK {
		t.Fatal("handshake refused")
	}
	conn.Write(good)
	time.Sleep(20 * time.Millisecond)
	if _, a := dialHello(t, addr, peer2); a.status != hsDuplicateNode {
		t.Fatalf("second live connection for node 2: %q", hsStatusText(a.status))
	}
	if st := n.Status(); st.Role == "stopped" {
		t.Fatal("node died")
	}
}
