package broker

// The checks of the consumer group protocol's APIs (KIP-848), as Kafka 4
// has them since KAFKA-18813: a member may not subscribe to, and a caller
// may not see the assignments of, topics it may not DESCRIBE.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

// checkConsumerGroupHeartbeat: READ on the group
// (GROUP_AUTHORIZATION_FAILED), then DESCRIBE on every topic the member
// subscribes to by name; one denied answers TOPIC_AUTHORIZATION_FAILED for
// the whole heartbeat, naming no topic, as Kafka. A regex subscription is
// not refused: the topics this member may not DESCRIBE are left out of
// those the coordinator matches the regex against when this heartbeat
// re-resolves it (r.topicDenied), as Kafka resolves with the ACLs of the
// member whose heartbeat triggered the refresh.
func checkConsumerGroupHeartbeat(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.ConsumerGroupHeartbeatRequest)
	if !c.can(authz.OpRead, authz.ResourceGroup, req.Group) {
		return denyWhole(r, codeGroup)
	}
	if c.a != nil {
		r.topicDenied = func(topic string) bool { return !c.canQuiet(authz.OpDescribe, authz.ResourceTopic, topic) }
	}
	denied := false
	for _, t := range req.SubscribedTopicNames {
		// Every topic is checked (and each denial logged), as Kafka's
		// filterByAuthorized does.
		if !c.can(authz.OpDescribe, authz.ResourceTopic, t) {
			denied = true
		}
	}
	if denied {
		return denyWhole(r, codeTopic)
	}
	return true
}

// checkConsumerGroupDescribe: DESCRIBE on each group (the denied ones get
// GROUP_AUTHORIZATION_FAILED), and, in the answer, DESCRIBE on every topic
// of the group's members' current and target assignments: a group with
// one the caller may not describe is answered TOPIC_AUTHORIZATION_FAILED
// without its members (KAFKA-18813). Authorized operations when asked.
func checkConsumerGroupDescribe(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.ConsumerGroupDescribeRequest)
	kept, denied := split(req.Groups, func(g string) bool { return c.can(authz.OpDescribe, authz.ResourceGroup, g) })
	req.Groups = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.ConsumerGroupDescribeResponse)
		for i := range dr.Groups {
			g := &dr.Groups[i]
			if g.ErrorCode != 0 {
				continue
			}
			if topic, ok := undescribableTopic(c, g); !ok {
				c.b.log.Info("ConsumerGroupDescribe: group hidden for an assigned topic the caller may not describe", "group", g.Group, "topic", topic, "principal", c.principal)
				hidden := kmsg.NewConsumerGroupDescribeResponseGroup()
				msg := "The group has described topic(s) that the client is not authorized to describe."
				hidden.Group, hidden.ErrorCode, hidden.ErrorMessage = g.Group, codeTopic, &msg
				*g = hidden
				continue
			}
			if req.IncludeAuthorizedOperations {
				g.AuthorizedOperations = c.ops(authz.ResourceGroup, g.Group)
			}
		}
		for _, g := range denied {
			dg := kmsg.NewConsumerGroupDescribeResponseGroup()
			dg.Group, dg.ErrorCode = g, codeGroup
			dr.Groups = append(dr.Groups, dg)
		}
	})
	if len(kept) == 0 && len(denied) > 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// undescribableTopic returns the first topic of g's assignments the caller
// may not DESCRIBE, and false; true if there is none.
func undescribableTopic(c *authCtx, g *kmsg.ConsumerGroupDescribeResponseGroup) (string, bool) {
	for _, m := range g.Members {
		for _, a := range []kmsg.Assignment{m.Assignment, m.TargetAssignment} {
			for _, tp := range a.TopicPartitions {
				// A topic no longer known by name (deleted) reveals nothing.
				if name := c.topicName(tp.Topic, tp.TopicID); name != "" && !c.can(authz.OpDescribe, authz.ResourceTopic, name) {
					return name, false
				}
			}
		}
	}
	return "", true
}
