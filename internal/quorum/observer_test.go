package quorum

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

const testObserverID = 100

func startObserver(t *testing.T, voters map[uint64]string, clusterID string, sink *logSink, sm StateMachine) *Observer {
	t.Helper()
	o, err := NewObserver(ObserverConfig{ID: testObserverID, Voters: voters, ClusterID: clusterID, Logger: sink.logger(),
		StateMachine: sm, MaxBytes: 512, DialTimeout: time.Second, RequestTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Stop() })
	return o
}

func waitObserved(t *testing.T, o *Observer, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := o.WaitApplied(ctx, index); err != nil {
		t.Fatalf("observer: %v (status %+v)", err, o.Status())
	}
}

// sameHistory fails unless the observer's state machine received exactly
// what the voter's did: the same data at the same indexes.
func sameHistory(t *testing.T, obs, voter *testSM) {
	t.Helper()
	oe, oi := obs.history()
	ve, vi := voter.history()
	if !slices.Equal(oe, ve) || !slices.Equal(oi, vi) {
		t.Fatalf("observer applied %v at %v\nvoter applied    %v at %v", oe, oi, ve, vi)
	}
	if _, _, err := obs.state(); err != nil {
		t.Fatalf("observer state machine: %v", err)
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// noObserverGoroutines fails if any goroutine still runs Observer code.
func noObserverGoroutines(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	eventually(t, "the observer's goroutines to end", func() bool {
		n := runtime.Stack(buf, true)
		return !bytes.Contains(buf[:n], []byte("quorum.(*Observer)"))
	})
}

func TestObserverFollowsCluster(t *testing.T) {
	c := newCluster(t, 3, nil)
	lead := c.waitLeader()
	want := entryNames("pre", 0, 10)
	for _, d := range want {
		c.proposeOnLeader(d)
	}
	sm := &testSM{}
	o := startObserver(t, c.peers, "test-cluster", c.sink, sm)
	var last uint64
	for _, d := range entryNames("live", 0, 20) {
		last = c.proposeOnLeader(d)
		want = append(want, d)
	}
	c.waitApplied(want)
	waitObserved(t, o, last)
	for _, id := range c.ids {
		sameHistory(t, sm, c.sms[id])
	}
	if rs := sm.restoredFrom(); len(rs) != 0 {
		t.Fatalf("observer restored snapshots %v; the log was never compacted", rs)
	}
	// It reports the leader, and moves to it once a response names it.
	eventually(t, "the observer to fetch from the leader", func() bool {
		lead = c.waitLeader()
		st := o.Status()
		return st.Voter == lead && st.Leader == lead && o.Leader() == lead
	})
	st := o.Status()
	if !st.Running || st.ID != testObserverID || st.Applied < last || st.Commit < last || st.Err != nil || st.LastError != nil {
		t.Fatalf("observer status %+v, last index %d", st, last)
	}
	// The observer is no voter: raft's configuration is untouched.
	ls := c.node(lead).Status()
	if !slices.Equal(ls.Voters, []uint64{1, 2, 3}) || len(ls.Peers) != 3 {
		t.Fatalf("leader status %+v", ls)
	}
	eventually(t, "one observer connection", func() bool {
		n := 0
		for _, id := range c.ids {
			n += c.node(id).tr.observerCount()
		}
		return n == 1 && c.node(lead).tr.observerCount() == 1
	})

	// Stop interrupts a fetch the voter is holding, and is idempotent.
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Stop took %v", d)
	}
	if err := o.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if st := o.Status(); st.Running || st.Voter != 0 || st.Applied < last {
		t.Fatalf("status after Stop: %+v", st)
	}
	if err := o.WaitApplied(context.Background(), last+1); !errors.Is(err, ErrStopped) {
		t.Fatalf("WaitApplied after Stop: %v", err)
	}
	if err := o.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
	noObserverGoroutines(t)
	eventually(t, "the voters to release the observer's connection", func() bool {
		return c.node(lead).tr.observerCount() == 0
	})
}

// Voters compacted their logs before the observer came: it starts from a
// snapshot, then follows entries, across further compactions.
func TestObserverSnapshotCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery, cfg.CatchUpEntries = 20, 5 })
	want := entryNames("a", 0, 60)
	for _, d := range want {
		c.proposeOnLeader(d)
	}
	c.waitApplied(want)
	for _, id := range c.ids {
		if si := c.node(id).Status().SnapshotIndex; si < 20 {
			t.Fatalf("node %d snapshot at %d: the log was not compacted", id, si)
		}
	}
	sm := &testSM{}
	o := startObserver(t, c.peers, "test-cluster", c.sink, sm)
	_, applied, _ := c.sms[c.waitLeader()].state()
	waitObserved(t, o, applied)
	if rs := sm.restoredFrom(); len(rs) == 0 || rs[0] <= 5 {
		t.Fatalf("observer restored from %v: no snapshot", rs)
	}
	if c.sink.count("installed snapshot from voter", fmt.Sprintf("observer=%d", testObserverID)) == 0 {
		t.Fatal("snapshot installation not logged")
	}
	sameHistory(t, sm, c.sms[c.waitLeader()])

	var last uint64
	for _, d := range entryNames("b", 0, 50) {
		last = c.proposeOnLeader(d)
		want = append(want, d)
	}
	c.waitApplied(want)
	waitObserved(t, o, last)
	sameHistory(t, sm, c.sms[c.waitLeader()])
}

