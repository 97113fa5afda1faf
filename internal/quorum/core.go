package quorum

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// An entry proposed through a Node carries an envelope: a version byte and
// the proposal's id, so the proposing node recognises its entry when it
// commits (or finds another entry in its place).
const (
	envelopeVersion = 1
	envelopeLen     = 1 + len(propID{})
)

// propID is a per-process random prefix and a sequence number.
type propID [16]byte

func encodeEnvelope(id propID, data []byte) []byte {
	b := make([]byte, 0, envelopeLen+len(data))
	b = append(b, envelopeVersion)
	b = append(b, id[:]...)
	return append(b, data...)
}

// entryPayload returns what StateMachine.Apply receives for a committed
// entry, and whether it receives anything: conf changes and a new leader's
// empty entry are not applied. Voters apply through it and observers are
// served through it, so both see the same sequence.
func entryPayload(e *raftpb.Entry) (propID, []byte, bool, error) {
	if e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
		return propID{}, nil, false, nil
	}
	pid, data, err := decodeEnvelope(e.Data)
	if err != nil {
		return pid, nil, false, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, e.Index, err)
	}
	return pid, data, true, nil
}

func decodeEnvelope(b []byte) (propID, []byte, error) {
	var id propID
	if len(b) < envelopeLen || b[0] != envelopeVersion {
		return id, nil, fmt.Errorf("entry of %d bytes without a proposal envelope", len(b))
	}
	copy(id[:], b[1:envelopeLen])
	return id, b[envelopeLen:], nil
}

type proposal struct {
	ctx  context.Context
	id   propID
	data []byte // with envelope
	done chan proposalResult
}

type proposalResult struct {
	index uint64
	err   error
}

func newProposal(ctx context.Context, id propID, data []byte) *proposal {
	return &proposal{ctx: ctx, id: id, data: encodeEnvelope(id, data), done: make(chan proposalResult, 1)}
}

func (p *proposal) finish(index uint64, err error) {
	select {
	case p.done <- proposalResult{index: index, err: err}:
	default:
	}
}

// report is a transport's outcome for a message, fed back to raft.
type report struct {
	to       uint64
	snapshot bool // MsgSnap: status is meaningful
	status   raft.SnapshotStatus
}

// core is the node's state without goroutines, sockets or timers: a
// RawNode, its storage and the state machine. The driver (Node.run, or a
// test) calls tick, step, propose and report, then process, which persists,
// sends through the given function, and applies.
type core struct {
	id  uint64
	log *slog.Logger
	rn  *raft.RawNode
	st  *diskStorage
	sm  StateMachine

	snapshotEvery, catchUp uint64
	applied                uint64
	commit                 uint64 // from the latest HardState
	snapIndex              uint64 // of the latest snapshot, taken or received
	snapFailedAt           uint64 // applied index when StateMachine.Snapshot last failed
	confState              raftpb.ConfState
	lead                   uint64
	state                  raft.StateType

	proposed map[propID]*proposal // accepted by raft, not yet seen in a Ready
	pending  map[uint64]*proposal // in the log at that index, not yet applied
	waiting  []*proposal          // arrived while no leader was known
}

// newCore restores the state machine from snap and starts raft on st.
func newCore(cfg *Config, st *diskStorage, snap raftpb.Snapshot, log *slog.Logger) (*core, error) {
	sm := snap.Metadata
	// Index 1 is the bootstrap snapshot: voters only, no state.
	if sm.Index > 1 {
		if err := cfg.StateMachine.Restore(snap.Data, sm.Index); err != nil {
			return nil, fmt.Errorf("quorum: restore state machine from snapshot at %d: %w", sm.Index, err)
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   st.ms,
		Applied:                   sm.Index,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 128 << 20,
		CheckQuorum:               true,
		PreVote:                   true,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{log},
	})
	if err != nil {
		return nil, fmt.Errorf("quorum: start raft: %w", err)
	}
	hs, _, err := st.ms.InitialState()
	if err != nil {
		return nil, fmt.Errorf("quorum: read hard state: %w", err)
	}
	return &core{
		id:            cfg.ID,
		log:           log,
		rn:            rn,
		st:            st,
		sm:            cfg.StateMachine,
		snapshotEvery: cfg.SnapshotEvery,
		catchUp:       cfg.CatchUpEntries,
		applied:       sm.Index,
		commit:        hs.Commit,
		snapIndex:     sm.Index,
		confState:     sm.ConfState,
		state:         raft.StateFollower,
		proposed:      map[propID]*proposal{},
		pending:       map[uint64]*proposal{},
	}, nil
}

