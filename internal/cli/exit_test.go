package cli

import (
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func TestExitCode(t *testing.T) {
	two := &ExitStatus{Code: 2, Err: errors.New("cluster unhealthy")}
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("x"), 1},
		{two, 2},
		{fmt.Errorf("wrapped: %w", two), 2},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// A partition led by a fenced broker is offline; fenced brokers are
// listed; rf 1 at min ISR 1 is configuration, not a problem.
func TestAssessHealthFenced(t *testing.T) {
	v := clusterView{
		md: kadm.Metadata{
			Brokers: kadm.BrokerDetails{{NodeID: 1}, {NodeID: 2}},
			Topics: kadm.TopicDetails{"a": {Topic: "a", Partitions: kadm.PartitionDetails{
				0: {Topic: "a", Partition: 0, Leader: 2, Replicas: []int32{2, 1}, ISR: []int32{2, 1}},
				1: {Topic: "a", Partition: 1, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}},
			}}},
		},
		fenced: map[int32]bool{2: true, 3: true},
		extra:  []kadm.BrokerDetail{{NodeID: 3}},
	}
	r := assessHealth(v, func(string) int { return 1 })
	if r.Healthy || r.Brokers != 3 || fmt.Sprint(r.FencedBrokers) != "[2 3]" || r.Offline != 1 || r.AtMinISR != 0 || len(r.Problems) != 1 ||
		fmt.Sprint(r.Problems[0].States) != "[offline]" {
		t.Errorf("assessHealth = %+v", r)
	}
}