// The observer keeps following when the voter it fetches from stops, and
// across leader changes.
func TestObserverFailover(t *testing.T) {
	c := newCluster(t, 3, nil)
	lead := c.waitLeader()
	sm := &testSM{}
	o := startObserver(t, c.peers, "test-cluster", c.sink, sm)
	var want []string
	var last uint64
	propose := func(prefix string) {
		t.Helper()
		for _, d := range entryNames(prefix, 0, 5) {
			last = c.proposeOnLeader(d)
			want = append(want, d)
		}
	}
	propose("a")
	waitObserved(t, o, last)
	eventually(t, "the observer to fetch from the leader", func() bool { return o.Status().Voter == lead })

	// Its voter, the leader, stops.
	c.stop(lead)
	propose("b")
	waitObserved(t, o, last)
	lead2 := c.waitLeader()
	eventually(t, "the observer to learn the new leader", func() bool { return o.Leader() == lead2 })
	var v uint64
	eventually(t, "the observer to fetch from another voter", func() bool {
		v = o.Status().Voter
		return v != 0 && v != lead
	})

	// The old leader comes back; the voter the observer now uses stops.
	c.start(lead)
	c.waitApplied(want)
	c.stop(v)
	propose("c")
	waitObserved(t, o, last)
	lead3 := c.waitLeader()
	eventually(t, "the observer to learn the leader", func() bool { return o.Leader() == lead3 })
	eventually(t, "the observer to fetch from another voter", func() bool {
		v2 := o.Status().Voter
		return v2 != 0 && v2 != v
	})
	c.waitApplied(want)
	sameHistory(t, sm, c.sms[lead3])
	if c.sink.count("cannot follow voter", fmt.Sprintf("voter=%d", lead)) == 0 {
		t.Fatal("losing the voter was not logged")
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	noObserverGoroutines(t)
}

// dialObserverHello sends an observer's hello and checks that node 1 of
// cluster answers.
func dialObserverHello(t *testing.T, addr string, h hello, cluster string) (net.Conn, answer) {
	t.Helper()
	h.observer = true
	return dialHelloTo(t, addr, h, cluster)
}

func TestObserverRefused(t *testing.T) {
	n, addr, sink := startLone(t)
	for _, tc := range []struct {
		name string
		h    hello
		want byte
	}{
		{"a voter's id", hello{version: wireVersion, from: 2, to: 1, clusterID: "lone"}, hsObserverIsVoter},
		{"the voter's own id", hello{version: wireVersion, from: 1, to: 1, clusterID: "lone"}, hsObserverIsVoter},
		{"id zero", hello{version: wireVersion, from: 0, to: 1, clusterID: "lone"}, hsObserverIDZero},
		{"wrong cluster", hello{version: wireVersion, from: 50, to: 1, clusterID: "other"}, hsWrongCluster},
		{"wrong target", hello{version: wireVersion, from: 50, to: 3, clusterID: "lone"}, hsWrongTarget},
		{"future version", hello{version: 99, from: 50, to: 1, clusterID: "lone"}, hsBadVersion},
	} {
		conn, a := dialObserverHello(t, addr, tc.h, "lone")
		if a.status != tc.want {
			t.Errorf("%s: status %q, want %q", tc.name, hsStatusText(a.status), hsStatusText(tc.want))
		}
		expectClosed(t, conn, tc.name)
		if sink.count("rejected observer connection", "reason=\""+hsStatusText(tc.want)+"\"", fmt.Sprintf("observer=%d", tc.h.from)) == 0 {
			t.Errorf("%s: rejection not logged", tc.name)
		}
	}

	for _, tc := range []struct {
		id   uint64
		want string
	}{{2, "is a voter's id"}, {0, "must be non-zero"}} {
		_, err := NewObserver(ObserverConfig{ID: tc.id, Voters: map[uint64]string{1: addr, 2: "x:1"}, ClusterID: "lone", StateMachine: &testSM{}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("observer id %d: %v, want %q", tc.id, err, tc.want)
		}
	}

	// An observer of another cluster is refused and says so.
	osink := newLogSink(t)
	rogue := startObserver(t, map[uint64]string{1: addr}, "another-cluster", osink, &testSM{})
	eventually(t, "the refusal", func() bool {
		return osink.count("cannot follow voter", "voter refused the handshake: wrong cluster id") > 0 &&
			sink.count("rejected observer connection", "wrong cluster id", "observer_cluster_id=another-cluster") > 0
	})
	if st := rogue.Status(); !st.Running || st.Applied != 0 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "wrong cluster id") {
		t.Fatalf("rogue observer status %+v", st)
	}

	// The right cluster's observer gets the bootstrap snapshot, which
	// holds no state: nothing is restored, and no leader is known.
	sm := &testSM{}
	o := startObserver(t, map[uint64]string{1: addr}, "lone", osink, sm)
	waitObserved(t, o, 1)
	if st := o.Status(); st.Leader != 0 || st.Voter != 1 || st.Commit != 1 || len(sm.restoredFrom()) != 0 {
		t.Fatalf("observer of a leaderless voter: %+v, restored %v", st, sm.restoredFrom())
	}
	if n.Status().Role == "stopped" {
		t.Fatal("node died")
	}
}

func fetchOn(t *testing.T, conn net.Conn, req fetchRequest) (fetchResponse, time.Duration) {
	t.Helper()
	start := time.Now()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(appendFetchRequest(nil, req)); err != nil {
		t.Fatal(err)
	}
	body, err := readFrameBytes(conn, 1<<20)
	if err != nil {
		t.Fatalf("fetch %+v: %v", req, err)
	}
	r, err := decodeFetchResponse(body)
	if err != nil {
		t.Fatalf("fetch %+v: %v", req, err)
	}
	return r, time.Since(start)
}

// startSolo starts a single voter that listens, so observers can follow it.
func startSolo(t *testing.T, tweak func(*Config)) (*Node, string, *logSink) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := newLogSink(t)
	cfg := Config{ID: 1, Peers: map[uint64]string{1: ln.Addr().String()}, Dir: t.TempDir(), ClusterID: "solo",
		Listener: ln, Logger: sink.logger(), StateMachine: &testSM{}, TickInterval: 10 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n, ln.Addr().String(), sink
}

func mustPropose(t *testing.T, n *Node, data string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idx, err := n.Propose(ctx, []byte(data))
	if err != nil {
		t.Fatalf("propose %q: %v", data, err)
	}
	return idx
}

// waitPublished waits until n's observer view has applied index.
func waitPublished(t *testing.T, n *Node, index uint64) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		applied, _, _, changed := n.view.state()
		if applied >= index {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the observer view did not reach index %d (at %d)", index, applied)
		}
	}
}

