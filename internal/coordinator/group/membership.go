package group

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"time"
)

// Protocol is one (name, metadata) a member offers in JoinGroup.
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group            string
	MemberID         string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration // v0: the session timeout
	ProtocolType     string
	Protocols        []Protocol
	// RequireKnownMemberID is set for JoinGroup v4+ (KIP-394): a new
	// dynamic member first gets ErrMemberIDRequired with its id.
	RequireKnownMemberID bool
}

// JoinMember is one member's metadata as the leader receives it.
type JoinMember struct {
	MemberID   string
	InstanceID *string
	Metadata   []byte
}

// JoinResult answers a JoinGroup. MemberID is set with ErrMemberIDRequired.
type JoinResult struct {
	Err            error
	Generation     int32
	ProtocolType   string
	Protocol       string
	Leader         string
	MemberID       string
	Members        []JoinMember
	SkipAssignment bool
}

// Join handles a JoinGroup; done is called once, maybe later.
func (c *Coordinator) Join(req JoinRequest, done func(JoinResult)) {
	var fx effects
	c.join(&fx, req, done)
	fx.run()
}

func (c *Coordinator) join(fx *effects, req JoinRequest, done func(JoinResult)) {
	fail := func(err error) {
		r := JoinResult{Err: err, MemberID: req.MemberID, Generation: -1}
		fx.add(func() { done(r) })
	}
	if req.Group == "" {
		fail(ErrInvalidGroupID)
		return
	}
	if req.SessionTimeout < c.opts.MinSessionTimeout || req.SessionTimeout > c.opts.MaxSessionTimeout {
		fail(ErrInvalidSessionTimout)
		return
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		fail(ErrInconsistentProtocol)
		return
	}
	size := 0
	ps := make([]protocol, len(req.Protocols))
	for i, p := range req.Protocols {
		size += len(p.Metadata) + len(p.Name)
		ps[i] = protocol{name: p.Name, metadata: p.Metadata}
	}
	if size > c.opts.MaxMemberMetadataBytes {
		fail(ErrInvalidRequest)
		return
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	g, part, err := c.enter(req.Group)
	if err != nil {
		fail(err)
		return
	}
	defer part.mu.Unlock()
	if g != nil && g.consumer != nil {
		if len(g.consumer.members) > 0 {
			fail(ErrInconsistentProtocol)
			return
		}
		g.consumer, g.protocolType = nil, "" // an empty consumer group converts
	}
	if g == nil {
		if req.MemberID != "" {
			fail(ErrUnknownMember)
			return
		}
		g = c.newGroup(part, req.Group)
	}
	if !g.supports(req.ProtocolType, ps) {
		fail(ErrInconsistentProtocol)
		return
	}
	now := c.opts.Now()
	newMember := func(id string) *member {
		return &member{
			id: id, instanceID: req.InstanceID, clientID: req.ClientID, clientHost: req.ClientHost,
			sessionTimeout: req.SessionTimeout, rebalanceTimeout: req.RebalanceTimeout,
			protocolType: req.ProtocolType, protocols: ps, isNew: true,
			joinDone: done, deadline: now.Add(req.SessionTimeout),
		}
	}
	full := c.opts.MaxGroupSize > 0 && len(g.members) >= c.opts.MaxGroupSize

	if req.MemberID == "" {
		id := newMemberID(req.ClientID)
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok {
				c.rejoinStatic(fx, part, g, old, id, req, ps, done, now)
				return
			}
			if full {
				fail(ErrGroupMaxSize)
				return
			}
			c.addAndRebalance(fx, part, g, newMember(id), now)
			return
		}
		if full {
			fail(ErrGroupMaxSize)
			return
		}
		if req.RequireKnownMemberID {
			g.pending[id] = now.Add(req.SessionTimeout)
			r := JoinResult{Err: ErrMemberIDRequired, MemberID: id, Generation: -1}
			fx.add(func() { done(r) })
			return
		}
		c.addAndRebalance(fx, part, g, newMember(id), now)
		return
	}

	if _, ok := g.pending[req.MemberID]; ok {
		c.addAndRebalance(fx, part, g, newMember(req.MemberID), now)
		return
	}
	if g.fenced(req.MemberID, req.InstanceID) {
		fail(ErrFencedInstanceID)
		return
	}
	m := g.members[req.MemberID]
	if m == nil {
		fail(ErrUnknownMember)
		return
	}
	update := func() {
		if m.joinDone != nil {
			g.answerJoin(fx, m, JoinResult{Err: ErrRebalanceInProgress, MemberID: m.id, Generation: -1})
		}
		m.protocols, m.sessionTimeout, m.rebalanceTimeout = ps, req.SessionTimeout, req.RebalanceTimeout
		m.clientID, m.clientHost = req.ClientID, req.ClientHost
		m.joinDone = done
		m.deadline = now.Add(req.SessionTimeout)
	}
	switch g.state {
	case StatePreparingRebalance:
		update()
		c.tryCompleteJoin(fx, part, g, now)
	case StateCompletingRebalance:
		if m.sameProtocols(ps) {
			// A repeat (the first answer was lost): the same answer again.
			r := g.joinResult(m)
			fx.add(func() { done(r) })
			return
		}
		update()
		c.prepareRebalance(fx, part, g, now)
	case StateStable:
		if m.id != g.leader && m.sameProtocols(ps) {
			m.deadline = now.Add(m.sessionTimeout)
			r := g.joinResult(m)
			fx.add(func() { done(r) })
			return
		}
		update()
		c.prepareRebalance(fx, part, g, now)
	default:
		fail(ErrUnknownMember)
	}
}

