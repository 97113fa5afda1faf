package quorum

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// memNet drives cores by hand: logical ticks and an in-memory message queue,
// no goroutines and no wall clock.
type memNet struct {
	t     *testing.T
	ids   []uint64
	base  string
	sink  *logSink
	tweak func(*Config)
	cores map[uint64]*core
	sms   map[uint64]*testSM
	down  map[uint64]bool
	queue []raftpb.Message
}

func newMemNet(t *testing.T, n int, tweak func(*Config)) *memNet {
	t.Helper()
	net := &memNet{t: t, base: t.TempDir(), sink: newLogSink(t), tweak: tweak,
		cores: map[uint64]*core{}, sms: map[uint64]*testSM{}, down: map[uint64]bool{}}
	for i := 1; i <= n; i++ {
		net.ids = append(net.ids, uint64(i))
	}
	for _, id := range net.ids {
		net.open(id)
	}
	t.Cleanup(func() {
		for _, c := range net.cores {
			c.st.close()
		}
	})
	return net
}

func (n *memNet) config(id uint64) Config {
	peers := map[uint64]string{}
	for _, p := range n.ids {
		peers[p] = fmt.Sprintf("node%d:9093", p)
	}
	cfg := Config{ID: id, Peers: peers, Dir: filepath.Join(n.base, fmt.Sprint(id)), ClusterID: "mem",
		StateMachine: n.sms[id], Logger: n.sink.logger().With("node", id)}
	if n.tweak != nil {
		n.tweak(&cfg)
	}
	c, err := cfg.withDefaults()
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// open (re)starts a core from its directory with a fresh state machine.
func (n *memNet) open(id uint64) {
	n.t.Helper()
	n.sms[id] = &testSM{}
	cfg := n.config(id)
	st, snap, err := openStorage(&cfg, cfg.Logger)
	if err != nil {
		n.t.Fatalf("node %d: open storage: %v", id, err)
	}
	c, err := newCore(&cfg, st, snap, cfg.Logger)
	if err != nil {
		n.t.Fatalf("node %d: %v", id, err)
	}
	n.cores[id] = c
	n.process(id)
}

func (n *memNet) crash(id uint64) {
	n.t.Helper()
	if err := n.cores[id].st.close(); err != nil {
		n.t.Fatal(err)
	}
	n.down[id] = true
}

func (n *memNet) send(msgs []raftpb.Message) { n.queue = append(n.queue, msgs...) }

func (n *memNet) process(id uint64) {
	n.t.Helper()
	if err := n.cores[id].process(n.send); err != nil {
		n.t.Fatalf("node %d: %v", id, err)
	}
}

// settle delivers messages until none are left; messages to or from a down
// node are lost.
func (n *memNet) settle() {
	n.t.Helper()
	for i := 0; len(n.queue) > 0; i++ {
		if i > 1_000_000 {
			n.t.Fatal("messages never settle")
		}
		m := n.queue[0]
		n.queue = n.queue[1:]
		if n.down[m.To] || n.down[m.From] {
			continue
		}
		n.cores[m.To].step(m)
		n.process(m.To)
		if m.Type == raftpb.MsgSnap {
			n.cores[m.From].report(report{to: m.To, snapshot: true, status: raft.SnapshotFinish})
			n.process(m.From)
		}
	}
}

func (n *memNet) tick() {
	n.t.Helper()
	for _, id := range n.ids {
		if !n.down[id] {
			n.cores[id].tick()
			n.process(id)
		}
	}
	n.settle()
}

// leader returns the leader all live nodes agree on, or 0.
func (n *memNet) leader() uint64 {
	var lead uint64
	for _, id := range n.ids {
		if n.down[id] {
			continue
		}
		st := n.cores[id].rn.BasicStatus()
		if st.Lead == raft.None || (lead != 0 && st.Lead != lead) || n.down[st.Lead] {
			return 0
		}
		lead = st.Lead
	}
	return lead
}

func (n *memNet) elect() uint64 {
	n.t.Helper()
	for range 1000 {
		n.tick()
		if l := n.leader(); l != 0 {
			return l
		}
	}
	n.t.Fatal("no leader after 1000 ticks")
	return 0
}

// propose proposes on id and settles; the result is nil if still pending.
func (n *memNet) propose(id uint64, data string) (*proposal, *proposalResult) {
	n.t.Helper()
	var pid propID
	copy(pid[:], data)
	p := newProposal(context.Background(), pid, []byte(data))
	n.cores[id].propose(p)
	n.process(id)
	n.settle()
	select {
	case r := <-p.done:
		return p, &r
	default:
		return p, nil
	}
}

func (n *memNet) mustPropose(id uint64, data string) uint64 {
	n.t.Helper()
	_, r := n.propose(id, data)
	if r == nil || r.err != nil {
		n.t.Fatalf("propose %q on node %d: %+v", data, id, r)
	}
	return r.index
}

// checkSame fails unless every live node applied exactly want.
func (n *memNet) checkSame(want []string) {
	n.t.Helper()
	for _, id := range n.ids {
		if n.down[id] {
			continue
		}
		got, _, err := n.sms[id].state()
		if err != nil {
			n.t.Fatalf("node %d: %v", id, err)
		}
		if !slices.Equal(got, want) {
			n.t.Fatalf("node %d applied %v, want %v", id, got, want)
		}
	}
}

func TestCoreElectAndReplicate(t *testing.T) {
	n := newMemNet(t, 3, nil)
	lead := n.elect()
	var last uint64
	want := entryNames("e", 0, 20)
	for _, d := range want {
		idx := n.mustPropose(lead, d)
		if idx <= last {
			t.Fatalf("index %d after %d", idx, last)
		}
		last = idx
	}
	n.tick() // followers learn the final commit index from a heartbeat
	n.checkSame(want)
	st := n.cores[lead].status()
	if st.Role != "leader" || st.Leader != lead || st.Applied != last || len(st.Peers) != 3 {
		t.Fatalf("leader status %+v", st)
	}
	for id, ps := range st.Peers {
		if ps.Match != last || ps.Lag != 0 {
			t.Fatalf("peer %d progress %+v, want match %d", id, ps, last)
		}
	}
}

func TestCoreProposeOnFollower(t *testing.T) {
	n := newMemNet(t, 3, nil)
	lead := n.elect()
	follower := n.ids[0]
	if follower == lead {
		follower = n.ids[1]
	}
	_, r := n.propose(follower, "x")
	var nl *NotLeaderError
	if r == nil || !errors.As(r.err, &nl) || nl.Leader != lead || !errors.Is(r.err, ErrNotLeader) {
		t.Fatalf("propose on follower: %+v, want NotLeaderError{%d}", r, lead)
	}
}

func TestCoreProposalWaitsForLeader(t *testing.T) {
	n := newMemNet(t, 3, nil)
	p, r := n.propose(1, "early")
	if r != nil {
		t.Fatalf("proposal before any election finished: %+v", r)
	}
	lead := n.elect()
	n.settle()
	res := <-p.done
	var nl *NotLeaderError
	switch {
	case lead == 1 && res.err == nil:
		n.tick()
		n.checkSame([]string{"early"})
	case lead != 1 && errors.As(res.err, &nl) && nl.Leader == lead:
	default:
		t.Fatalf("leader %d, proposal result %+v", lead, res)
	}
}

// An entry the old leader appended but could not commit is overwritten by
// the new leader; its proposal must fail rather than hang.
func TestCoreDroppedProposalOnLeaderChange(t *testing.T) {
	n := newMemNet(t, 3, nil)
	old := n.elect()
	n.mustPropose(old, "committed")
	n.down[old] = true // partitioned, but still believes it leads
	p, r := n.propose(old, "lost")
	if r != nil {
		t.Fatalf("isolated leader finished a proposal: %+v", r)
	}
	lead := n.elect()
	if lead == old {
		t.Fatal("isolated node re-elected")
	}
	n.mustPropose(lead, "new")
	n.down[old] = false
	for range 100 {
		n.tick()
		select {
		case res := <-p.done:
			if !errors.Is(res.err, ErrProposalDropped) {
				t.Fatalf("overwritten proposal: %+v", res)
			}
			n.tick()
			n.checkSame([]string{"committed", "new"})
			return
		default:
		}
	}
	t.Fatal("overwritten proposal never finished")
}

// A follower that misses more than the leader keeps is caught up with a
// snapshot, and WAL segments before snapshots are deleted.
func TestCoreSnapshotCatchUp(t *testing.T) {
	n := newMemNet(t, 3, func(c *Config) { c.SnapshotEvery, c.CatchUpEntries = 10, 2 })
	lead := n.elect()
	lagger := n.ids[0]
	if lagger == lead {
		lagger = n.ids[1]
	}
	want := entryNames("a", 0, 5)
	for _, d := range want {
		n.mustPropose(lead, d)
	}
	n.down[lagger] = true
	more := entryNames("b", 0, 40)
	for _, d := range more {
		n.mustPropose(lead, d)
	}
	want = append(want, more...)
	if first, _ := n.cores[lead].st.ms.FirstIndex(); first <= n.sms[lagger].applied {
		t.Fatalf("leader log still starts at %d, lagger applied %d: no snapshot needed", first, n.sms[lagger].applied)
	}
	n.down[lagger] = false
	for range 50 {
		n.tick()
	}
	n.checkSame(want)
	if rs := n.sms[lagger].restoredFrom(); len(rs) == 0 {
		t.Fatal("lagging follower was not sent a snapshot")
	}
	for _, id := range n.ids {
		if segs := len(n.cores[id].st.wal.segs); segs > 2 {
			t.Fatalf("node %d keeps %d wal segments after snapshots", id, segs)
		}
	}
}

// Restarting every node from disk restores the snapshot, applies the rest
// of the log once, and the cluster carries on.
func TestCoreRestartAll(t *testing.T) {
	n := newMemNet(t, 3, func(c *Config) { c.SnapshotEvery, c.CatchUpEntries = 7, 3 })
	lead := n.elect()
	want := entryNames("r", 0, 25)
	for _, d := range want {
		n.mustPropose(lead, d)
	}
	n.tick()
	n.checkSame(want)
	for _, id := range n.ids {
		n.crash(id)
	}
	n.queue = nil
	for _, id := range n.ids {
		n.down[id] = false
		n.open(id)
		if rs := n.sms[id].restoredFrom(); len(rs) != 1 {
			t.Fatalf("node %d restored from %v at start, want one snapshot", id, rs)
		}
	}
	lead = n.elect()
	n.mustPropose(lead, "after")
	n.tick()
	n.checkSame(append(want, "after"))
}
