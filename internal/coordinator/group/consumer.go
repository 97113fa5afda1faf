package group

// The KIP-848 consumer group protocol (ConsumerGroupHeartbeat,
// ConsumerGroupDescribe): the coordinator assigns partitions itself and
// members reconcile toward their target assignment incrementally.
//
// Model: the group epoch moves on every change of membership, subscription,
// assignor or subscribed topic metadata; each move recomputes the target
// assignment at once (so the assignment epoch always equals the group
// epoch). A member moves toward its target on its own heartbeats: first it
// is told to give up the partitions it holds that are not in its target
// (its epoch stays), and once it reports (in its owned partitions) that it
// let them go it advances to the assignment epoch and gets the new
// partitions that no other member still holds; the rest follow on later
// heartbeats, once their previous owners released them.
//
// Membership is kept in memory only: after a coordinator restart or
// failover members get UNKNOWN_MEMBER_ID and rejoin with epoch 0. Committed
// offsets are durable through the ordinary offset commit records.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Consumer protocol errors.
var (
	ErrFencedMemberEpoch    = errors.New("fenced member epoch")
	ErrStaleMemberEpoch     = errors.New("stale member epoch")
	ErrUnreleasedInstanceID = errors.New("instance id still in use by another member")
	ErrUnsupportedAssignor  = errors.New("unsupported assignor")
)

// Server-side assignor names.
const (
	AssignorUniform = "uniform"
	AssignorRange   = "range"
)

// TopicMeta is what the assignors need to know about a topic.
type TopicMeta struct {
	ID         [16]byte
	Partitions int32
}

// TopicPartitions is a topic (by id) and some of its partitions.
type TopicPartitions struct {
	TopicID    [16]byte
	Topic      string // filled in descriptions only
	Partitions []int32
}

// ConsumerHeartbeatRequest is a ConsumerGroupHeartbeat. Nil pointers and
// slices mean "unchanged since the last heartbeat", as on the wire.
type ConsumerHeartbeatRequest struct {
	Group       string
	MemberID    string
	MemberEpoch int32
	InstanceID  *string
	RackID      *string
	// RebalanceTimeout < 0 is unchanged.
	RebalanceTimeout time.Duration
	SubscribedTopics []string
	SubscribedRegex  *string
	ServerAssignor   *string
	Owned            []TopicPartitions
	ClientID         string
	ClientHost       string
	// SessionTimeout is the broker's group.consumer.session.timeout.ms.
	SessionTimeout time.Duration
	// GenerateMemberID is set for v0, where the coordinator names members.
	GenerateMemberID bool
	// Topics resolves subscribed topic names against the current metadata.
	Topics func(name string) (TopicMeta, bool)
	// TopicNames lists the topics a regex subscription may match (every
	// topic but the internal ones), and MetadataVersion is the version of
	// the metadata both answer from: regex matches are kept until it
	// changes (consumer_regex.go).
	TopicNames      func() []string
	MetadataVersion int64
}

// ConsumerHeartbeatResult answers a ConsumerGroupHeartbeat. Assignment is
// nil when it need not be sent.
type ConsumerHeartbeatResult struct {
	Err         error
	MemberID    string
	MemberEpoch int32
	Assignment  []TopicPartitions
}

type tidp struct {
	topic [16]byte
	part  int32
}

type pset map[tidp]struct{}

type cmember struct {
	id                   string
	instanceID, rackID   *string
	clientID, clientHost string
	epoch, prevEpoch     int32
	subscribed           []string // topic names, sorted
	regex                string   // SubscribedTopicRegex, "" if none
	topics               []string // subscribed plus the regex's matches, sorted
	assignor             string
	rebalanceTimeout     time.Duration
	sessionTimeout       time.Duration
	assigned, revoking   pset
	unreleased           bool // target partitions still held by others
	deadline             time.Time
	revokeDeadline       time.Time
	changed              bool // assignment changed since last sent
	leftStatic           bool // left with epoch -2, awaiting its return
}

type consumerGroup struct {
	epoch, assignmentEpoch int32
	members                map[string]*cmember
	static                 map[string]string // instance id -> member id
	target                 map[string]pset
	topics                 map[string]TopicMeta // subscribed topics that exist
	regexes                map[string]*regexSub // regex subscriptions in use
	assignor               string
	owner                  map[tidp]string // partition -> member holding it
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{
		members: map[string]*cmember{}, static: map[string]string{},
		target: map[string]pset{}, topics: map[string]TopicMeta{}, owner: map[tidp]string{},
		regexes:  map[string]*regexSub{},
		assignor: AssignorUniform,
	}
}

