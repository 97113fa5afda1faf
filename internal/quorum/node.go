package quorum

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// Node is one voter of the quorum: the core driven by a goroutine with a
// ticker, and a TCP transport to the other voters. Its listener also serves
// Observers.
type Node struct {
	cfg  Config
	log  *slog.Logger
	st   *diskStorage
	core *core // owned by the run goroutine once started
	tr   *transport
	view *logView // what observers are served
	addr net.Addr

	nonce [8]byte
	seq   atomic.Uint64

	propc   chan *proposal
	recvc   chan raftpb.Message
	reportc chan report
	statusc chan chan Status
	stopc   chan struct{}
	donec   chan struct{}
	err     error // why run ended; written before donec closes

	leader  atomic.Uint64
	started atomic.Bool
	final   atomic.Pointer[Status]

	mu      sync.Mutex // serialises Start and Stop
	state   int
	stopErr error
}

const (
	stateNew = iota
	stateRunning
	stateStopped
)

// New opens (formatting on first use) the raft state in cfg.Dir, restores
// the state machine from its snapshot and applies the entries after it that
// this node knows are committed. Nothing listens until Start.
func New(cfg Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	log := c.Logger.With("component", "quorum", "node", c.ID)
	st, snap, err := openStorage(&c, log)
	if err != nil {
		return nil, err
	}
	core, err := newCore(&c, st, snap, log)
	if err != nil {
		st.close()
		return nil, err
	}
	// Apply what the log holds as committed now, so the state machine is
	// caught up with this node's disk when New returns. Nothing is sent
	// yet: a node that has not ticked has no messages.
	if err := core.process(func([]raftpb.Message) {}); err != nil {
		st.close()
		return nil, err
	}
	n := &Node{
		cfg:     c,
		log:     log,
		st:      st,
		core:    core,
		view:    newLogView(st.ms),
		propc:   make(chan *proposal, 256),
		recvc:   make(chan raftpb.Message, 256),
		reportc: make(chan report, 256),
		statusc: make(chan chan Status),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
	}
	if _, err := rand.Read(n.nonce[:]); err != nil {
		st.close()
		return nil, fmt.Errorf("quorum: random proposal id prefix: %w", err)
	}
	return n, nil
}

// Start listens for peers and starts the node. A single voter elects itself
// at once.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateNew {
		return fmt.Errorf("quorum: Start on a node that was already started")
	}
	ln := n.cfg.Listener
	if addr := n.cfg.Peers[n.cfg.ID]; ln == nil && addr != "" {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("quorum: listen for peers on %s: %w", addr, err)
		}
	}
	if ln != nil {
		n.addr = ln.Addr()
	}
	peers := make(map[uint64]string, len(n.cfg.Peers))
	for id, addr := range n.cfg.Peers {
		if id != n.cfg.ID {
			peers[id] = addr
		}
	}
	n.tr = newTransport(transportConfig{
		id:        n.cfg.ID,
		clusterID: n.cfg.ClusterID,
		peers:     peers,
		ln:        ln,
		maxFrame:  n.cfg.MaxMessageBytes,
		log:       n.log,
		deliver:   n.deliver,
		report:    n.report,
		view:      n.view,
		dialFn:    n.cfg.Dial,
	})
	if n.core.singleVoter() {
		if err := n.core.campaign(); err != nil {
			if ln != nil {
				ln.Close()
			}
			return fmt.Errorf("quorum: campaign: %w", err)
		}
	}
	n.state = stateRunning
	n.started.Store(true)
	n.view.publish(n.core.applied, n.core.commit, n.core.lead)
	n.tr.start()
	go n.run()
	n.log.Info("raft node started", "addr", n.addr, "voters", sortedIDs(n.cfg.Peers), "cluster_id", n.cfg.ClusterID)
	return nil
}

// Stop stops the node: outstanding proposals fail with ErrStopped, the
// listener and connections close, and the WAL is fsynced and closed. It is
// idempotent and returns the same error every time.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch n.state {
	case stateStopped:
		return n.stopErr
	case stateRunning:
		close(n.stopc)
		<-n.donec
		n.tr.stop()
	default:
		close(n.donec)
		if n.cfg.Listener != nil {
			n.cfg.Listener.Close()
		}
	}
	n.state = stateStopped
	n.stopErr = n.st.close()
	if n.stopErr == nil && n.err != nil && !errors.Is(n.err, ErrStopped) {
		n.stopErr = n.err
	}
	n.log.Info("raft node stopped")
	return n.stopErr
}

// Failed is closed when the node has stopped on its own (not by Stop);
// Err then says why.
func (n *Node) Failed() <-chan struct{} { return n.donec }

// Err is why the node stopped, once Failed is closed (ErrStopped after
// Stop).
func (n *Node) Err() error {
	select {
	case <-n.donec:
		return n.err
	default:
		return nil
	}
}

