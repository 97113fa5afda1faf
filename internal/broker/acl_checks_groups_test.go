package broker

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
)

// TestACLConsumerGroupHeartbeat: READ on the group, then DESCRIBE on every
// topic subscribed by name (KAFKA-18813); the heartbeat of a member
// subscribing to a topic it may not describe is TOPIC_AUTHORIZATION_FAILED.
func TestACLConsumerGroupHeartbeat(t *testing.T) {
	topic, grp := authz.ResourceTopic, authz.ResourceGroup
	for _, tc := range []struct {
		name   string
		topics []string
		regex  string
		acls   []authz.Binding
		want   int16
	}{
		{"no ACLs", []string{"t"}, "", nil, codeGroup},
		{"topic but not group", []string{"t"}, "", []authz.Binding{allow(topic, "t", authz.OpDescribe)}, codeGroup},
		{"group but not topic", []string{"t"}, "", []authz.Binding{allow(grp, "g", authz.OpRead)}, codeTopic},
		{"group and topic", []string{"t"}, "", []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "t", authz.OpDescribe)}, 0},
		{"READ implies DESCRIBE", []string{"t"}, "", []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "t", authz.OpRead)}, 0},
		{"one of two denied", []string{"t", "u"}, "", []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "t", authz.OpDescribe)}, codeTopic},
		{"denied by a DENY", []string{"t"}, "", []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "*", authz.OpDescribe),
			{ResourceType: topic, ResourceName: "t", PatternType: authz.PatternLiteral, Principal: "User:alice", Host: "*", Operation: authz.OpDescribe, Permission: authz.Deny}}, codeTopic},
		{"prefixed ACL", []string{"orders.eu"}, "", []authz.Binding{allow(grp, "g", authz.OpRead),
			{ResourceType: topic, ResourceName: "orders.", PatternType: authz.PatternPrefixed, Principal: "User:alice", Host: "*", Operation: authz.OpDescribe, Permission: authz.Allow}}, 0},
		{"unchanged subscription (null)", nil, "", []authz.Binding{allow(grp, "g", authz.OpRead)}, 0},
		{"regex subscription", nil, "t.*", []authz.Binding{allow(grp, "g", authz.OpRead)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newACLBroker(t, authz.Config{})
			if len(tc.acls) > 0 {
				for i, err := range b.opts.Controller.CreateAcls(tc.acls) {
					if err != nil {
						t.Fatalf("ACL %d: %v", i, err)
					}
				}
			}
			r := v(kmsg.NewPtrConsumerGroupHeartbeatRequest(), 0)
			r.Group, r.MemberID, r.MemberEpoch, r.RebalanceTimeoutMillis = "g", "m-1", 0, 10000
			r.SubscribedTopicNames = tc.topics
			if tc.regex != "" {
				r = v(r, 1)
				r.SubscribedTopicRegex = &tc.regex
			}
			resp, err := serveAs(t, b, aliceConn(), r)
			if err != nil {
				t.Fatalf("connection closed: %v", err)
			}
			if got := resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode; got != tc.want {
				t.Fatalf("error code %d, want %d", got, tc.want)
			}
		})
	}
}

// describeGroups is stubGroups whose consumer groups have a member
// assigned topic t and targeted to topic u.
type describeGroups struct{ stubGroups }

func (describeGroups) ConsumerDescribe(ids []string) []group.ConsumerDescription {
	out := make([]group.ConsumerDescription, len(ids))
	for i, id := range ids {
		out[i] = group.ConsumerDescription{Group: id, State: "stable", Members: []group.ConsumerMemberDescription{{
			MemberID: "m-1", SubscribedTopics: []string{"t", "u"},
			Assignment:       []group.TopicPartitions{{Topic: "t", Partitions: []int32{0}}},
			TargetAssignment: []group.TopicPartitions{{Topic: "u", Partitions: []int32{0}}},
		}}}
	}
	return out
}

