package group

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit is one partition's offset to commit.
type OffsetCommit struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32
	Metadata    *string
}

// CommitRequest is an OffsetCommit. Generation -1 with an empty member id
// is a "simple" commit, allowed only for a group without members.
type CommitRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID *string
	Offsets    []OffsetCommit
}

// Commit stores offsets. A non-nil error applies to every partition;
// otherwise the result has one error (or nil) per offset.
func (c *Coordinator) Commit(req CommitRequest) ([]error, error) {
	var fx effects
	g, part, err := c.enter(req.Group)
	if err != nil {
		return nil, err
	}
	defer fx.run()
	defer part.mu.Unlock()
	if g == nil {
		if req.Generation >= 0 {
			return nil, ErrIllegalGeneration
		}
		g = c.newGroup(part, req.Group)
	}
	switch {
	case g.consumer != nil:
		if err := g.consumer.validateCommit(&req); err != nil {
			return nil, err
		}
	case g.fenced(req.MemberID, req.InstanceID):
		return nil, ErrFencedInstanceID
	case req.Generation < 0 && g.state == StateEmpty:
		// a simple commit
	case g.state == StateCompletingRebalance:
		return nil, ErrRebalanceInProgress
	case g.members[req.MemberID] == nil:
		return nil, ErrUnknownMember
	case req.Generation != g.generation:
		return nil, ErrIllegalGeneration
	}
	now := c.opts.Now()
	if m := g.members[req.MemberID]; m != nil {
		m.deadline = now.Add(m.sessionTimeout)
	}
	out := make([]error, len(req.Offsets))
	recs := make([]kv, 0, len(req.Offsets))
	idx := make([]int, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		var md string
		if o.Metadata != nil {
			md = *o.Metadata
		}
		if len(md) > c.opts.MaxMetadataBytes {
			out[i] = ErrMetadataTooLarge
			continue
		}
		tp := topicPartition{o.Topic, o.Partition}
		recs = append(recs, kv{offsetKey(g.id, tp), offsetValue(committed{offset: o.Offset, leaderEpoch: o.LeaderEpoch, metadata: md, commitTime: now.UnixMilli()})})
		idx = append(idx, i)
	}
	if err := c.write(part, g, recs); err != nil {
		for _, i := range idx {
			out[i] = err
		}
	}
	return out, nil
}

// Offset is a committed offset.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
}

// Offsets returns a copy of a group's committed offsets, by topic and
// partition (empty for an unknown group).
func (c *Coordinator) Offsets(groupID string) (map[string]map[int32]Offset, error) {
	g, part, err := c.enter(groupID)
	if err != nil {
		return nil, err
	}
	defer part.mu.Unlock()
	out := map[string]map[int32]Offset{}
	if g == nil {
		return out, nil
	}
	for tp, o := range g.offsets {
		m := out[tp.topic]
		if m == nil {
			m = map[int32]Offset{}
			out[tp.topic] = m
		}
		m[tp.partition] = Offset{Offset: o.offset, LeaderEpoch: o.leaderEpoch, Metadata: o.metadata}
	}
	return out, nil
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// DeleteOffsets removes committed offsets (OffsetDelete). Partitions of
// topics the group's members subscribe to are refused.
func (c *Coordinator) DeleteOffsets(groupID string, tps []TopicPartition) ([]error, error) {
	var fx effects
	g, part, err := c.enter(groupID)
	if err != nil {
		return nil, err
	}
	defer fx.run()
	defer part.mu.Unlock()
	switch {
	case g == nil:
		return nil, ErrGroupNotFound
	case len(g.members) > 0 && g.protocolType != "consumer":
		return nil, ErrNonEmptyGroup
	}
	subscribed := g.subscribedTopics()
	out := make([]error, len(tps))
	var recs []kv
	for i, tp := range tps {
		if subscribed[tp.Topic] {
			out[i] = ErrSubscribedToTopic
			continue
		}
		k := topicPartition{tp.Topic, tp.Partition}
		if _, ok := g.offsets[k]; ok {
			recs = append(recs, kv{offsetKey(g.id, k), nil})
		}
	}
	if err := c.write(part, g, recs); err != nil {
		return nil, err
	}
	return out, nil
}

// subscribedTopics parses the consumer protocol subscriptions of the
// members (empty when none can be parsed).
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	if g.protocolType != "consumer" {
		return out
	}
	if g.consumer != nil {
		for _, m := range g.consumer.members {
			for _, t := range m.topics {
				out[t] = true
			}
		}
		return out
	}
	for _, m := range g.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			continue
		}
		for _, t := range md.Topics {
			out[t] = true
		}
	}
	return out
}