func newMemberID(clientID string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return clientID + "-" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (c *Coordinator) addAndRebalance(fx *effects, part *partition, g *group, m *member, now time.Time) {
	g.add(m)
	if g.state == StatePreparingRebalance {
		if g.delaying {
			g.delayUntil = minTime(now.Add(c.opts.InitialRebalanceDelay), g.delayMax)
		}
		c.tryCompleteJoin(fx, part, g, now)
		return
	}
	c.prepareRebalance(fx, part, g, now)
}

// rejoinStatic handles a static member coming back with a new member id
// (KIP-345): the old id is fenced; in a stable group with unchanged
// metadata no rebalance happens.
func (c *Coordinator) rejoinStatic(fx *effects, part *partition, g *group, oldID, newID string, req JoinRequest, ps []protocol, done func(JoinResult), now time.Time) {
	m := g.members[oldID]
	g.answerJoin(fx, m, JoinResult{Err: ErrFencedInstanceID, MemberID: oldID, Generation: -1})
	g.answerSync(fx, m, SyncResult{Err: ErrFencedInstanceID})
	unchanged := g.state == StateStable && req.ProtocolType == g.protocolType &&
		bytes0(m.metadataFor(g.protocol)) == bytes0(metadataIn(ps, g.protocol)) && metadataIn(ps, g.protocol) != nil
	g.replace(oldID, newID)
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.deadline = now.Add(req.SessionTimeout)
	if unchanged {
		m.protocols = ps
		if err := c.write(part, g, []kv{{groupKey(g.id), groupValue(g)}}); err != nil {
			r := JoinResult{Err: err, MemberID: newID, Generation: -1}
			fx.add(func() { done(r) })
			return
		}
		r := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader, MemberID: newID}
		if g.leader == newID {
			r.Members, r.SkipAssignment = g.memberList(), true
		}
		fx.add(func() { done(r) })
		return
	}
	m.protocols = ps
	m.joinDone = done
	switch g.state {
	case StatePreparingRebalance:
		c.tryCompleteJoin(fx, part, g, now)
	default:
		c.prepareRebalance(fx, part, g, now)
	}
}

func metadataIn(ps []protocol, name string) []byte {
	for _, p := range ps {
		if p.name == name {
			return p.metadata
		}
	}
	return nil
}

func bytes0(b []byte) string { return string(b) }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// prepareRebalance starts a join phase: members must rejoin within the
// rebalance timeout. A group starting from empty waits the initial delay
// first, so that members starting together join one generation.
func (c *Coordinator) prepareRebalance(fx *effects, part *partition, g *group, now time.Time) {
	if g.state == StateCompletingRebalance {
		for _, m := range g.members {
			g.answerSync(fx, m, SyncResult{Err: ErrRebalanceInProgress})
		}
	}
	rt := g.maxRebalanceTimeout()
	if g.state == StateEmpty && c.opts.InitialRebalanceDelay > 0 {
		g.delaying = true
		g.delayMax = now.Add(rt)
		g.delayUntil = minTime(now.Add(c.opts.InitialRebalanceDelay), g.delayMax)
	}
	g.deadline = now.Add(rt)
	g.setState(StatePreparingRebalance, now)
	c.tryCompleteJoin(fx, part, g, now)
}

