package broker

// ConsumerGroupHeartbeat, v0..1 (KIP-848): join (epoch 0), heartbeat,
// leave (epoch -1, or -2 for a static member); the coordinator assigns
// partitions by topic id and answers with the member's epoch and, when it
// changed (or the request was a full one), its assignment. v0 members get
// their id from the coordinator; v1 members bring their own. The session
// timeout and heartbeat interval are the broker's
// group.consumer.session.timeout.ms and group.consumer.heartbeat.interval.ms.
// A SubscribedTopicRegex (v1) is resolved by the coordinator against the
// topics in this broker's image, internal topics left out, as Kafka does.

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

const (
	defaultConsumerHeartbeatInterval = 5 * time.Second
	defaultConsumerSessionTimeout    = 45 * time.Second
)

func (b *Broker) consumerGroupTimes() (heartbeat, session time.Duration) {
	heartbeat, session = defaultConsumerHeartbeatInterval, defaultConsumerSessionTimeout
	if s := b.opts.Static; s != nil {
		if v := s.Int64("group.consumer.heartbeat.interval.ms"); v > 0 {
			heartbeat = time.Duration(v) * time.Millisecond
		}
		if v := s.Int64("group.consumer.session.timeout.ms"); v > 0 {
			session = time.Duration(v) * time.Millisecond
		}
	}
	return heartbeat, session
}

func (b *Broker) handleConsumerGroupHeartbeat(_ context.Context, r *request) {
	req := r.body.(*kmsg.ConsumerGroupHeartbeatRequest)
	resp := kmsg.NewPtrConsumerGroupHeartbeatResponse()
	hb, session := b.consumerGroupTimes()
	img := b.image()
	hr := group.ConsumerHeartbeatRequest{
		Group: req.Group, MemberID: req.MemberID, MemberEpoch: req.MemberEpoch,
		InstanceID: req.InstanceID, RackID: req.RackID,
		RebalanceTimeout: -1,
		SubscribedTopics: req.SubscribedTopicNames, SubscribedRegex: req.SubscribedTopicRegex,
		ServerAssignor: req.ServerAssignor,
		ClientID:       r.clientID, ClientHost: clientHost(r),
		SessionTimeout:   session,
		GenerateMemberID: r.version == 0,
		Topics: func(name string) (group.TopicMeta, bool) {
			t := img.Topics[name]
			if t == nil {
				return group.TopicMeta{}, false
			}
			return group.TopicMeta{ID: t.ID, Partitions: int32(len(t.Partitions))}, true
		},
		TopicNames: func() []string {
			names := regexCandidates(img.SortedTopicNames())
			if r.topicDenied != nil {
				names = slices.DeleteFunc(names, r.topicDenied)
			}
			return names
		},
		MetadataVersion: img.Offset,
	}
	if req.RebalanceTimeoutMillis >= 0 {
		hr.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.Topics != nil {
		hr.Owned = make([]group.TopicPartitions, len(req.Topics))
		for i, t := range req.Topics {
			hr.Owned[i] = group.TopicPartitions{TopicID: t.TopicID, Partitions: t.Partitions}
		}
	}
	res := b.opts.Groups.ConsumerHeartbeat(hr)
	resp.ErrorCode = errorCode(res.Err)
	resp.ErrorMessage = errorMessage(res.Err)
	resp.MemberEpoch = res.MemberEpoch
	resp.HeartbeatIntervalMillis = int32(hb / time.Millisecond)
	if res.MemberID != "" {
		id := res.MemberID
		resp.MemberID = &id
	}
	if res.Err == nil && res.Assignment != nil {
		a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
		a.Topics = make([]kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic, len(res.Assignment))
		for i, t := range res.Assignment {
			a.Topics[i] = kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{TopicID: t.TopicID, Partitions: t.Partitions}
		}
		resp.Assignment = &a
	}
	r.respond(resp)
}

// regexCandidates drops the internal topics from names: a regex
// subscription never matches them.
func regexCandidates(names []string) []string {
	return slices.DeleteFunc(names, internalTopic)
}