// TestACLConsumerGroupDescribeHidesTopics: a group whose members'
// assignments name a topic the caller may not DESCRIBE is answered
// TOPIC_AUTHORIZATION_FAILED without its members; with DESCRIBE on both
// topics it is described.
func TestACLConsumerGroupDescribeHidesTopics(t *testing.T) {
	topic, grp := authz.ResourceTopic, authz.ResourceGroup
	for _, tc := range []struct {
		name string
		acls []authz.Binding
		want int16
	}{
		{"group only", []authz.Binding{allow(grp, "g", authz.OpDescribe)}, codeTopic},
		{"current assignment only", []authz.Binding{allow(grp, "g", authz.OpDescribe), allow(topic, "t", authz.OpDescribe)}, codeTopic},
		{"both topics", []authz.Binding{allow(grp, "g", authz.OpDescribe), allow(topic, "t", authz.OpDescribe), allow(topic, "u", authz.OpRead)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := newTestBroker(t)
			opts := base.opts
			opts.Groups = describeGroups{}
			opts.Authz = AuthzOptions{Enabled: true}
			b := New(opts)
			for i, err := range b.opts.Controller.CreateAcls(tc.acls) {
				if err != nil {
					t.Fatalf("ACL %d: %v", i, err)
				}
			}
			r := v(kmsg.NewPtrConsumerGroupDescribeRequest(), 0)
			r.Groups = []string{"g"}
			resp, err := serveAs(t, b, aliceConn(), r)
			if err != nil {
				t.Fatal(err)
			}
			groups := resp.(*kmsg.ConsumerGroupDescribeResponse).Groups
			if len(groups) != 1 || groups[0].Group != "g" || groups[0].ErrorCode != tc.want {
				t.Fatalf("groups %+v, want g with code %d", groups, tc.want)
			}
			if tc.want != 0 && (len(groups[0].Members) != 0 || groups[0].State != "") {
				t.Fatalf("a hidden group shows %d members, state %q", len(groups[0].Members), groups[0].State)
			}
			if tc.want == 0 && len(groups[0].Members) != 1 {
				t.Fatalf("described group has %d members", len(groups[0].Members))
			}
		})
	}
}

// regexGroups is stubGroups that records the topics a heartbeat offers
// the coordinator for regex resolution.
type regexGroups struct {
	stubGroups
	names *[]string
}

func (g regexGroups) ConsumerHeartbeat(req group.ConsumerHeartbeatRequest) group.ConsumerHeartbeatResult {
	*g.names = req.TopicNames()
	return group.ConsumerHeartbeatResult{}
}

// TestACLConsumerGroupHeartbeatRegex: a regex subscription is matched
// only against the topics the heartbeating member may DESCRIBE (Kafka
// resolves with the ACLs of the member that triggered the refresh);
// without an authorizer, against every topic.
func TestACLConsumerGroupHeartbeatRegex(t *testing.T) {
	for _, withAuthz := range []bool{true, false} {
		var names []string
		base := newTestBroker(t)
		opts := base.opts
		opts.Groups = regexGroups{names: &names}
		opts.Authz = AuthzOptions{Enabled: withAuthz}
		b := New(opts)
		for _, n := range []string{"orders-a", "orders-b"} {
			if res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: n, Partitions: 1, ReplicationFactor: 1}}, false); res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
		}
		if withAuthz {
			acls := []authz.Binding{allow(authz.ResourceGroup, "g", authz.OpRead), allow(authz.ResourceTopic, "orders-a", authz.OpDescribe)}
			for i, err := range b.opts.Controller.CreateAcls(acls) {
				if err != nil {
					t.Fatalf("ACL %d: %v", i, err)
				}
			}
		}
		r := v(kmsg.NewPtrConsumerGroupHeartbeatRequest(), 1)
		r.Group, r.MemberID, r.RebalanceTimeoutMillis = "g", "m-1", 10000
		rx := "orders-.*"
		r.SubscribedTopicRegex = &rx
		resp, err := serveAs(t, b, aliceConn(), r)
		if err != nil || resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode != 0 {
			t.Fatalf("authorizer %v: %v %+v", withAuthz, err, resp)
		}
		has := func(n string) bool { return slices.Contains(names, n) }
		if !has("orders-a") || has("orders-b") == withAuthz {
			t.Fatalf("authorizer %v: regex candidates %v", withAuthz, names)
		}
	}
}