// ConsumerHeartbeat handles a ConsumerGroupHeartbeat.
func (c *Coordinator) ConsumerHeartbeat(req ConsumerHeartbeatRequest) ConsumerHeartbeatResult {
	r, err := c.consumerHeartbeat(req)
	if err != nil {
		return ConsumerHeartbeatResult{Err: err, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch}
	}
	return r
}

func validateHeartbeat(req *ConsumerHeartbeatRequest) error {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrInvalidRequest, why) }
	switch {
	case req.Group == "":
		return bad("group id is empty")
	case req.MemberEpoch < -2:
		return bad("member epoch is invalid")
	case req.MemberEpoch != 0 && req.MemberID == "":
		return bad("member id is empty")
	case !req.GenerateMemberID && req.MemberID == "":
		return bad("member id is empty")
	case req.MemberEpoch == -2 && req.InstanceID != nil && *req.InstanceID == "":
		return bad("instance id is empty")
	}
	if req.MemberEpoch == 0 {
		switch {
		case req.RebalanceTimeout < 0:
			return bad("rebalance timeout must be provided when joining")
		case req.Owned == nil || len(req.Owned) > 0:
			return bad("owned partitions must be empty when joining")
		case req.SubscribedTopics == nil && req.SubscribedRegex == nil:
			return bad("subscribed topics or regex must be provided when joining")
		}
	}
	if req.SubscribedRegex != nil && *req.SubscribedRegex != "" {
		if _, err := compileTopicRegex(*req.SubscribedRegex); err != nil {
			return err
		}
	}
	if a := req.ServerAssignor; a != nil && *a != AssignorUniform && *a != AssignorRange {
		return fmt.Errorf("%w: %q (have %q and %q)", ErrUnsupportedAssignor, *a, AssignorUniform, AssignorRange)
	}
	return nil
}

func (c *Coordinator) consumerHeartbeat(req ConsumerHeartbeatRequest) (ConsumerHeartbeatResult, error) {
	if err := validateHeartbeat(&req); err != nil {
		return ConsumerHeartbeatResult{}, err
	}
	g, part, err := c.enter(req.Group)
	if err != nil {
		return ConsumerHeartbeatResult{}, err
	}
	defer part.mu.Unlock()
	now := c.opts.Now()
	if g != nil && g.consumer == nil && (len(g.members) > 0 || g.state != StateEmpty) {
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: %s is not a consumer group", ErrGroupNotFound, g.id)
	}
	if g == nil || g.consumer == nil {
		if req.MemberEpoch != 0 {
			return ConsumerHeartbeatResult{}, ErrUnknownMember
		}
		if g == nil {
			g = c.newGroup(part, req.Group)
		}
		g.consumer = newConsumerGroup()
		g.protocolType = "consumer"
	}
	cg := g.consumer
	bump := false
	var m *cmember
	switch {
	case req.MemberEpoch < 0:
		return c.consumerLeave(g, req, now)
	case req.MemberEpoch == 0:
		m, bump, err = c.consumerJoin(g, &req, now)
		if err != nil {
			return ConsumerHeartbeatResult{}, err
		}
	default:
		m = cg.members[req.MemberID]
		if m == nil || m.leftStatic {
			return ConsumerHeartbeatResult{}, ErrUnknownMember
		}
		if err := m.checkEpoch(req.MemberEpoch, req.Owned); err != nil {
			return ConsumerHeartbeatResult{}, err
		}
	}
	if m.update(&req) {
		bump = true
	}
	if cg.refreshTopics(&req) {
		bump = true
	}
	if bump {
		c.bumpConsumer(g, now)
	}
	full := req.RebalanceTimeout >= 0 && req.Owned != nil && (req.SubscribedTopics != nil || req.SubscribedRegex != nil)
	cg.reconcile(m, req.Owned, now)
	m.deadline = now.Add(m.sessionTimeout)
	res := ConsumerHeartbeatResult{MemberID: m.id, MemberEpoch: m.epoch}
	if req.MemberEpoch == 0 || full || m.changed {
		res.Assignment = m.assigned.list(nil)
		m.changed = false
	}
	return res, nil
}