func (c *core) tick() {
	c.rn.Tick()
	// Forget proposals whose callers gave up while no leader was known,
	// rather than committing them later; and stop tracking log entries
	// nobody waits for (they may still commit).
	c.waiting = slices.DeleteFunc(c.waiting, func(p *proposal) bool { return p.ctx.Err() != nil })
	for i, p := range c.pending {
		if p.ctx.Err() != nil {
			delete(c.pending, i)
		}
	}
}

func (c *core) step(m raftpb.Message) {
	if err := c.rn.Step(m); err != nil {
		c.log.Debug("raft refused message", "type", m.Type.String(), "from", m.From, "error", err)
	}
}

func (c *core) report(r report) {
	if r.snapshot {
		c.rn.ReportSnapshot(r.to, r.status)
	}
	if !r.snapshot || r.status == raft.SnapshotFailure {
		c.rn.ReportUnreachable(r.to)
	}
}

// campaign starts an election; a single voter wins it at once.
func (c *core) campaign() error { return c.rn.Campaign() }

func (c *core) singleVoter() bool {
	return len(c.confState.Voters) == 1 && c.confState.Voters[0] == c.id
}

func (c *core) propose(p *proposal) {
	if p.ctx.Err() != nil {
		return // the caller is gone
	}
	bs := c.rn.BasicStatus()
	switch {
	case bs.RaftState == raft.StateLeader:
		if err := c.rn.Propose(p.data); err != nil {
			p.finish(0, fmt.Errorf("%w: %v", ErrProposalDropped, err))
			return
		}
		c.proposed[p.id] = p
	case bs.Lead != raft.None:
		p.finish(0, &NotLeaderError{Leader: bs.Lead})
	default:
		c.waiting = append(c.waiting, p)
	}
}

// process handles every Ready raft has, sending messages through send
// once what they depend on is durable. An error is fatal to the node.
func (c *core) process(send func([]raftpb.Message)) error {
	for {
		for c.rn.HasReady() {
			if err := c.handleReady(send); err != nil {
				return err
			}
		}
		for id, p := range c.proposed {
			// Every accepted proposal is in the Ready that follows;
			// this is a safety net, not a path.
			c.log.Warn("proposal accepted by raft but never appended", "id", fmt.Sprintf("%x", id))
			p.finish(0, ErrProposalDropped)
			delete(c.proposed, id)
		}
		if len(c.waiting) == 0 || c.rn.BasicStatus().Lead == raft.None {
			return nil
		}
		waiting := c.waiting
		c.waiting = nil
		for _, p := range waiting {
			c.propose(p)
		}
	}
}

