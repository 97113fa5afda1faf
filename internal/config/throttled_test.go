package config

import (
	"errors"
	"testing"
)

func TestParseThrottledReplicas(t *testing.T) {
	tests := []struct {
		in     string
		ok     bool
		all    bool
		has    []ReplicaRef
		hasNot []ReplicaRef
		nPairs int
	}{
		{in: "", ok: true},
		{in: "  ", ok: true},
		{in: "*", ok: true, all: true, has: []ReplicaRef{{0, 1}, {7, 9}}},
		{in: " * ", ok: true, all: true},
		{in: "0:1", ok: true, has: []ReplicaRef{{0, 1}}, hasNot: []ReplicaRef{{1, 0}, {0, 2}}, nPairs: 1},
		{in: "0:1, 1:2 ,2:3", ok: true, has: []ReplicaRef{{0, 1}, {1, 2}, {2, 3}}, hasNot: []ReplicaRef{{0, 2}}, nPairs: 3},
		{in: "0:1,0:1", ok: true, nPairs: 1},
		{in: "007:01", ok: true, has: []ReplicaRef{{7, 1}}, nPairs: 1},
		{in: "0:1,", ok: true, nPairs: 1},   // trailing empty entries are dropped, as Kafka's list parsing does
		{in: "0:1, ,", ok: true, nPairs: 1}, // several
		{in: ",0:1", ok: false},             // an empty entry before a replica
		{in: "0:1,,1:2", ok: false},         // in the middle
		{in: "*,0:1", ok: false},            // * only alone
		{in: "*,", ok: false},
		{in: "**", ok: false},
		{in: "0", ok: false},
		{in: "0:", ok: false},
		{in: ":1", ok: false},
		{in: "0:1:2", ok: false},
		{in: "-1:2", ok: false},
		{in: "+1:2", ok: false},
		{in: "a:b", ok: false},
		{in: "0 : 1", ok: false},
		{in: "2147483647:2147483647", ok: true, nPairs: 1},
		{in: "2147483648:1", ok: false}, // does not fit an int
	}
	for _, tc := range tests {
		got, err := ParseThrottledReplicas(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if got.All != tc.all || len(got.Pairs) != tc.nPairs {
			t.Errorf("%q: got %+v", tc.in, got)
		}
		for _, r := range tc.has {
			if !got.Has(r.Partition, r.Broker) {
				t.Errorf("%q: Has(%d, %d) = false", tc.in, r.Partition, r.Broker)
			}
		}
		for _, r := range tc.hasNot {
			if got.Has(r.Partition, r.Broker) {
				t.Errorf("%q: Has(%d, %d) = true", tc.in, r.Partition, r.Broker)
			}
		}
		if got.Empty() != (!tc.all && tc.nPairs == 0) {
			t.Errorf("%q: Empty() = %v", tc.in, got.Empty())
		}
	}
}

func TestThrottledReplicasConfig(t *testing.T) {
	reg := NewRegistry(TopicDefs())
	for _, k := range []string{"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"} {
		if err := reg.Validate(k, "0:1,1:2"); err != nil {
			t.Errorf("%s: %v", k, err)
		}
		if err := reg.Validate(k, "0-1"); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s=0-1: %v, want ErrInvalid", k, err)
		}
	}
	// No broker synonym: a topic without the key throttles nothing, and
	// broker layers do not leak into it.
	c := ResolveTopicConfig(Layers{DynamicDefault: map[string]string{"": "*"}})
	if !c.LeaderThrottledReplicas.Empty() || !c.FollowerThrottledReplicas.Empty() {
		t.Fatalf("default throttles: %+v %+v", c.LeaderThrottledReplicas, c.FollowerThrottledReplicas)
	}
	if r := c.Values["leader.replication.throttled.replicas"]; r.Source != SourceDefault || r.Value != "" {
		t.Fatalf("resolved %+v", r)
	}
	c = ResolveTopicConfig(Layers{Topic: map[string]string{"leader.replication.throttled.replicas": "*", "follower.replication.throttled.replicas": "3:4"}})
	if !c.LeaderThrottledReplicas.All || !c.FollowerThrottledReplicas.Has(3, 4) || c.FollowerThrottledReplicas.Has(3, 1) {
		t.Fatalf("topic throttles: %+v %+v", c.LeaderThrottledReplicas, c.FollowerThrottledReplicas)
	}
	b := NewRegistry(BrokerDefs())
	for _, k := range []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"} {
		d, ok := b.Lookup(k)
		if !ok || d.Default != "9223372036854775807" {
			t.Fatalf("%s: %+v", k, d)
		}
		if err := b.Validate(k, "-1"); err == nil {
			t.Errorf("%s=-1 accepted", k)
		}
	}
	if _, ok := b.Lookup(""); ok {
		t.Fatal("a broker key with no name")
	}
}