// consumerJoin admits a member joining with epoch 0: a new member, a
// known member starting over (it owns nothing now), or a static member
// coming back under a new member id.
func (c *Coordinator) consumerJoin(g *group, req *ConsumerHeartbeatRequest, now time.Time) (*cmember, bool, error) {
	cg := g.consumer
	if req.InstanceID != nil {
		if sid, ok := cg.static[*req.InstanceID]; ok && sid != req.MemberID {
			old := cg.members[sid]
			if !old.leftStatic {
				return nil, false, fmt.Errorf("%w: %s", ErrUnreleasedInstanceID, *req.InstanceID)
			}
			id := req.MemberID
			if id == "" {
				id = newMemberID(req.ClientID)
			}
			cg.rename(old, id)
			old.leftStatic = false
			old.changed = true
			return old, false, nil
		}
	}
	if m := cg.members[req.MemberID]; m != nil {
		// Starting over: whatever it held is abandoned.
		cg.release(m)
		m.epoch, m.prevEpoch, m.leftStatic, m.changed = 0, 0, false, true
		return m, false, nil
	}
	if c.opts.MaxGroupSize > 0 && len(cg.members) >= c.opts.MaxGroupSize {
		return nil, false, ErrGroupMaxSize
	}
	id := req.MemberID
	if id == "" {
		id = newMemberID(req.ClientID)
	}
	m := &cmember{id: id, assigned: pset{}, changed: true, sessionTimeout: req.SessionTimeout}
	cg.members[id] = m
	if len(cg.members) == 1 {
		g.setState(StateStable, now)
	}
	return m, true, nil
}

// checkEpoch fences a heartbeat whose epoch is not the member's. The
// previous epoch is accepted when the member's owned partitions show it
// merely missed the response that moved it on.
func (m *cmember) checkEpoch(epoch int32, owned []TopicPartitions) error {
	switch {
	case epoch == m.epoch:
		return nil
	case epoch > m.epoch:
		return fmt.Errorf("%w: got %d, member is at %d", ErrFencedMemberEpoch, epoch, m.epoch)
	case epoch == m.prevEpoch && owned != nil && subset(owned, m.assigned):
		return nil
	}
	return fmt.Errorf("%w: got %d, member is at %d", ErrFencedMemberEpoch, epoch, m.epoch)
}

func subset(owned []TopicPartitions, of pset) bool {
	for _, t := range owned {
		for _, p := range t.Partitions {
			if _, ok := of[tidp{t.TopicID, p}]; !ok {
				return false
			}
		}
	}
	return true
}

