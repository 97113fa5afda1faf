package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestGroupConsumeNextGenRegex: franz-go's KIP-848 consumer subscribed by
// regex (resolved by the coordinator) consumes the matching topics, picks
// up a matching topic created while the group runs, and never gets
// __consumer_offsets even though the regex names it.
func TestGroupConsumeNextGenRegex(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groups848Overrides)
	adm := n.admin()
	for topic, parts := range map[string]int32{"rx-a": 3, "plain": 1} {
		if _, err := adm.CreateTopic(ctxT(t), parts, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	prod := n.client()
	produceN(t, prod, "rx-a", 0, 100)
	produceN(t, prod, "plain", 1000, 10)

	got := newConsumed()
	opts := []kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ConsumeRegex()}
	const regex = "rx-.*|__consumer_offsets"
	m1 := startConsumer(t, n, "g848-rx", regex, got, opts...)
	m2 := startConsumer(t, n, "g848-rx", regex, got, opts...)
	defer m1.stop()
	defer m2.stop()
	waitWithin(t, "rx-a consumed", 20*time.Second, func() bool { return got.count() == 100 })

	// A matching topic created while the group runs.
	if _, err := adm.CreateTopic(ctxT(t), 2, 1, nil, "rx-b"); err != nil {
		t.Fatal(err)
	}
	produceN(t, prod, "rx-b", 2000, 50)
	waitWithin(t, "rx-b consumed", 20*time.Second, func() bool { return got.count() == 150 })

	d := describe848(t, n, "g848-rx")
	if d.ErrorCode != 0 || len(d.Members) != 2 {
		t.Fatalf("describe: %+v", d)
	}
	assigned := map[string]int{}
	for _, m := range d.Members {
		if m.SubscribedTopicRegex == nil || *m.SubscribedTopicRegex == "" {
			t.Fatalf("member %s described without its regex", m.MemberID)
		}
		for _, tp := range m.TargetAssignment.TopicPartitions {
			assigned[tp.Topic] += len(tp.Partitions)
		}
	}
	if len(assigned) != 2 || assigned["rx-a"] != 3 || assigned["rx-b"] != 2 {
		t.Fatalf("target assignment by topic %v, want rx-a:3 rx-b:2", assigned)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	for _, r := range got.recs {
		if r.Topic != "rx-a" && r.Topic != "rx-b" {
			t.Fatalf("consumed a record of %s", r.Topic)
		}
	}
}
