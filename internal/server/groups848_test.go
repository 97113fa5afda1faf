package server

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var groups848Overrides = map[string]string{
	"group.initial.rebalance.delay.ms":     "0",
	"group.min.session.timeout.ms":         "100",
	"group.consumer.heartbeat.interval.ms": "100",
	"group.consumer.session.timeout.ms":    "1500",
}

func describe848(t *testing.T, n *testNode, groupID string) *kmsg.ConsumerGroupDescribeResponseGroup {
	t.Helper()
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = []string{groupID}
	resp, err := req.RequestWith(ctxT(t), n.client())
	if err != nil {
		t.Fatal(err)
	}
	return &resp.Groups[0]
}

// TestGroupConsumeNextGen runs franz-go's KIP-848 opt-in (server-side
// assignment) through joins, a graceful leave, a join, and a restart.
func TestGroupConsumeNextGen(t *testing.T) {
	t.Parallel()
	const (
		total = 20000
		parts = 12
	)
	n := startNode(t, "", groups848Overrides)
	topic, groupID := "g848-events", "g848"
	if _, err := n.admin().CreateTopic(ctxT(t), parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	prod := n.client(kgo.DefaultProduceTopic(topic))
	got := newConsumed()
	opts := []kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(kgo.CooperativeStickyBalancer())}

	var members []*groupConsumer
	for range 3 {
		members = append(members, startConsumer(t, n, groupID, topic, got, opts...))
	}
	produceN(t, prod, topic, 0, total/2)
	waitWithin(t, "first records", 20*time.Second, func() bool { return got.count() > total/8 })
	waitWithin(t, "three members stable", 10*time.Second, func() bool {
		d := describe848(t, n, groupID)
		return d.ErrorCode == 0 && d.State == "Stable" && len(d.Members) == 3
	})
	d := describe848(t, n, groupID)
	if d.AssignorName != "uniform" {
		t.Fatalf("assignor %q, want uniform", d.AssignorName)
	}
	seen := map[int32]bool{}
	for _, m := range d.Members {
		cnt := 0
		for _, tp := range m.Assignment.TopicPartitions {
			for _, p := range tp.Partitions {
				if seen[p] {
					t.Fatalf("partition %d assigned twice: %+v", p, d)
				}
				seen[p] = true
				cnt++
			}
		}
		if cnt != parts/3 {
			t.Fatalf("member %s has %d partitions, want %d", m.MemberID, cnt, parts/3)
		}
	}

	// One member leaves, another joins, while more records arrive.
	members[0].stop()
	members = members[1:]
	produceN(t, prod, topic, total/2, total/4)
	members = append(members, startConsumer(t, n, groupID, topic, got, opts...))
	members = append(members, startConsumer(t, n, groupID, topic, got, opts...))
	produceN(t, prod, topic, total*3/4, total/4)

	waitWithin(t, "every record", 30*time.Second, func() bool { return got.count() == total })
	waitWithin(t, "four members stable", 10*time.Second, func() bool {
		d := describe848(t, n, groupID)
		return d.State == "Stable" && len(d.Members) == 4
	})
	lreq := kmsg.NewPtrListGroupsRequest()
	lreq.TypesFilter = []string{"consumer"}
	lresp, err := lreq.RequestWith(ctxT(t), n.client())
	if err != nil {
		t.Fatal(err)
	}
	if len(lresp.Groups) != 1 || lresp.Groups[0].Group != groupID || lresp.Groups[0].GroupType != "consumer" || lresp.Groups[0].GroupState != "Stable" {
		t.Fatalf("listed consumer groups %+v, want %s Stable", lresp.Groups, groupID)
	}
	for _, m := range members {
		m.stop()
	}
	committed := committedOffsets(t, n, groupID, topic)
	sum := int64(0)
	for _, o := range committed {
		sum += o
	}
	if sum != total {
		t.Fatalf("committed offsets sum to %d, want %d: %v", sum, total, committed)
	}

	n.restart()
	if again := committedOffsets(t, n, groupID, topic); fmt.Sprint(again) != fmt.Sprint(committed) {
		t.Fatalf("committed offsets after restart %v, want %v", again, committed)
	}
	prod = n.client(kgo.DefaultProduceTopic(topic))
	produceN(t, prod, topic, total, 1000)
	after := newConsumed()
	m1 := startConsumer(t, n, groupID, topic, after, opts...)
	m2 := startConsumer(t, n, groupID, topic, after, opts...)
	waitWithin(t, "new records after restart", 20*time.Second, func() bool { return after.count() == 1000 })
	m1.stop()
	m2.stop()
	after.mu.Lock()
	defer after.mu.Unlock()
	for _, r := range after.recs {
		if r.Offset < committed[r.Partition] {
			t.Fatalf("partition %d re-read offset %d before the committed %d", r.Partition, r.Offset, committed[r.Partition])
		}
		if v, _ := strconv.Atoi(string(r.Value)); v < total {
			t.Fatalf("re-read record %d from before the restart", v)
		}
	}
}

// TestConsumerGroupHeartbeatErrors checks the wire errors of bad
// heartbeats and that the versions are advertised.
func TestConsumerGroupHeartbeatErrors(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groups848Overrides)
	cl := n.client()
	hb := func(mod func(*kmsg.ConsumerGroupHeartbeatRequest)) *kmsg.ConsumerGroupHeartbeatResponse {
		req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		req.Group, req.MemberID, req.RebalanceTimeoutMillis = "g-errs", "m1", 5000
		req.SubscribedTopicNames = []string{"t"}
		req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
		mod(req)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	bad := "nope"
	for _, tc := range []struct {
		name string
		mod  func(*kmsg.ConsumerGroupHeartbeatRequest)
		want *kerr.Error
	}{
		{"unknown assignor", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.ServerAssignor = &bad }, kerr.UnsupportedAssignor},
		{"no subscription", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.SubscribedTopicNames = nil }, kerr.InvalidRequest},
		{"no member id", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberID = "" }, kerr.InvalidRequest},
		{"unknown member", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 3 }, kerr.UnknownMemberID},
		{"join", func(*kmsg.ConsumerGroupHeartbeatRequest) {}, nil},
		{"fenced", func(r *kmsg.ConsumerGroupHeartbeatRequest) { r.MemberEpoch = 7 }, kerr.FencedMemberEpoch},
	} {
		resp := hb(tc.mod)
		want := int16(0)
		if tc.want != nil {
			want = tc.want.Code
		}
		if resp.ErrorCode != want {
			t.Errorf("%s: got %v, want %v", tc.name, kerr.ErrorForCode(resp.ErrorCode), tc.want)
		}
	}
	// A classic JoinGroup on the consumer group is refused.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "g-errs", 1000, 1000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0}}}
	jr, err := join.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(jr.ErrorCode); err != kerr.InconsistentGroupProtocol {
		t.Errorf("classic join on a consumer group: %v", err)
	}
}
