package group

import (
	"bytes"
	"slices"
	"time"
)

// State is a classic group's state, named as Kafka names it.
type State int

// Group states.
const (
	StateEmpty State = iota
	StatePreparingRebalance
	StateCompletingRebalance
	StateStable
	StateDead
)

func (s State) String() string {
	switch s {
	case StateEmpty:
		return "Empty"
	case StatePreparingRebalance:
		return "PreparingRebalance"
	case StateCompletingRebalance:
		return "CompletingRebalance"
	case StateStable:
		return "Stable"
	}
	return "Dead"
}

type protocol struct {
	name     string
	metadata []byte
}

type member struct {
	id                               string
	instanceID                       *string
	clientID, clientHost             string
	sessionTimeout, rebalanceTimeout time.Duration
	protocolType                     string
	protocols                        []protocol
	assignment                       []byte

	joinDone func(JoinResult) // awaiting JoinGroup's answer
	syncDone func(SyncResult) // awaiting SyncGroup's answer
	deadline time.Time        // session expiry
	isNew    bool
}

func (m *member) metadataFor(name string) []byte {
	for _, p := range m.protocols {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func (m *member) sameProtocols(ps []protocol) bool {
	return slices.EqualFunc(m.protocols, ps, func(a, b protocol) bool {
		return a.name == b.name && bytes.Equal(a.metadata, b.metadata)
	})
}

type group struct {
	id        string
	partition int32
	state     State
	stateTime time.Time

	protocolType string
	protocol     string
	leader       string
	generation   int32

	members map[string]*member
	order   []string             // member ids in join order
	static  map[string]string    // group.instance.id -> member id
	pending map[string]time.Time // KIP-394 ids handed out -> expiry

	// deadline ends the join phase (PreparingRebalance) or the wait for the
	// leader's assignment (CompletingRebalance).
	deadline             time.Time
	delaying             bool // initial rebalance delay in effect
	delayUntil, delayMax time.Time

	offsets map[topicPartition]committed
	// pendingTxn holds transactional offset commits (TxnOffsetCommit) by
	// producer id until their transaction's marker; seq numbers the
	// group's commits in log order.
	pendingTxn map[int64]map[topicPartition]committed
	seq        uint64

	// consumer is set for a KIP-848 consumer protocol group (consumer.go).
	consumer *consumerGroup
}

func newGroup(id string, p int32, now time.Time) *group {
	return &group{
		id: id, partition: p, state: StateEmpty, stateTime: now,
		members: map[string]*member{},
		static:  map[string]string{},
		pending: map[string]time.Time{},
		offsets: map[topicPartition]committed{},
	}
}

// loaded sets the runtime state of a group just replayed: members from the
// log are Stable and get a fresh session.
func (g *group) loaded(now time.Time) {
	if len(g.members) == 0 {
		g.state = StateEmpty
		return
	}
	g.state = StateStable
	for _, m := range g.members {
		m.deadline = now.Add(m.sessionTimeout)
	}
}

func (g *group) setState(s State, now time.Time) {
	g.state = s
	g.stateTime = now
}

func (g *group) add(m *member) {
	if len(g.members) == 0 {
		g.protocolType = m.protocolType
	}
	g.members[m.id] = m
	g.order = append(g.order, m.id)
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
	if g.leader == "" {
		g.leader = m.id
	}
	delete(g.pending, m.id)
}

func (g *group) remove(id string) {
	m := g.members[id]
	if m == nil {
		return
	}
	delete(g.members, id)
	g.order = slices.DeleteFunc(g.order, func(s string) bool { return s == id })
	if m.instanceID != nil && g.static[*m.instanceID] == id {
		delete(g.static, *m.instanceID)
	}
	if g.leader == id {
		g.leader = ""
		if len(g.order) > 0 {
			g.leader = g.order[0]
		}
	}
}

// replace moves member oldID to newID (a static member rejoining).
func (g *group) replace(oldID, newID string) *member {
	m := g.members[oldID]
	delete(g.members, oldID)
	m.id = newID
	g.members[newID] = m
	for i, id := range g.order {
		if id == oldID {
			g.order[i] = newID
		}
	}
	if m.instanceID != nil {
		g.static[*m.instanceID] = newID
	}
	if g.leader == oldID {
		g.leader = newID
	}
	return m
}

// fenced reports a static member whose instance id now belongs to another
// member id.
func (g *group) fenced(memberID string, instanceID *string) bool {
	if instanceID == nil {
		return false
	}
	id, ok := g.static[*instanceID]
	return ok && id != memberID
}

// supports reports whether a member of this protocol type and protocols
// may join: some protocol must be supported by every member.
func (g *group) supports(ptype string, ps []protocol) bool {
	if len(g.members) == 0 {
		return ptype != "" && len(ps) > 0
	}
	if ptype != g.protocolType {
		return false
	}
	for _, p := range ps {
		if g.allSupport(p.name) {
			return true
		}
	}
	return false
}

func (g *group) allSupport(name string) bool {
	for _, m := range g.members {
		if !slices.ContainsFunc(m.protocols, func(p protocol) bool { return p.name == name }) {
			return false
		}
	}
	return true
}

// selectProtocol picks the protocol every member supports that gets the
// most votes, each member voting for its first supported choice; ties go
// to the earlier choice of the first member.
func (g *group) selectProtocol() string {
	first := g.members[g.order[0]]
	var candidates []string
	for _, p := range first.protocols {
		if g.allSupport(p.name) {
			candidates = append(candidates, p.name)
		}
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.name) {
				votes[p.name]++
				break
			}
		}
	}
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return d
}

func (g *group) allJoined() bool {
	if len(g.pending) > 0 {
		return false
	}
	for _, m := range g.members {
		if m.joinDone == nil {
			return false
		}
	}
	return true
}

// joinResult is what a member hears when the join phase completes; the
// leader gets every member's metadata for the chosen protocol.
func (g *group) joinResult(m *member) JoinResult {
	r := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader, MemberID: m.id}
	if m.id == g.leader {
		r.Members = g.memberList()
	}
	return r
}

func (g *group) memberList() []JoinMember {
	out := make([]JoinMember, 0, len(g.order))
	for _, id := range g.order {
		mm := g.members[id]
		out = append(out, JoinMember{MemberID: id, InstanceID: mm.instanceID, Metadata: mm.metadataFor(g.protocol)})
	}
	return out
}

// failWaiters answers every waiting join and sync with err.
func (g *group) failWaiters(fx *effects, err error) {
	for _, m := range g.members {
		g.answerJoin(fx, m, JoinResult{Err: err, MemberID: m.id, Generation: -1})
		g.answerSync(fx, m, SyncResult{Err: err})
	}
}

func (g *group) answerJoin(fx *effects, m *member, r JoinResult) {
	if done := m.joinDone; done != nil {
		m.joinDone = nil
		fx.add(func() { done(r) })
	}
}

func (g *group) answerSync(fx *effects, m *member, r SyncResult) {
	if done := m.syncDone; done != nil {
		m.syncDone = nil
		fx.add(func() { done(r) })
	}
}