func (c *core) handleReady(send func([]raftpb.Message)) error {
	rd := c.rn.Ready()
	if ss := rd.SoftState; ss != nil && (ss.Lead != c.lead || ss.RaftState != c.state) {
		// Elections pass through pre-candidate and candidate: only where
		// they end (a leader known) is worth an INFO line.
		level := slog.LevelInfo
		if ss.Lead == 0 {
			level = slog.LevelDebug
		}
		c.log.Log(context.Background(), level, "raft state changed", "role", roleName(ss.RaftState), "leader", ss.Lead, "term", c.rn.BasicStatus().Term)
		c.lead, c.state = ss.Lead, ss.RaftState
	}
	if err := c.st.save(&rd); err != nil {
		return err
	}
	c.commit = max(c.commit, rd.HardState.Commit)
	c.track(&rd)
	if len(rd.Messages) > 0 {
		send(rd.Messages)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := c.restore(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := c.apply(rd.CommittedEntries); err != nil {
		return err
	}
	c.rn.Advance(rd)
	return c.maybeSnapshot()
}

// track fails the pending proposals whose log positions a Ready overwrites
// with other entries, and learns the index of the ones it appends.
func (c *core) track(rd *raft.Ready) {
	var from uint64 // entries at from and after are replaced
	switch {
	case !raft.IsEmptySnap(rd.Snapshot):
		from = rd.Snapshot.Metadata.Index + 1
	case len(rd.Entries) > 0:
		from = rd.Entries[0].Index
	}
	if from > 0 {
		for idx, p := range c.pending {
			if idx < from {
				continue
			}
			if k := idx - from; len(rd.Entries) > 0 && rd.Entries[0].Index == from && k < uint64(len(rd.Entries)) && hasID(&rd.Entries[k], p.id) {
				continue
			}
			delete(c.pending, idx)
			p.finish(0, fmt.Errorf("%w: entry %d was replaced by another leader's log", ErrProposalDropped, idx))
		}
	}
	if len(c.proposed) == 0 {
		return
	}
	for i := range rd.Entries {
		e := &rd.Entries[i]
		if e.Type != raftpb.EntryNormal || len(e.Data) < envelopeLen {
			continue
		}
		var id propID
		copy(id[:], e.Data[1:envelopeLen])
		if p, ok := c.proposed[id]; ok && hasID(e, id) {
			delete(c.proposed, id)
			c.pending[e.Index] = p
		}
	}
}

func hasID(e *raftpb.Entry, id propID) bool {
	return e.Type == raftpb.EntryNormal && len(e.Data) >= envelopeLen && e.Data[0] == envelopeVersion && bytes.Equal(e.Data[1:envelopeLen], id[:])
}

// restore replaces the state machine with a snapshot from the leader.
func (c *core) restore(snap raftpb.Snapshot) error {
	idx := snap.Metadata.Index
	if err := c.sm.Restore(snap.Data, idx); err != nil {
		return fmt.Errorf("quorum: restore state machine from the leader's snapshot at %d: %w", idx, err)
	}
	c.log.Info("installed snapshot from leader", "index", idx, "term", snap.Metadata.Term, "bytes", len(snap.Data))
	c.applied, c.snapIndex, c.confState = idx, idx, snap.Metadata.ConfState
	for i, p := range c.pending {
		if i <= idx {
			delete(c.pending, i)
			p.finish(0, fmt.Errorf("%w: log replaced by the leader's snapshot at %d before entry %d applied", ErrOutcomeUnknown, idx, i))
		}
	}
	return nil
}

func (c *core) apply(ents []raftpb.Entry) error {
	for i := range ents {
		e := &ents[i]
		if e.Index <= c.applied {
			continue
		}
		var id propID
		mine := false
		switch e.Type {
		case raftpb.EntryNormal:
			pid, data, ok, err := entryPayload(e)
			if err != nil {
				return err
			}
			if !ok {
				break // a new leader's empty entry
			}
			if err := c.sm.Apply(e.Index, data); err != nil {
				return fmt.Errorf("quorum: state machine failed to apply entry %d: %w", e.Index, err)
			}
			id, mine = pid, true
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, e.Index, err)
			}
			c.confState = *c.rn.ApplyConfChange(cc)
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := cc.Unmarshal(e.Data); err != nil {
				return fmt.Errorf("%w: entry %d: decode conf change: %v", ErrCorrupt, e.Index, err)
			}
			c.confState = *c.rn.ApplyConfChange(cc)
		}
		c.applied = e.Index
		if p, ok := c.pending[e.Index]; ok {
			delete(c.pending, e.Index)
			if mine && p.id == id {
				p.finish(e.Index, nil)
			} else {
				p.finish(0, fmt.Errorf("%w: another entry committed at index %d", ErrProposalDropped, e.Index))
			}
		}
	}
	return nil
}