// The fetch protocol as a voter speaks it, and what it does with garbage.
func TestObserverFetchProtocol(t *testing.T) {
	n, addr, sink := startSolo(t, nil)
	i1 := mustPropose(t, n, "one")
	i2 := mustPropose(t, n, "two")
	// Propose returns when the entry is applied; the node publishes its
	// view for observers at the end of that round, a moment later.
	waitPublished(t, n, i2)
	h := hello{observer: true, version: wireVersion, from: 50, to: 1, clusterID: "solo"}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	conn.Write(appendHello(nil, h))
	if a, err := readAnswer(conn); err != nil || a.status != hsOK {
		t.Fatalf("handshake: %+v %v", a, err)
	}
	// From 1: the bootstrap snapshot (the log starts after it).
	r, _ := fetchOn(t, conn, fetchRequest{from: 1, maxBytes: 1 << 20})
	if !r.snapshot || r.snapIndex != 1 || r.snapTerm != 1 || len(r.snapData) != 0 || r.leader != 1 || r.commit != i2 {
		t.Fatalf("fetch from 1: %+v", r)
	}
	// From 2: the leader's empty entry is covered but not listed, then
	// both proposals.
	r, _ = fetchOn(t, conn, fetchRequest{from: 2, maxBytes: 1 << 20})
	if r.snapshot || r.next != i2+1 || len(r.entries) != 2 || r.entries[0].index != i1 || string(r.entries[0].data) != "one" ||
		r.entries[1].index != i2 || string(r.entries[1].data) != "two" {
		t.Fatalf("fetch from 2: %+v", r)
	}
	// maxBytes 1: one entry at a time.
	r, _ = fetchOn(t, conn, fetchRequest{from: i1, maxBytes: 1})
	if r.next != i1+1 || len(r.entries) != 1 || string(r.entries[0].data) != "one" {
		t.Fatalf("fetch with maxBytes 1: %+v", r)
	}
	// Nothing new: the voter holds the request for maxWait, then answers
	// empty.
	r, d := fetchOn(t, conn, fetchRequest{from: i2 + 1, maxBytes: 1 << 20, maxWait: 200 * time.Millisecond})
	if r.snapshot || r.next != i2+1 || len(r.entries) != 0 || d < 150*time.Millisecond {
		t.Fatalf("idle fetch: %+v after %v", r, d)
	}
	// ... unless an entry commits meanwhile.
	go func() {
		time.Sleep(100 * time.Millisecond)
		n.Propose(context.Background(), []byte("three"))
	}()
	r, d = fetchOn(t, conn, fetchRequest{from: i2 + 1, maxBytes: 1 << 20, maxWait: 3 * time.Second})
	if len(r.entries) != 1 || string(r.entries[0].data) != "three" || d > 2*time.Second {
		t.Fatalf("fetch while an entry commits: %+v after %v", r, d)
	}

	req := appendFetchRequest(nil, fetchRequest{from: 1})
	badCRC := bytes.Clone(req)
	badCRC[frameHdrLen] ^= 1
	var huge [frameHdrLen]byte
	binary.BigEndian.PutUint32(huge[:], 1<<20)
	zeroFrom := appendFetchRequest(nil, fetchRequest{from: 0})
	wrongType := bytes.Clone(req[frameHdrLen:])
	wrongType[0] = fetchEntriesType
	raftMsg, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeat, From: 50, To: 1})
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"bad crc", badCRC},
		{"huge length", huge[:]},
		{"from index 0", zeroFrom},
		{"wrong type", frameOf(wrongType)},
		{"trailing bytes", frameOf(append(bytes.Clone(req[frameHdrLen:]), 0))},
		{"raft message", raftMsg},
		{"text", []byte("GET / HTTP/1.1\r\n\r\n")},
	} {
		before := sink.count("closing observer connection: bad request")
		conn, a := dialObserverHello(t, addr, hello{version: wireVersion, from: 50, to: 1, clusterID: "solo"}, "solo")
		if a.status != hsOK {
			t.Fatalf("%s: handshake refused: %s", tc.name, hsStatusText(a.status))
		}
		conn.Write(tc.frame)
		expectClosed(t, conn, tc.name)
		eventually(t, tc.name+" logged", func() bool { return sink.count("closing observer connection: bad request") == before+1 })
	}
	conn.Close()
	eventually(t, "observer connections released", func() bool { return n.tr.observerCount() == 0 })
	if st := n.Status(); st.Role != "leader" {
		t.Fatalf("voter status %+v", st)
	}
}

