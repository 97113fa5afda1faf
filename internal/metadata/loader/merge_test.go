package loader

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stratalog/strata/internal/metadata"
)

// TestMergeMatchesDiff: over random histories (topics created, deleted and
// recreated under the same name, leaders, ISRs and replicas changing,
// brokers registering and fenced, configs set and removed), the steps
// between any two images, merged, say what the full comparison of those
// two images says, for every node.
func TestMergeMatchesDiff(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		img := metadata.Empty()
		var ids byte
		names := []string{"a", "b", "c"}
		nodes := func() []int32 {
			n := []int32{1, 2, 3, 4}
			rng.Shuffle(len(n), func(i, j int) { n[i], n[j] = n[j], n[i] })
			return n[:1+rng.IntN(3)]
		}
		mark, acc := img, (*Delta)(nil)
		for step := range 60 {
			var recs []metadata.Record
			name := names[rng.IntN(len(names))]
			t0 := img.Topics[name]
			switch op := rng.IntN(7); {
			case t0 == nil && op < 4:
				ids++
				id := metadata.UUID{0: ids}
				recs = append(recs, &metadata.TopicRecord{Name: name, ID: id})
				for i := range 1 + rng.IntN(3) {
					r := nodes()
					recs = append(recs, &metadata.PartitionRecord{TopicID: id, Partition: int32(i), Replicas: r, ISR: r, Leader: r[0]})
				}
			case t0 != nil && op == 0:
				recs = append(recs, &metadata.RemoveTopicRecord{ID: t0.ID})
			case t0 != nil && op <= 3:
				i := rng.IntN(len(t0.Partitions))
				p := *t0.Partitions[i]
				switch rng.IntN(3) {
				case 0:
					p.Leader, p.LeaderEpoch = p.Replicas[rng.IntN(len(p.Replicas))], p.LeaderEpoch+1
				case 1:
					p.ISR = p.Replicas[:1+rng.IntN(len(p.Replicas))]
				default:
					p.Replicas = nodes()
					p.ISR, p.Leader, p.LeaderEpoch = p.Replicas, p.Replicas[0], p.LeaderEpoch+1
				}
				p.PartitionEpoch++
				recs = append(recs, &metadata.PartitionRecord{TopicID: t0.ID, Partition: int32(i), Replicas: p.Replicas, ISR: p.ISR,
					Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch})
			case op == 4:
				id := int32(1 + rng.IntN(4))
				if b := img.Brokers[id]; b != nil && rng.IntN(2) == 0 {
					recs = append(recs, &metadata.FenceBrokerRecord{NodeID: id, Epoch: b.Epoch, Fenced: !b.Fenced})
				} else {
					recs = append(recs, &metadata.RegisterBrokerRecord{NodeID: id, Epoch: int64(step), Host: "h", Port: int32(1 + rng.IntN(3))})
				}
			default:
				r := &metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: name, Name: "retention.ms"}
				if rng.IntN(2) == 0 {
					v := fmt.Sprint(rng.IntN(3))
					r.Value = &v
				}
				recs = append(recs, r)
			}
			if len(recs) == 0 {
				continue
			}
			next, err := img.Apply(img.Offset+1, recs)
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			s := Step(img, next, recs)
			if acc == nil {
				acc = s
			} else {
				acc = acc.Merge(s)
			}
			img = next
			if rng.IntN(4) != 0 {
				continue // the publisher is busy: the steps pile up
			}
			full := Diff(mark, img)
			for node := int32(1); node <= 4; node++ {
				if a, b := summary(acc.LocalChanges(node)), summary(full.LocalChanges(node)); !slices.Equal(a, b) {
					t.Fatalf("seed %d step %d node %d: merged %v, full %v", seed, step, node, a, b)
				}
			}
			if a, b := fmt.Sprint(acc.Topics(), acc.Brokers(), acc.Configs()), fmt.Sprint(full.Topics(), full.Brokers(), full.Configs()); a != b {
				t.Fatalf("seed %d step %d: merged %s, full %s", seed, step, a, b)
			}
			mark, acc = img, nil
		}
	}
}

func summary(lc LocalChanges) []string {
	var out []string
	for _, r := range lc.Deletes {
		out = append(out, fmt.Sprintf("delete %s-%d %v", r.Topic, r.Partition, r.TopicID[0]))
	}
	for _, r := range lc.Leaders {
		out = append(out, fmt.Sprintf("lead %s-%d %v %p", r.Topic, r.Partition, r.TopicID[0], r.Registration))
	}
	for _, r := range lc.Followers {
		out = append(out, fmt.Sprintf("follow %s-%d %v %p", r.Topic, r.Partition, r.TopicID[0], r.Registration))
	}
	return out
}