// ID returns this node's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Addr returns the address the node listens on for peers, once started;
// nil for a single voter without an address.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Leader returns the id of the leader this node knows of, or 0.
func (n *Node) Leader() uint64 { return n.leader.Load() }

// Status reports this node's raft state; a stopped node reports its last.
func (n *Node) Status() Status {
	if n.started.Load() {
		ch := make(chan Status, 1)
		select {
		case n.statusc <- ch:
			return <-ch
		case <-n.donec:
		}
		if s := n.final.Load(); s != nil {
			return *s
		}
	}
	return Status{ID: n.cfg.ID, Role: "stopped"}
}

// Propose commits data as a new entry and returns its index once the entry
// is applied to this node's state machine. Only the leader accepts
// proposals: elsewhere the error is a *NotLeaderError naming the leader.
// While no leader is known it waits for one. If ctx's deadline passes
// first, the error wraps ErrNoQuorum and context.DeadlineExceeded; the
// entry may still commit later. ErrProposalDropped means it never will.
func (n *Node) Propose(ctx context.Context, data []byte) (uint64, error) {
	if len(data) > MaxProposalBytes {
		return 0, fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(data), MaxProposalBytes)
	}
	if !n.started.Load() {
		return 0, ErrStopped
	}
	var id propID
	copy(id[:], n.nonce[:])
	binary.BigEndian.PutUint64(id[8:], n.seq.Add(1))
	p := newProposal(ctx, id, data)
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return 0, n.ctxErr(ctx)
	case <-n.donec:
		return 0, n.err
	}
	select {
	case r := <-p.done:
		return r.index, r.err
	case <-ctx.Done():
		select {
		case r := <-p.done:
			return r.index, r.err
		default:
		}
		return 0, n.ctxErr(ctx)
	case <-n.donec:
		select {
		case r := <-p.done:
			return r.index, r.err
		default:
		}
		return 0, n.err
	}
}

func (n *Node) ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		if l := n.Leader(); l != 0 {
			return fmt.Errorf("%w: entry not committed before the deadline (leader is node %d): %w", ErrNoQuorum, l, err)
		}
		return fmt.Errorf("%w: no leader elected before the deadline: %w", ErrNoQuorum, err)
	}
	return fmt.Errorf("quorum: proposal abandoned: %w", err)
}

func (n *Node) deliver(m raftpb.Message) bool {
	select {
	case n.recvc <- m:
		return true
	case <-n.donec:
		return false
	}
}

func (n *Node) report(r report) {
	select {
	case n.reportc <- r:
	case <-n.donec:
	}
}

// run is the only goroutine that touches the core.
func (n *Node) run() {
	defer close(n.donec)
	n.err = ErrStopped
	defer func() {
		s := n.core.status()
		s.Role = "stopped"
		n.final.Store(&s)
	}()
	// etcd raft panics (through raftLogger) on what it cannot go on from,
	// a voter whose log lost entries the quorum committed above all: the
	// node stops with that error (Failed) instead of taking the process
	// down with a stack trace.
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		rp, ok := r.(raftPanic)
		if !ok {
			panic(r)
		}
		n.err = fmt.Errorf("quorum: node %d stopped: %w", n.cfg.ID, rp.error)
		if strings.Contains(rp.Error(), "raft log corrupted, truncated, or lost") {
			n.err = fmt.Errorf("quorum: node %d: its metadata log (%s) lacks entries the quorum has committed: the directory was lost, replaced or copied from elsewhere, and a voter must never forget what it acknowledged (%w)",
				n.cfg.ID, n.cfg.Dir, rp.error)
		}
		n.core.failAll(n.err)
	}()
	send := func(msgs []raftpb.Message) {
		for _, r := range n.tr.send(msgs) {
			n.core.report(r)
		}
	}
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		if err := n.core.process(send); err != nil {
			n.err = fmt.Errorf("quorum: node %d stopped: %w", n.cfg.ID, err)
			// The owner reports it (Failed, Err): the server logs
			// the one ERROR line and exits.
			n.log.Debug("raft node failed", "error", err)
			n.core.failAll(n.err)
			return
		}
		n.leader.Store(n.core.lead)
		n.view.publish(n.core.applied, n.core.commit, n.core.lead)
		select {
		case <-n.stopc:
			n.core.failAll(ErrStopped)
			return
		case <-ticker.C:
			n.core.tick()
		case m := <-n.recvc:
			n.core.step(m)
		case p := <-n.propc:
			n.core.propose(p)
		case r := <-n.reportc:
			n.core.report(r)
		case ch := <-n.statusc:
			ch <- n.core.status()
		}
		n.drain()
	}
}

// drain takes what else is already waiting, so that one Ready (and one
// fsync) covers it.
func (n *Node) drain() {
	for range 256 {
		select {
		case m := <-n.recvc:
			n.core.step(m)
		case p := <-n.propc:
			n.core.propose(p)
		case r := <-n.reportc:
			n.core.report(r)
		default:
			return
		}
	}
}