// failingSM fails to apply the entry at failAt.
type failingSM struct {
	testSM
	failAt uint64
}

func (s *failingSM) Apply(index uint64, data []byte) error {
	if index == s.failAt {
		return errors.New("disk full")
	}
	return s.testSM.Apply(index, data)
}

func TestObserverStopsOnApplyError(t *testing.T) {
	n, addr, sink := startSolo(t, nil)
	i1 := mustPropose(t, n, "one")
	i2 := mustPropose(t, n, "two")
	mustPropose(t, n, "three")
	sm := &failingSM{failAt: i2}
	o := startObserver(t, map[uint64]string{1: addr}, "solo", sink, sm)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := o.WaitApplied(ctx, i2)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), fmt.Sprintf("apply entry %d", i2)) {
		t.Fatalf("WaitApplied: %v", err)
	}
	st := o.Status()
	if st.Running || st.Err == nil || st.Applied != i1 {
		t.Fatalf("status %+v", st)
	}
	if got, _, _ := sm.state(); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("applied %v", got)
	}
	if sink.count("observer stopped: state machine failed", "disk full") != 1 {
		t.Fatal("failure not logged")
	}
	if err := o.Stop(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Stop: %v", err)
	}
	noObserverGoroutines(t)
}

// A voter that answers with garbage or nonsense is left for the next try;
// nothing reaches the state machine.
func TestObserverRejectsBadResponses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	entries := func(next uint64, ents ...observedEntry) []byte {
		return appendFetchResponse(nil, &fetchResponse{leader: 1, commit: 9, next: next, entries: ents})
	}
	var huge [frameHdrLen]byte
	binary.BigEndian.PutUint32(huge[:], 64<<20)
	good := entries(1)
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	answers := []struct {
		name string
		b    []byte
		log  string
	}{
		{"text", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), "read response"},
		{"bad crc", badCRC, "frame CRC mismatch"},
		{"over the limit", huge[:], "bad frame length"},
		{"unknown type", frameOf(append([]byte{9}, make([]byte, 16)...)), "response type 9"},
		{"entries going back", entries(0), "entries up to 0 for a fetch from 1"},
		{"entry out of order", entries(5, observedEntry{3, []byte("x")}, observedEntry{2, []byte("y")}), "out of order"},
		{"entry past next", entries(3, observedEntry{3, []byte("x")}), "out of order"},
		{"stale snapshot", appendFetchResponse(nil, &fetchResponse{snapshot: true, snapIndex: 0}), "snapshot at 0 for a fetch from 1"},
		{"truncated entry", frameOf(entries(5, observedEntry{3, []byte("xyz")})[frameHdrLen : len(entries(5, observedEntry{3, []byte("xyz")}))-1]), "cut short"},
	}
	var served atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			h, err := readHello(br)
			if err != nil || !h.observer || h.from != testObserverID {
				t.Errorf("hello %+v: %v", h, err)
				c.Close()
				continue
			}
			c.Write(appendAnswer(nil, answer{version: wireVersion, status: hsOK, id: 1, clusterID: "fake"}))
			if _, err := readFrameBytes(br, 64); err != nil {
				t.Errorf("fetch request: %v", err)
			}
			c.Write(answers[i%len(answers)].b)
			c.Close() // the observer reads what was sent first
			served.Add(1)
		}
	})
	sink := newLogSink(t)
	sm := &testSM{}
	o, err := NewObserver(ObserverConfig{ID: testObserverID, Voters: map[uint64]string{1: ln.Addr().String()}, ClusterID: "fake",
		Logger: sink.logger(), StateMachine: sm, MaxMessageBytes: 1 << 20, RequestTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "every bad answer", func() bool { return int(served.Load()) >= len(answers) })
	eventually(t, "the last one handled", func() bool { return sink.count("cannot follow voter") >= len(answers) })
	for _, a := range answers {
		if sink.count("cannot follow voter", a.log) == 0 {
			t.Errorf("%s: no warning mentioning %q", a.name, a.log)
		}
	}
	if err := o.Stop(); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	wg.Wait()
	if got, _, _ := sm.state(); len(got) != 0 || len(sm.restoredFrom()) != 0 {
		t.Fatalf("a bad answer reached the state machine: %v %v", got, sm.restoredFrom())
	}
	if st := o.Status(); st.Applied != 0 || st.Err != nil {
		t.Fatalf("status %+v", st)
	}
	noObserverGoroutines(t)
}