// DeleteGroups deletes empty groups and their offsets; one error per id.
func (c *Coordinator) DeleteGroups(ids []string) []error {
	out := make([]error, len(ids))
	for i, id := range ids {
		out[i] = c.deleteGroup(id)
	}
	return out
}

func (c *Coordinator) deleteGroup(id string) error {
	g, part, err := c.enter(id)
	if err != nil {
		return err
	}
	defer part.mu.Unlock()
	switch {
	case g == nil:
		return ErrGroupNotFound
	case g.state != StateEmpty:
		return ErrNonEmptyGroup
	}
	recs := make([]kv, 0, len(g.offsets)+1)
	for tp := range g.offsets {
		recs = append(recs, kv{offsetKey(g.id, tp), nil})
	}
	recs = append(recs, kv{groupKey(g.id), nil})
	return c.write(part, g, recs)
}

// expireOffsets drops offsets past retention in an empty group, and the
// group itself once nothing is left. Callers hold part.mu.
func (c *Coordinator) expireOffsets(part *partition, g *group, now time.Time) {
	ret := c.opts.OffsetsRetention
	if ret <= 0 || g.state != StateEmpty {
		return
	}
	var recs []kv
	for tp, o := range g.offsets {
		base := time.UnixMilli(o.commitTime)
		if g.protocolType != "" && g.stateTime.After(base) {
			base = g.stateTime // retention counts from when the group emptied
		}
		if !now.Before(base.Add(ret)) {
			recs = append(recs, kv{offsetKey(g.id, tp), nil})
		}
	}
	if len(recs) == len(g.offsets) && !now.Before(g.stateTime.Add(ret)) {
		recs = append(recs, kv{groupKey(g.id), nil})
	}
	if err := c.write(part, g, recs); err != nil {
		c.log.Warn("expire offsets", "group", g.id, "err", err)
	}
}

// MemberDescription is one member in DescribeGroups.
type MemberDescription struct {
	MemberID   string
	InstanceID *string
	ClientID   string
	ClientHost string
	Metadata   []byte
	Assignment []byte
}

// Description is one group in DescribeGroups. An unknown group is Dead
// with no error, as Kafka answers.
type Description struct {
	Err          error
	Group        string
	State        string
	ProtocolType string
	Protocol     string
	Members      []MemberDescription
}

// Describe describes groups.
func (c *Coordinator) Describe(ids []string) []Description {
	out := make([]Description, len(ids))
	for i, id := range ids {
		out[i] = c.describe(id)
	}
	return out
}

func (c *Coordinator) describe(id string) (d Description) {
	d.Group = id
	g, part, err := c.enter(id)
	if err != nil {
		d.Err = err
		return d
	}
	defer part.mu.Unlock()
	if g == nil {
		d.State = StateDead.String()
		return d
	}
	if g.consumer != nil {
		d.Err = fmt.Errorf("%w: %s is a consumer group, not a classic group", ErrGroupNotFound, id)
		return d
	}
	d.State, d.ProtocolType = g.state.String(), g.protocolType
	stable := g.state == StateStable
	if stable {
		d.Protocol = g.protocol
	}
	for _, mid := range g.order {
		m := g.members[mid]
		md := MemberDescription{MemberID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost}
		if stable {
			md.Metadata, md.Assignment = m.metadataFor(g.protocol), m.assignment
		}
		d.Members = append(d.Members, md)
	}
	return d
}

// Listed is one group in ListGroups.
type Listed struct {
	Group        string
	ProtocolType string
	State        string
	Type         string // "classic" or "consumer"
}

// List lists groups, filtered by state and type names (case-insensitive;
// empty filters match everything). ErrLoadInProgress comes with a partial
// list while a partition loads.
func (c *Coordinator) List(states, types []string) ([]Listed, error) {
	match := func(filter []string, v string) bool {
		if len(filter) == 0 {
			return true
		}
		for _, f := range filter {
			if strings.EqualFold(f, v) {
				return true
			}
		}
		return false
	}
	var out []Listed
	var err error
	for _, part := range c.partitions() {
		part.mu.Lock()
		if part.loading {
			err = ErrLoadInProgress
		}
		for _, g := range part.groups {
			l := Listed{Group: g.id, ProtocolType: g.protocolType, State: g.state.String(), Type: "classic"}
			if g.consumer != nil {
				l.State, l.Type = g.consumer.state(), "consumer"
			}
			if match(states, l.State) && match(types, l.Type) {
				out = append(out, l)
			}
		}
		part.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out, err
}
