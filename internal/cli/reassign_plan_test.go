package cli

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestGeneratePlan(t *testing.T) {
	tests := []struct {
		name    string
		cur     assignment
		brokers []int32
		want    assignment // nil: only the properties are checked
		moved   int
		err     string
	}{
		{
			name:    "replace a broker: only its replicas move, leaders stay",
			cur:     assignment{"a": {0: {1, 2, 3}, 1: {2, 3, 1}, 2: {3, 1, 2}}},
			brokers: []int32{2, 3, 4},
			want:    assignment{"a": {0: {4, 2, 3}, 1: {2, 3, 4}, 2: {3, 4, 2}}},
			moved:   3,
		},
		{
			name:    "same brokers, balanced: nothing moves",
			cur:     assignment{"a": {0: {1, 2}, 1: {2, 3}, 2: {3, 1}}},
			brokers: []int32{3, 1, 2},
			want:    assignment{"a": {0: {1, 2}, 1: {2, 3}, 2: {3, 1}}},
		},
		{
			name:    "a new broker takes half of an rf 1 topic",
			cur:     assignment{"a": {0: {1}, 1: {1}, 2: {1}, 3: {1}}},
			brokers: []int32{1, 2},
			moved:   2,
		},
		{
			name:    "from three brokers to six",
			cur:     assignment{"a": {0: {1}, 1: {2}, 2: {3}, 3: {1}, 4: {2}, 5: {3}}},
			brokers: []int32{1, 2, 3, 4, 5, 6},
			moved:   3,
		},
		{
			name:    "preferred leaders are spread without moving data",
			cur:     assignment{"a": {0: {1, 2, 3}, 1: {1, 2, 3}, 2: {1, 2, 3}}},
			brokers: []int32{1, 2, 3},
			want:    assignment{"a": {0: {1, 2, 3}, 1: {2, 1, 3}, 2: {3, 2, 1}}},
		},
		{
			name:    "small topics spread over the cluster",
			cur:     assignment{"a": {0: {1}}, "b": {0: {1}}, "c": {0: {1}}},
			brokers: []int32{2, 3, 4},
			want:    assignment{"a": {0: {2}}, "b": {0: {3}}, "c": {0: {4}}},
			moved:   3,
		},
		{
			name:    "moving off two brokers at once",
			cur:     assignment{"a": {0: {1, 2}, 1: {2, 1}, 2: {1, 2}, 3: {2, 1}}},
			brokers: []int32{3, 4},
			moved:   8,
		},
		{
			name:    "replication factor above the broker count",
			cur:     assignment{"a": {0: {1, 2, 3}}},
			brokers: []int32{1, 2},
			err:     "topic a partition 0 has 3 replicas, more than the 2 brokers given",
		},
		{
			name: "no brokers",
			cur:  assignment{"a": {0: {1}}},
			err:  "no target brokers given",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := encodePlan(tt.cur.plan())
			got, err := generatePlan(tt.cur, tt.brokers)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if after := encodePlan(tt.cur.plan()); after != before {
				t.Errorf("generatePlan changed its input: %s, was %s", after, before)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan = %s, want %s", encodePlan(got.plan()), encodePlan(tt.want.plan()))
			}
			checkPlan(t, tt.cur, got, tt.brokers)
			if moved, _, _ := movedReplicas(tt.cur, got); moved != tt.moved {
				t.Errorf("moves %d replicas, want %d: %s", moved, tt.moved, encodePlan(got.plan()))
			}
		})
	}
}

// checkPlan checks what every plan must be: the same partitions with the
// same replication factor, distinct replicas on target brokers only, and
// per topic replicas and preferred leaders within one of each other.
func checkPlan(t *testing.T, cur, next assignment, brokers []int32) {
	t.Helper()
	for topic, ps := range cur {
		if !slices.Equal(slices.Sorted(maps.Keys(ps)), slices.Sorted(maps.Keys(next[topic]))) {
			t.Fatalf("topic %s: partitions %v, want %v", topic, slices.Sorted(maps.Keys(next[topic])), slices.Sorted(maps.Keys(ps)))
		}
		replicas, leaders := map[int32]int{}, map[int32]int{}
		for _, b := range brokers {
			replicas[b], leaders[b] = 0, 0
		}
		for p, rs := range next[topic] {
			if len(rs) != len(ps[p]) {
				t.Errorf("%s/%d: %d replicas, want %d", topic, p, len(rs), len(ps[p]))
			}
			if len(slices.Compact(slices.Sorted(slices.Values(rs)))) != len(rs) {
				t.Errorf("%s/%d: replicas %v are not distinct", topic, p, rs)
			}
			for _, b := range rs {
				if !slices.Contains(brokers, b) {
					t.Errorf("%s/%d: replica on broker %d, not a target", topic, p, b)
				}
				replicas[b]++
			}
			leaders[rs[0]]++
		}
		for what, counts := range map[string]map[int32]int{"replicas": replicas, "leaders": leaders} {
			vs := slices.Collect(maps.Values(counts))
			if slices.Max(vs)-slices.Min(vs) > 1 && (what == "replicas" || len(next[topic]) >= len(brokers)) {
				t.Errorf("topic %s: %s per broker %v differ by more than one", topic, what, counts)
			}
		}
	}
}

func TestReadPlan(t *testing.T) {
	tests := []struct {
		name, in, err string
	}{
		{"kafka's output", `{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[2,3],"log_dirs":["any","any"]}]}`, ""},
		{"not json", `version: 1`, "not a reassignment JSON"},
		{"unknown field", `{"version":1,"partitions":[{"topic":"a","partition":0,"replica":[2]}]}`, `unknown field "replica"`},
		{"version", `{"version":2,"partitions":[{"topic":"a","partition":0,"replicas":[2]}]}`, "version 2: want 1"},
		{"empty", `{"version":1,"partitions":[]}`, "lists no partitions"},
		{"twice", `{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[2]},{"topic":"a","partition":0,"replicas":[3]}]}`, "partition a/0 listed twice"},
		{"no replicas", `{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[]}]}`, "partition a/0 has no replicas"},
		{"duplicate replica", `{"version":1,"partitions":[{"topic":"a","partition":1,"replicas":[2,2]}]}`, "a/1: replicas 2,2: want distinct"},
		{"no topic", `{"version":1,"partitions":[{"partition":0,"replicas":[2]}]}`, "want a topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readPlan(strings.NewReader(tt.in))
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("readPlan(%s) = %v, want error %q", tt.in, err, tt.err)
			}
		})
	}
}