// update applies the request's non-nil fields; it reports a change that
// moves the group epoch.
func (m *cmember) update(req *ConsumerHeartbeatRequest) bool {
	changed := false
	if req.InstanceID != nil {
		s := *req.InstanceID
		m.instanceID = &s
	}
	if req.RackID != nil {
		s := *req.RackID
		m.rackID = &s
	}
	if req.RebalanceTimeout >= 0 {
		m.rebalanceTimeout = req.RebalanceTimeout
	}
	if req.SessionTimeout > 0 {
		m.sessionTimeout = req.SessionTimeout
	}
	if req.ClientID != "" || req.ClientHost != "" {
		m.clientID, m.clientHost = req.ClientID, req.ClientHost
	}
	if req.SubscribedTopics != nil {
		s := slices.Clone(req.SubscribedTopics)
		slices.Sort(s)
		s = slices.Compact(s)
		if !slices.Equal(s, m.subscribed) {
			m.subscribed, changed = s, true
		}
	}
	if req.SubscribedRegex != nil && *req.SubscribedRegex != m.regex {
		m.regex, changed = *req.SubscribedRegex, true
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	return changed
}

// consumerLeave handles epoch -1 (leave) and -2 (a static member leaving
// for now: it keeps its partitions until its session expires or it comes
// back).
func (c *Coordinator) consumerLeave(g *group, req ConsumerHeartbeatRequest, now time.Time) (ConsumerHeartbeatResult, error) {
	cg := g.consumer
	m := cg.members[req.MemberID]
	if m == nil && req.InstanceID != nil {
		m = cg.members[cg.static[*req.InstanceID]]
	}
	if m == nil {
		return ConsumerHeartbeatResult{}, ErrUnknownMember
	}
	if req.InstanceID != nil && m.instanceID != nil && *req.InstanceID != *m.instanceID {
		return ConsumerHeartbeatResult{}, ErrFencedInstanceID
	}
	if req.MemberEpoch == -2 && m.instanceID != nil {
		m.leftStatic = true
		m.deadline = now.Add(m.sessionTimeout)
		return ConsumerHeartbeatResult{MemberID: m.id, MemberEpoch: -2}, nil
	}
	c.removeConsumer(g, m, now)
	return ConsumerHeartbeatResult{MemberID: m.id, MemberEpoch: -1}, nil
}

// removeConsumer drops a member, frees what it held and moves the epoch.
func (c *Coordinator) removeConsumer(g *group, m *cmember, now time.Time) {
	cg := g.consumer
	cg.release(m)
	delete(cg.members, m.id)
	delete(cg.target, m.id)
	if m.instanceID != nil && cg.static[*m.instanceID] == m.id {
		delete(cg.static, *m.instanceID)
	}
	c.bumpConsumer(g, now)
	if len(cg.members) == 0 {
		g.setState(StateEmpty, now)
	}
}

// release frees the partitions a member holds.
func (cg *consumerGroup) release(m *cmember) {
	for p := range m.assigned {
		if cg.owner[p] == m.id {
			delete(cg.owner, p)
		}
	}
	for p := range m.revoking {
		if cg.owner[p] == m.id {
			delete(cg.owner, p)
		}
	}
	m.assigned, m.revoking, m.unreleased, m.revokeDeadline = pset{}, nil, false, time.Time{}
}

func (cg *consumerGroup) rename(m *cmember, id string) {
	old := m.id
	delete(cg.members, old)
	m.id = id
	cg.members[id] = m
	if t, ok := cg.target[old]; ok {
		delete(cg.target, old)
		cg.target[id] = t
	}
	for p, o := range cg.owner {
		if o == old {
			cg.owner[p] = id
		}
	}
	if m.instanceID != nil {
		cg.static[*m.instanceID] = id
	}
}

// refreshTopics re-resolves the members' regexes and the subscribed
// topics (when req can resolve names); it reports a change.
func (cg *consumerGroup) refreshTopics(req *ConsumerHeartbeatRequest) bool {
	changed := false
	cg.resolveRegexes(req.TopicNames, req.MetadataVersion)
	for _, m := range cg.members {
		if ts := cg.memberTopics(m); !slices.Equal(ts, m.topics) {
			m.topics, changed = ts, true
		}
	}
	if req.Topics == nil {
		return changed
	}
	next := map[string]TopicMeta{}
	for _, m := range cg.members {
		for _, t := range m.topics {
			if _, ok := next[t]; ok {
				continue
			}
			if tm, ok := req.Topics(t); ok {
				next[t] = tm
			}
		}
	}
	if !maps.Equal(next, cg.topics) {
		cg.topics, changed = next, true
	}
	return changed
}

// bumpConsumer moves the group epoch and computes the new target.
func (c *Coordinator) bumpConsumer(g *group, now time.Time) {
	cg := g.consumer
	for _, m := range cg.members {
		if m.instanceID != nil {
			cg.static[*m.instanceID] = m.id
		}
	}
	cg.epoch++
	cg.assignor = cg.chooseAssignor()
	cg.target = computeTarget(cg.assignor, cg.members, cg.topics, cg.target)
	cg.assignmentEpoch = cg.epoch
	c.log.Debug("consumer group epoch", "group", g.id, "epoch", cg.epoch, "members", len(cg.members), "assignor", cg.assignor)
}

// chooseAssignor picks the assignor most members ask for (uniform on a
// tie or when nobody asks).
func (cg *consumerGroup) chooseAssignor() string {
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	if votes[AssignorRange] > votes[AssignorUniform] {
		return AssignorRange
	}
	return AssignorUniform
}

// reconcile moves a member toward its target assignment. owned is what it
// reported holding (nil: unchanged since the last heartbeat).
func (cg *consumerGroup) reconcile(m *cmember, owned []TopicPartitions, now time.Time) {
	if m.leftStatic {
		return
	}
	if len(m.revoking) > 0 {
		if owned == nil || overlaps(owned, m.revoking) {
			return // still revoking
		}
		for p := range m.revoking {
			if cg.owner[p] == m.id {
				delete(cg.owner, p)
			}
		}
		m.revoking, m.revokeDeadline = nil, time.Time{}
	}
	tgt := cg.target[m.id]
	if m.epoch == cg.assignmentEpoch && !m.unreleased && len(tgt) == len(m.assigned) {
		return
	}
	revoke := pset{}
	for p := range m.assigned {
		if _, ok := tgt[p]; !ok {
			revoke[p] = struct{}{}
		}
	}
	if len(revoke) > 0 {
		for p := range revoke {
			delete(m.assigned, p)
		}
		m.revoking = revoke
		m.revokeDeadline = now.Add(m.rebalanceTimeout)
		m.changed = true
		return
	}
	if m.epoch != cg.assignmentEpoch {
		m.prevEpoch, m.epoch = m.epoch, cg.assignmentEpoch
	}
	m.unreleased = false
	for p := range tgt {
		if _, ok := m.assigned[p]; ok {
			continue
		}
		if o, held := cg.owner[p]; held && o != m.id {
			m.unreleased = true
			continue
		}
		cg.owner[p] = m.id
		m.assigned[p] = struct{}{}
		m.changed = true
	}
}

func overlaps(owned []TopicPartitions, s pset) bool {
	for _, t := range owned {
		for _, p := range t.Partitions {
			if _, ok := s[tidp{t.TopicID, p}]; ok {
				return true
			}
		}
	}
	return false
}

// list returns the set grouped by topic, topics and partitions sorted;
// names (if given) fills the topic names.
func (s pset) list(names map[[16]byte]string) []TopicPartitions {
	by := map[[16]byte][]int32{}
	for p := range s {
		by[p.topic] = append(by[p.topic], p.part)
	}
	out := make([]TopicPartitions, 0, len(by))
	for id, ps := range by {
		slices.Sort(ps)
		out = append(out, TopicPartitions{TopicID: id, Topic: names[id], Partitions: ps})
	}
	slices.SortFunc(out, func(a, b TopicPartitions) int { return compareID(a.TopicID, b.TopicID) })
	return out
}

func compareID(a, b [16]byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// tickConsumer expires sessions and members that did not revoke in time.
// Callers hold the group's partition mutex.
func (c *Coordinator) tickConsumer(g *group, now time.Time) {
	cg := g.consumer
	ids := slices.Sorted(maps.Keys(cg.members))
	for _, id := range ids {
		m := cg.members[id]
		switch {
		case !now.Before(m.deadline):
			c.log.Info("consumer group member session expired", "group", g.id, "member", id)
		case len(m.revoking) > 0 && !now.Before(m.revokeDeadline):
			c.log.Info("consumer group member did not revoke within its rebalance timeout", "group", g.id, "member", id)
		default:
			continue
		}
		c.removeConsumer(g, m, now)
	}
}

// validateConsumerCommit checks an OffsetCommit against a consumer group:
// the generation field carries the member epoch. An older epoch is
// accepted when every committed partition is still the member's.
func (cg *consumerGroup) validateCommit(req *CommitRequest) error {
	if req.MemberID == "" && req.Generation < 0 {
		if len(cg.members) > 0 {
			return ErrUnknownMember
		}
		return nil
	}
	m := cg.members[req.MemberID]
	if m == nil || m.leftStatic {
		return ErrUnknownMember
	}
	switch {
	case req.Generation == m.epoch:
		return nil
	case req.Generation > m.epoch:
		return ErrStaleMemberEpoch
	}
	for _, o := range req.Offsets {
		tm, ok := cg.topics[o.Topic]
		if !ok {
			return ErrStaleMemberEpoch
		}
		p := tidp{tm.ID, o.Partition}
		_, a := m.assigned[p]
		_, r := m.revoking[p]
		if !a && !r {
			return ErrStaleMemberEpoch
		}
	}
	return nil
}

// consumerState is the KIP-848 group state name.
func (cg *consumerGroup) state() string {
	if len(cg.members) == 0 {
		return "Empty"
	}
	if cg.assignmentEpoch < cg.epoch {
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.leftStatic {
			continue
		}
		if m.epoch != cg.assignmentEpoch || len(m.revoking) > 0 || m.unreleased {
			return "Reconciling"
		}
	}
	return "Stable"
}