// maybeSnapshot snapshots the state machine every SnapshotEvery entries and
// compacts the log.
func (c *core) maybeSnapshot() error {
	if c.applied < c.snapIndex+c.snapshotEvery || c.applied < c.snapFailedAt+c.snapshotEvery {
		return nil
	}
	data, err := c.sm.Snapshot()
	if err != nil {
		// Not fatal: the log just grows until a later attempt works.
		c.snapFailedAt = c.applied
		c.log.Error("state machine snapshot failed", "applied", c.applied, "error", err)
		return nil
	}
	snap, err := c.st.ms.CreateSnapshot(c.applied, &c.confState, data)
	if err != nil {
		return fmt.Errorf("quorum: create snapshot at %d: %w", c.applied, err)
	}
	var compactTo uint64
	if c.applied > c.catchUp {
		compactTo = c.applied - c.catchUp
	}
	if err := c.st.saveSnapshot(snap, compactTo); err != nil {
		return err
	}
	c.snapIndex = c.applied
	c.log.Debug("took snapshot", "index", c.applied, "bytes", len(data), "compacted_to", compactTo)
	return nil
}

// failAll ends every outstanding proposal with err.
func (c *core) failAll(err error) {
	for id, p := range c.proposed {
		p.finish(0, err)
		delete(c.proposed, id)
	}
	for i, p := range c.pending {
		p.finish(0, err)
		delete(c.pending, i)
	}
	for _, p := range c.waiting {
		p.finish(0, err)
	}
	c.waiting = nil
}

// Status describes a node.
type Status struct {
	ID     uint64
	Term   uint64
	Leader uint64 // 0 while unknown
	// Role is "leader", "follower", "candidate", "pre-candidate" or
	// "stopped".
	Role          string
	Voters        []uint64
	Commit        uint64
	Applied       uint64
	LastIndex     uint64
	SnapshotIndex uint64
	// Peers is set on the leader: every voter's replication progress.
	Peers map[uint64]PeerStatus
}

// PeerStatus is a voter's replication progress as the leader sees it.
type PeerStatus struct {
	Match uint64 // highest index known replicated
	Next  uint64 // next index to send
	Lag   uint64 // leader's last index - Match
	// State is raft's replication state: "StateProbe",
	// "StateReplicate" or "StateSnapshot".
	State        string
	RecentActive bool
}

func (c *core) status() Status {
	st := c.rn.Status()
	s := Status{
		ID:            c.id,
		Term:          st.Term,
		Leader:        st.Lead,
		Role:          roleName(st.RaftState),
		Commit:        st.Commit,
		Applied:       c.applied,
		LastIndex:     c.st.lastIndex(),
		SnapshotIndex: c.snapIndex,
	}
	for id := range st.Config.Voters.IDs() {
		s.Voters = append(s.Voters, id)
	}
	slices.Sort(s.Voters)
	if st.RaftState == raft.StateLeader {
		s.Peers = make(map[uint64]PeerStatus, len(st.Progress))
		for id, pr := range st.Progress {
			ps := PeerStatus{Match: pr.Match, Next: pr.Next, State: pr.State.String(), RecentActive: pr.RecentActive}
			if s.LastIndex > pr.Match {
				ps.Lag = s.LastIndex - pr.Match
			}
			s.Peers[id] = ps
		}
	}
	return s
}

func roleName(st raft.StateType) string {
	switch st {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "pre-candidate"
	default:
		return "follower"
	}
}

// raftLogger sends etcd raft's log lines to slog. Its chatty Info lines
// (every vote and probe) go to Debug: the core logs role and leader changes
// itself. Fatal panics like Panic: a library must not exit the process.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                 { r.Panic(v...) }
func (r raftLogger) Fatalf(format string, v ...any) { r.Panicf(format, v...) }
func (r raftLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	r.l.Error(msg)
	panic(raftPanic{errors.New(msg)})
}
func (r raftLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	r.l.Error(msg)
	panic(raftPanic{errors.New(msg)})
}

// raftPanic is what raftLogger panics with: Node.run recovers it and
// stops the node with its error.
type raftPanic struct{ error }
