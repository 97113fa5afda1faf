package quorum

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// cluster runs Nodes over loopback TCP with a 10ms tick.
type cluster struct {
	t     *testing.T
	ids   []uint64
	peers map[uint64]string
	base  string
	sink  *logSink
	tweak func(*Config)
	lns   map[uint64]net.Listener // reserved ports, used by the first start
	mu    sync.Mutex
	nodes map[uint64]*Node
	sms   map[uint64]*testSM
}

func newCluster(t *testing.T, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, peers: map[uint64]string{}, base: t.TempDir(), sink: newLogSink(t), tweak: tweak,
		lns: map[uint64]net.Listener{}, nodes: map[uint64]*Node{}, sms: map[uint64]*testSM{}}
	for i := 1; i <= n; i++ {
		id := uint64(i)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.ids = append(c.ids, id)
		c.lns[id] = ln
		c.peers[id] = ln.Addr().String()
	}
	t.Cleanup(func() {
		for _, id := range c.ids {
			c.stop(id)
		}
		for _, ln := range c.lns {
			ln.Close()
		}
	})
	for _, id := range c.ids {
		c.start(id)
	}
	return c
}

func (c *cluster) config(id uint64, sm StateMachine) Config {
	cfg := Config{
		ID: id, Peers: c.peers, Dir: filepath.Join(c.base, fmt.Sprint(id)), ClusterID: "test-cluster",
		Logger: c.sink.logger(), StateMachine: sm,
		TickInterval: 10 * time.Millisecond, ElectionTicks: 20, HeartbeatTicks: 2,
	}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	return cfg
}

