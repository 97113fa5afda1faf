package group

import (
	"fmt"
	"maps"
	"slices"
)

// ConsumerMemberDescription is one member in ConsumerGroupDescribe.
type ConsumerMemberDescription struct {
	MemberID         string
	InstanceID       *string
	RackID           *string
	MemberEpoch      int32
	ClientID         string
	ClientHost       string
	SubscribedTopics []string
	SubscribedRegex  string // "" if none
	Assignment       []TopicPartitions
	TargetAssignment []TopicPartitions
}

// ConsumerDescription is one group in ConsumerGroupDescribe. A group that
// does not exist, or is a classic group, gets ErrGroupNotFound.
type ConsumerDescription struct {
	Err             error
	Group           string
	State           string
	Epoch           int32
	AssignmentEpoch int32
	Assignor        string
	Members         []ConsumerMemberDescription
}

// ConsumerDescribe describes consumer protocol groups.
func (c *Coordinator) ConsumerDescribe(ids []string) []ConsumerDescription {
	out := make([]ConsumerDescription, len(ids))
	for i, id := range ids {
		out[i] = c.consumerDescribe(id)
	}
	return out
}

func (c *Coordinator) consumerDescribe(id string) (d ConsumerDescription) {
	d.Group = id
	g, part, err := c.enter(id)
	if err != nil {
		d.Err = err
		return d
	}
	defer part.mu.Unlock()
	switch {
	case g == nil:
		d.Err = fmt.Errorf("%w: group %s does not exist", ErrGroupNotFound, id)
		return d
	case g.consumer == nil:
		d.Err = fmt.Errorf("%w: %s is not a consumer group", ErrGroupNotFound, id)
		return d
	}
	cg := g.consumer
	d.State, d.Epoch, d.AssignmentEpoch, d.Assignor = cg.state(), cg.epoch, cg.assignmentEpoch, cg.assignor
	names := make(map[[16]byte]string, len(cg.topics))
	for n, t := range cg.topics {
		names[t.ID] = n
	}
	for _, mid := range slices.Sorted(maps.Keys(cg.members)) {
		m := cg.members[mid]
		epoch := m.epoch
		if m.leftStatic {
			epoch = -2
		}
		d.Members = append(d.Members, ConsumerMemberDescription{
			MemberID: m.id, InstanceID: m.instanceID, RackID: m.rackID, MemberEpoch: epoch,
			ClientID: m.clientID, ClientHost: m.clientHost,
			SubscribedTopics: slices.Clone(m.subscribed),
			SubscribedRegex:  m.regex,
			Assignment:       m.assigned.list(names),
			TargetAssignment: cg.target[m.id].list(names),
		})
	}
	return d
}