func (c *Coordinator) tryCompleteJoin(fx *effects, part *partition, g *group, now time.Time) {
	if g.state == StatePreparingRebalance && !g.delaying && g.allJoined() {
		c.completeJoin(fx, part, g, now)
	}
}

// completeJoin ends the join phase: members that did not rejoin are
// removed, the generation moves on, a protocol and leader are chosen and
// every waiting member is answered.
func (c *Coordinator) completeJoin(fx *effects, part *partition, g *group, now time.Time) {
	for _, id := range slices.Clone(g.order) {
		if g.members[id].joinDone == nil {
			g.remove(id)
		}
	}
	g.delaying = false
	g.generation++
	if len(g.members) == 0 {
		g.protocol, g.leader = "", ""
		g.setState(StateEmpty, now)
		if err := c.write(part, g, []kv{{groupKey(g.id), groupValue(g)}}); err != nil {
			c.log.Warn("persist empty group", "group", g.id, "err", err)
		}
		return
	}
	g.protocol = g.selectProtocol()
	if g.members[g.leader] == nil {
		g.leader = g.order[0]
	}
	g.setState(StateCompletingRebalance, now)
	g.deadline = now.Add(g.maxRebalanceTimeout())
	for _, m := range g.members {
		m.isNew = false
		m.deadline = now.Add(m.sessionTimeout)
		g.answerJoin(fx, m, g.joinResult(m))
	}
}

// SyncRequest is a SyncGroup. ProtocolType and Protocol (v5+) are checked
// when set.
type SyncRequest struct {
	Group        string
	Generation   int32
	MemberID     string
	InstanceID   *string
	ProtocolType *string
	Protocol     *string
	Assignments  map[string][]byte // from the leader
}

// SyncResult answers a SyncGroup.
type SyncResult struct {
	Err          error
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

// Sync handles a SyncGroup; done is called once, maybe later.
func (c *Coordinator) Sync(req SyncRequest, done func(SyncResult)) {
	var fx effects
	c.sync(&fx, req, done)
	fx.run()
}

func (c *Coordinator) sync(fx *effects, req SyncRequest, done func(SyncResult)) {
	fail := func(err error) { fx.add(func() { done(SyncResult{Err: err}) }) }
	g, part, err := c.enter(req.Group)
	if err != nil {
		fail(err)
		return
	}
	defer part.mu.Unlock()
	switch {
	case g == nil:
		fail(ErrUnknownMember)
		return
	case g.fenced(req.MemberID, req.InstanceID):
		fail(ErrFencedInstanceID)
		return
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		fail(ErrUnknownMember)
		return
	case req.Generation != g.generation:
		fail(ErrIllegalGeneration)
		return
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		fail(ErrInconsistentProtocol)
		return
	}
	now := c.opts.Now()
	switch g.state {
	case StatePreparingRebalance:
		fail(ErrRebalanceInProgress)
	case StateStable:
		m.deadline = now.Add(m.sessionTimeout)
		r := SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}
		fx.add(func() { done(r) })
	case StateCompletingRebalance:
		if m.syncDone != nil {
			g.answerSync(fx, m, SyncResult{Err: ErrRebalanceInProgress})
		}
		m.syncDone = done
		m.deadline = now.Add(m.sessionTimeout)
		if m.id != g.leader {
			return
		}
		for id, mm := range g.members {
			mm.assignment = req.Assignments[id]
			if mm.assignment == nil {
				mm.assignment = []byte{}
			}
		}
		g.setState(StateStable, now)
		if err := c.write(part, g, []kv{{groupKey(g.id), groupValue(g)}}); err != nil {
			for _, mm := range g.members {
				mm.assignment = nil
				g.answerSync(fx, mm, SyncResult{Err: err})
			}
			g.state = StateCompletingRebalance
			c.prepareRebalance(fx, part, g, now)
			return
		}
		for _, mm := range g.members {
			g.answerSync(fx, mm, SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: mm.assignment})
		}
	default:
		fail(ErrUnknownMember)
	}
}