// start starts (or restarts) a node with a fresh state machine.
func (c *cluster) start(id uint64) {
	c.t.Helper()
	sm := &testSM{}
	cfg := c.config(id, sm)
	if ln := c.lns[id]; ln != nil {
		cfg.Listener = ln
		delete(c.lns, id)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("node %d: %v", id, err)
	}
	if err := n.Start(); err != nil {
		c.t.Fatalf("node %d: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id], c.sms[id] = n, sm
	c.mu.Unlock()
}

func (c *cluster) stop(id uint64) {
	c.t.Helper()
	c.mu.Lock()
	n := c.nodes[id]
	delete(c.nodes, id)
	c.mu.Unlock()
	if n == nil {
		return
	}
	if err := n.Stop(); err != nil {
		c.t.Errorf("stop node %d: %v", id, err)
	}
}

func (c *cluster) node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *cluster) running() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for _, id := range c.ids {
		if c.nodes[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// waitLeader waits until every running node names the same running leader.
func (c *cluster) waitLeader() uint64 {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var lead uint64
		ok := true
		for _, id := range c.running() {
			l := c.node(id).Leader()
			if l == 0 || (lead != 0 && l != lead) {
				ok = false
				break
			}
			lead = l
		}
		if ok && lead != 0 {
			if n := c.node(lead); n != nil && n.Status().Role == "leader" {
				return lead
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no agreed leader within 10s")
	return 0
}

// proposeOnLeader proposes data on whichever node leads, retrying across
// leader changes.
func (c *cluster) proposeOnLeader(data string) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		lead := c.waitLeader()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var idx uint64
		idx, err = c.node(lead).Propose(ctx, []byte(data))
		cancel()
		if err == nil {
			return idx
		}
		if errors.Is(err, ErrNoQuorum) || errors.Is(err, ErrOutcomeUnknown) {
			c.t.Fatalf("propose %q: %v", data, err) // a retry could apply it twice
		}
		c.t.Logf("propose %q on node %d: %v; retrying", data, lead, err)
	}
	c.t.Fatalf("propose %q: %v", data, err)
	return 0
}

// waitApplied waits until each running node has applied exactly want.
func (c *cluster) waitApplied(want []string) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		done := true
		var report string
		for _, id := range c.running() {
			got, applied, err := c.sms[id].state()
			if err != nil {
				c.t.Fatalf("node %d state machine: %v", id, err)
			}
			if !slices.Equal(got, want) {
				done = false
				report += fmt.Sprintf("\nnode %d applied %d entries (to index %d)", id, len(got), applied)
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes did not converge on %d entries:%s", len(want), report)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterReplicatesInOrder(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitLeader()
	want := entryNames("seq", 0, 30)
	var last uint64
	for _, d := range want {
		idx := c.proposeOnLeader(d)
		if idx <= last {
			t.Fatalf("index %d after %d", idx, last)
		}
		last = idx
		// The proposer sees its own write.
		if got, _, _ := c.sms[c.waitLeader()].state(); !slices.Contains(got, d) {
			t.Fatalf("Propose returned before %q was applied on the leader", d)
		}
	}
	// Concurrent proposals are all committed, in one order everywhere.
	var wg sync.WaitGroup
	conc := entryNames("conc", 0, 40)
	for _, d := range conc {
		wg.Go(func() { c.proposeOnLeader(d) })
	}
	wg.Wait()
	lead := c.waitLeader()
	all, _, _ := c.sms[lead].state()
	if len(all) != len(want)+len(conc) || !slices.Equal(all[:len(want)], want) {
		t.Fatalf("leader applied %v", all)
	}
	for _, d := range conc {
		if !slices.Contains(all, d) {
			t.Fatalf("%q missing", d)
		}
	}
	c.waitApplied(all)

	follower := c.ids[0]
	if follower == lead {
		follower = c.ids[1]
	}
	_, err := c.node(follower).Propose(context.Background(), []byte("x"))
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.Leader != lead {
		t.Fatalf("propose on follower %d: %v, want NotLeaderError{%d}", follower, err, lead)
	}
	fs := c.node(follower).Status()
	if fs.Role != "follower" || fs.Leader != lead || !slices.Equal(fs.Voters, []uint64{1, 2, 3}) || fs.Peers != nil {
		t.Fatalf("follower status %+v", fs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls := c.node(lead).Status()
		caughtUp := ls.Role == "leader" && len(ls.Peers) == 3 && ls.Applied == ls.LastIndex
		for _, ps := range ls.Peers {
			caughtUp = caughtUp && ps.Lag == 0 && ps.Match == ls.LastIndex
		}
		if caughtUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader status never showed caught-up peers: %+v", ls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterFailoverAndCatchUp(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.waitLeader()
	want := entryNames("before", 0, 10)
	for _, d := range want {
		c.proposeOnLeader(d)
	}
	c.stop(old)
	start := time.Now()
	lead := c.waitLeader()
	if lead == old {
		t.Fatal("stopped node still leads")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("new leader took %v", d)
	}
	t.Logf("node %d took over from node %d in %v", lead, old, time.Since(start))
	after := entryNames("after", 0, 10)
	for _, d := range after {
		c.proposeOnLeader(d)
	}
	want = append(want, after...)
	c.start(old)
	c.waitApplied(want)
	if got := c.waitLeader(); got == 0 {
		t.Fatal("no leader after the old one rejoined")
	}
}

// A follower that was down while the leader snapshotted and compacted
// its log is caught up with a snapshot over TCP.
func TestClusterSnapshotCatchUp(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) { cfg.SnapshotEvery, cfg.CatchUpEntries = 20, 5 })
	lead := c.waitLeader()
	want := entryNames("a", 0, 5)
	for _, d := range want {
		c.proposeOnLeader(d)
	}
	c.waitApplied(want)
	lagger := c.ids[0]
	if lagger == lead {
		lagger = c.ids[1]
	}
	_, before, _ := c.sms[lagger].state()
	c.stop(lagger)
	more := entryNames("b", 0, 100)
	for _, d := range more {
		c.proposeOnLeader(d)
	}
	want = append(want, more...)
	if si := c.node(c.waitLeader()).Status().SnapshotIndex; si <= before+5 {
		t.Fatalf("leader snapshot at %d; the lagger applied %d", si, before)
	}
	c.start(lagger)
	c.waitApplied(want)
	if rs := c.sms[lagger].restoredFrom(); len(rs) == 0 || slices.Max(rs) <= before {
		t.Fatalf("lagger restored from %v; it had applied %d: no snapshot from the leader", rs, before)
	}
	if c.sink.count("installed snapshot from leader", fmt.Sprintf("node=%d", lagger)) == 0 {
		t.Fatal("no snapshot installation logged")
	}
}

func TestClusterFiveNodesQuorumLoss(t *testing.T) {
	c := newCluster(t, 5, nil)
	c.waitLeader()
	var acked []string
	for _, d := range entryNames("a", 0, 5) {
		c.proposeOnLeader(d)
		acked = append(acked, d)
	}
	// Two of five down: still a quorum.
	var stopped []uint64
	stopFollower := func() {
		t.Helper()
		lead := c.waitLeader()
		for _, id := range c.running() {
			if id != lead {
				c.stop(id)
				stopped = append(stopped, id)
				return
			}
		}
	}
	stopFollower()
	stopFollower()
	for _, d := range entryNames("b", 0, 5) {
		c.proposeOnLeader(d)
		acked = append(acked, d)
	}
	// Three of five down: proposals on the last leader fail once the
	// deadline passes, whether it still leads or has stepped down.
	stopFollower()
	lead := c.running()[0]
	if c.node(lead).Leader() != lead {
		lead = c.running()[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	start := time.Now()
	_, err := c.node(lead).Propose(ctx, []byte("doomed"))
	cancel()
	if !errors.Is(err, ErrNoQuorum) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("propose on node %d without quorum: %v, want ErrNoQuorum", lead, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("propose without quorum returned after %v with a 1s deadline", d)
	}
	t.Logf("without quorum: %v", err)
	for _, id := range stopped {
		c.start(id)
	}
	for _, d := range entryNames("c", 0, 5) {
		c.proposeOnLeader(d)
		acked = append(acked, d)
	}
	// "doomed" may have committed after all (it was in the leader's log);
	// every acknowledged entry is there exactly once, in order.
	final, _, _ := c.sms[c.waitLeader()].state()
	withoutDoomed := slices.DeleteFunc(slices.Clone(final), func(s string) bool { return s == "doomed" })
	if !slices.Equal(withoutDoomed, acked) || len(final)-len(withoutDoomed) > 1 {
		t.Fatalf("applied %v, acknowledged %v", final, acked)
	}
	c.waitApplied(final)
}

// A node configured for another cluster is refused at the handshake, and
// the cluster does not notice it.
func TestClusterRejectsWrongClusterPeer(t *testing.T) {
	c := newCluster(t, 3, nil)
	c.waitLeader()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peers := map[uint64]string{1: c.peers[1], 2: c.peers[2], 3: ln.Addr().String()}
	rogueSink := newLogSink(t)
	rogue, err := New(Config{ID: 3, Peers: peers, Dir: t.TempDir(), ClusterID: "another-cluster", Listener: ln,
		Logger: rogueSink.logger(), StateMachine: &testSM{}, TickInterval: 10 * time.Millisecond, ElectionTicks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Start(); err != nil {
		t.Fatal(err)
	}
	defer rogue.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for c.sink.count("rejected peer connection", "wrong cluster id", "another-cluster") == 0 ||
		rogueSink.count("peer refused the handshake: wrong cluster id") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("rogue node's connections were not rejected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.proposeOnLeader("still-working")
	c.waitApplied([]string{"still-working"})
	if rogue.Leader() != 0 {
		t.Fatalf("rogue node found leader %d", rogue.Leader())
	}
}

// Garbage on the controller port closes that connection; the quorum goes on.
func TestClusterDisconnectsGarbage(t *testing.T) {
	c := newCluster(t, 3, nil)
	lead := c.waitLeader()
	for i, payload := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: strata\r\n\r\n"),
		append([]byte(helloMagic), make([]byte, 600)...),
		bytesOf(0xff, 4096),
	} {
		conn, err := net.Dial("tcp", c.peers[lead])
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(payload)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 1024)
		for {
			_, err = conn.Read(buf)
			if err != nil {
				break
			}
		}
		conn.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("garbage %d: connection left open", i)
		}
	}
	if c.sink.count("closing connection: bad handshake") < 2 {
		t.Fatal("garbage connections not logged")
	}
	// A second connection claiming a live peer's id is refused: from
	// another process (the leader asks the peer at its address), or of
	// version 1 while the peer's connection is open.
	other := c.ids[0]
	if other == lead {
		other = c.ids[1]
	}
	for _, tc := range []struct {
		h    hello
		want byte
	}{
		{hello{version: wireVersion, from: other, to: lead, clusterID: "test-cluster", incarnation: 42}, hsNotTheVoter},
		{hello{version: wireVersion1, from: other, to: lead, clusterID: "test-cluster"}, hsDuplicateNode},
	} {
		conn, err := net.Dial("tcp", c.peers[lead])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write(appendHello(nil, tc.h))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if a, err := readAnswer(conn); err != nil || a.status != tc.want {
			t.Fatalf("duplicate node %d, version %d: answer %+v, %v", other, tc.h.version, a, err)
		}
	}
	want := entryNames("after-garbage", 0, 5)
	for _, d := range want {
		c.proposeOnLeader(d)
	}
	c.waitApplied(want)
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestSingleVoter(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	open := func(sm *testSM) *Node {
		t.Helper()
		// Default tick (100ms): an election by timeout would take over a
		// second, so a quick first Propose shows the node elected itself.
		n, err := New(Config{ID: 1, Peers: map[uint64]string{1: ""}, Dir: dir, ClusterID: "solo",
			Logger: sink.logger(), StateMachine: sm, SnapshotEvery: 4, CatchUpEntries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		return n
	}
	sm := &testSM{}
	n := open(sm)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var last uint64
	want := entryNames("solo", 0, 10)
	for _, d := range want {
		idx, err := n.Propose(ctx, []byte(d))
		if err != nil {
			t.Fatalf("single voter propose: %v", err)
		}
		if idx <= last {
			t.Fatalf("index %d after %d", idx, last)
		}
		last = idx
	}
	st := n.Status()
	if st.Role != "leader" || st.Leader != 1 || !slices.Equal(st.Voters, []uint64{1}) || st.Applied != last || n.Addr() != nil {
		t.Fatalf("status %+v addr %v", st, n.Addr())
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := n.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := n.Propose(context.Background(), []byte("late")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose after stop: %v", err)
	}
	if st := n.Status(); st.Role != "stopped" || st.Applied != last {
		t.Fatalf("status after stop: %+v", st)
	}

	if _, err := New(Config{ID: 1, Peers: map[uint64]string{1: ""}, Dir: dir, ClusterID: "not-solo", StateMachine: &testSM{}}); !errors.Is(err, ErrClusterIDMismatch) {
		t.Fatalf("restart with another cluster id: %v", err)
	}

	sm = &testSM{}
	n = open(sm)
	defer n.Stop()
	if got, _, err := sm.state(); err != nil || !slices.Equal(got, want) {
		t.Fatalf("after restart the state machine holds %v (%v), want %v", got, err, want)
	}
	if len(sm.restoredFrom()) != 1 {
		t.Fatal("restart did not restore the snapshot")
	}
	idx, err := n.Propose(ctx, []byte("after-restart"))
	if err != nil || idx <= last {
		t.Fatalf("propose after restart: %d, %v (last %d)", idx, err, last)
	}
	if got, _, _ := sm.state(); !slices.Equal(got, append(want, "after-restart")) {
		t.Fatalf("state machine %v", got)
	}
}
