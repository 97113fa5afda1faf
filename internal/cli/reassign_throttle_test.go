package cli

import (
	"maps"
	"slices"
	"testing"
)

func TestPlanThrottles(t *testing.T) {
	cur := assignment{
		"a": {0: {1, 2, 3}, 1: {2, 3, 1}, 2: {3, 1, 2}},
		"b": {0: {1}, 1: {2}},
	}
	tests := []struct {
		name             string
		plan             []planPartition
		leader, follower map[string]string
		brokers          []int32
	}{
		{name: "nothing moves",
			plan:   []planPartition{{Topic: "a", Partition: 0, Replicas: []int32{1, 2, 3}}, {Topic: "a", Partition: 1, Replicas: []int32{3, 2, 1}}},
			leader: map[string]string{}, follower: map[string]string{}},
		{name: "only removing replicas needs no throttle",
			plan:   []planPartition{{Topic: "a", Partition: 0, Replicas: []int32{1, 2}}},
			leader: map[string]string{}, follower: map[string]string{}},
		{name: "add one replica",
			plan:     []planPartition{{Topic: "a", Partition: 0, Replicas: []int32{1, 2, 3, 4}}},
			leader:   map[string]string{"a": "0:1,0:2,0:3"},
			follower: map[string]string{"a": "0:4"},
			brokers:  []int32{1, 2, 3, 4}},
		{name: "move replicas of several partitions and topics",
			plan: []planPartition{
				{Topic: "a", Partition: 2, Replicas: []int32{4, 5, 2}},
				{Topic: "a", Partition: 1, Replicas: []int32{2, 3, 4}},
				{Topic: "b", Partition: 1, Replicas: []int32{5}},
				{Topic: "b", Partition: 0, Replicas: []int32{1}},
			},
			leader:   map[string]string{"a": "1:1,1:2,1:3,2:1,2:2,2:3", "b": "1:2"},
			follower: map[string]string{"a": "1:4,2:4,2:5", "b": "1:5"},
			brokers:  []int32{1, 2, 3, 4, 5}},
	}
	for _, tc := range tests {
		got := planThrottles(cur, reassignPlan{Version: 1, Partitions: tc.plan})
		if !maps.Equal(got.Leader, tc.leader) || !maps.Equal(got.Follower, tc.follower) || !slices.Equal(got.Brokers, tc.brokers) {
			t.Errorf("%s: got %+v, want leader %v follower %v brokers %v", tc.name, got, tc.leader, tc.follower, tc.brokers)
		}
	}
}

func TestReassignThrottleFlags(t *testing.T) {
	for _, tc := range []struct {
		o  ReassignOptions
		ok bool
	}{
		{ReassignOptions{Execute: true, Plan: "p", Throttle: 1000}, true},
		{ReassignOptions{Execute: true, Plan: "p", Throttle: -1}, true},
		{ReassignOptions{Verify: true, Plan: "p", Throttle: 1000}, false},
		{ReassignOptions{Execute: true, Plan: "p", Throttle: -2}, false},
		{ReassignOptions{Verify: true, Plan: "p"}, true}, // 0: none
		{ReassignOptions{Verify: true, Plan: "p", Throttle: -1, PreserveThrottles: true}, true},
		{ReassignOptions{Cancel: true, Throttle: -1, PreserveThrottles: true}, true},
		{ReassignOptions{Execute: true, Plan: "p", Throttle: -1, PreserveThrottles: true}, false},
	} {
		if err := tc.o.check(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.o, err, tc.ok)
		}
	}
}
