package broker

// ConsumerGroupDescribe, v0..1 (KIP-848): epochs, state, assignor and the
// members with their current and target assignments. Unknown and classic
// groups get GROUP_ID_NOT_FOUND. The ACL check, authorized operations and
// the hiding of groups with undescribable topics are in acl_checks_groups.go.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleConsumerGroupDescribe(_ context.Context, r *request) {
	req := r.body.(*kmsg.ConsumerGroupDescribeRequest)
	resp := kmsg.NewPtrConsumerGroupDescribeResponse()
	for _, d := range b.opts.Groups.ConsumerDescribe(req.Groups) {
		g := kmsg.NewConsumerGroupDescribeResponseGroup()
		g.Group, g.ErrorCode, g.ErrorMessage = d.Group, errorCode(d.Err), errorMessage(d.Err)
		g.State, g.Epoch, g.AssignmentEpoch, g.AssignorName = d.State, d.Epoch, d.AssignmentEpoch, d.Assignor
		for _, m := range d.Members {
			gm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			gm.MemberID, gm.InstanceID, gm.RackID, gm.MemberEpoch = m.MemberID, m.InstanceID, m.RackID, m.MemberEpoch
			gm.ClientID, gm.ClientHost = m.ClientID, m.ClientHost
			gm.SubscribedTopics = m.SubscribedTopics
			if gm.SubscribedTopics == nil {
				gm.SubscribedTopics = []string{}
			}
			if m.SubscribedRegex != "" {
				rx := m.SubscribedRegex
				gm.SubscribedTopicRegex = &rx
			}
			gm.Assignment = describedAssignment(m.Assignment)
			gm.TargetAssignment = describedAssignment(m.TargetAssignment)
			gm.MemberType = 1 // consumer protocol
			g.Members = append(g.Members, gm)
		}
		resp.Groups = append(resp.Groups, g)
	}
	r.respond(resp)
}

func describedAssignment(tps []group.TopicPartitions) kmsg.Assignment {
	a := kmsg.Assignment{TopicPartitions: make([]kmsg.AssignmentTopicPartition, len(tps))}
	for i, t := range tps {
		a.TopicPartitions[i] = kmsg.AssignmentTopicPartition{TopicID: t.TopicID, Topic: t.Topic, Partitions: t.Partitions}
	}
	return a
}