// Heartbeat keeps a member's session alive. During a rebalance it answers
// ErrRebalanceInProgress so the member rejoins.
func (c *Coordinator) Heartbeat(groupID string, generation int32, memberID string, instanceID *string) error {
	var fx effects
	g, part, err := c.enter(groupID)
	if err != nil {
		return err
	}
	defer fx.run()
	defer part.mu.Unlock()
	switch {
	case g == nil:
		return ErrUnknownMember
	case g.fenced(memberID, instanceID):
		return ErrFencedInstanceID
	}
	m := g.members[memberID]
	switch {
	case m == nil || g.state == StateEmpty:
		return ErrUnknownMember
	case generation != g.generation:
		return ErrIllegalGeneration
	}
	m.deadline = c.opts.Now().Add(m.sessionTimeout)
	if g.state == StatePreparingRebalance {
		return ErrRebalanceInProgress
	}
	return nil
}

// LeaveMember names a member leaving by member id or instance id.
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave removes members (LeaveGroup); the result has one error per member.
func (c *Coordinator) Leave(groupID string, members []LeaveMember) ([]error, error) {
	var fx effects
	g, part, err := c.enter(groupID)
	if err != nil {
		return nil, err
	}
	defer fx.run()
	defer part.mu.Unlock()
	out := make([]error, len(members))
	if g == nil {
		for i := range out {
			out[i] = ErrUnknownMember
		}
		return out, nil
	}
	now := c.opts.Now()
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != nil {
			sid, ok := g.static[*lm.InstanceID]
			switch {
			case !ok:
				out[i] = ErrUnknownMember
				continue
			case id != "" && id != sid:
				out[i] = ErrFencedInstanceID
				continue
			}
			id = sid
		} else if _, ok := g.pending[id]; ok {
			delete(g.pending, id)
			c.tryCompleteJoin(&fx, part, g, now)
			continue
		}
		if g.members[id] == nil {
			out[i] = ErrUnknownMember
			continue
		}
		c.removeMember(&fx, part, g, id, now)
	}
	return out, nil
}

// removeMember takes a member out (left or expired) and rebalances.
func (c *Coordinator) removeMember(fx *effects, part *partition, g *group, id string, now time.Time) {
	m := g.members[id]
	g.answerJoin(fx, m, JoinResult{Err: ErrUnknownMember, MemberID: id, Generation: -1})
	g.answerSync(fx, m, SyncResult{Err: ErrUnknownMember})
	g.remove(id)
	switch g.state {
	case StateStable, StateCompletingRebalance:
		c.prepareRebalance(fx, part, g, now)
	case StatePreparingRebalance:
		c.tryCompleteJoin(fx, part, g, now)
	}
}

// tickGroup fires a group's due timeouts.
// Callers hold part.mu.
func (c *Coordinator) tickGroup(fx *effects, part *partition, g *group, now time.Time) {
	if g.consumer != nil {
		c.tickConsumer(g, now)
	}
	for id, exp := range g.pending {
		if !now.Before(exp) {
			delete(g.pending, id)
			c.tryCompleteJoin(fx, part, g, now)
		}
	}
	for _, id := range slices.Clone(g.order) {
		m := g.members[id]
		if m == nil || m.joinDone != nil || m.syncDone != nil || now.Before(m.deadline) {
			continue
		}
		c.log.Info("member session expired", "group", g.id, "member", id)
		c.removeMember(fx, part, g, id, now)
	}
	switch g.state {
	case StatePreparingRebalance:
		if g.delaying && !now.Before(g.delayUntil) {
			g.delaying = false
			c.completeJoin(fx, part, g, now)
		} else if !g.delaying && !now.Before(g.deadline) {
			c.completeJoin(fx, part, g, now)
		}
	case StateCompletingRebalance:
		if !now.Before(g.deadline) {
			// The leader never sent the assignment: drop whoever did not
			// sync and start over.
			for _, id := range slices.Clone(g.order) {
				if g.members[id].syncDone == nil {
					g.remove(id)
				}
			}
			c.prepareRebalance(fx, part, g, now)
		}
	case StateEmpty:
		c.expireOffsets(part, g, now)
	}
}
