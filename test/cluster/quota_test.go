package cluster

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeQuotasOn asks node id for every client quota (from its own
// metadata image).
func (c *testCluster) describeQuotasOn(ctx context.Context, id int32) (*kmsg.DescribeClientQuotasResponse, error) {
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	resp, err := c.client().Broker(int(id)).Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.DescribeClientQuotasResponse), nil
}

// TestClusterClientQuotas: a quota altered through a broker that is not
// the active controller (relayed there) reaches every node's image, a
// node restarted replays it from the metadata log, and brokers other than
// the controller enforce quotas (a producer over one is throttled).
func TestClusterClientQuotas(t *testing.T) {
	c := newCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c.waitBrokers(ctx, 3)
	var active int32
	waitFor(t, "a quorum leader", 30*time.Second, func() bool { active = c.leader(); return active > 0 })
	via := active%3 + 1 // another node

	req := kmsg.NewPtrAlterClientQuotasRequest()
	user := "alice"
	req.Entries = []kmsg.AlterClientQuotasRequestEntry{{
		Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: &user}},
		Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1048576}},
	}}
	var resp *kmsg.AlterClientQuotasResponse
	waitFor(t, "AlterClientQuotas through a follower", 30*time.Second, func() bool {
		r, err := c.client().Broker(int(via)).Request(ctx, req)
		if err != nil {
			return false
		}
		resp = r.(*kmsg.AlterClientQuotasResponse)
		return len(resp.Entries) == 1 && resp.Entries[0].ErrorCode == 0
	})
	has := func(id int32) bool {
		d, err := c.describeQuotasOn(ctx, id)
		return err == nil && d.ErrorCode == 0 && len(d.Entries) == 1 && len(d.Entries[0].Values) == 1 &&
			d.Entries[0].Values[0].Key == "producer_byte_rate" && d.Entries[0].Values[0].Value == 1048576
	}
	for id := int32(1); id <= 3; id++ {
		waitFor(t, "the quota on every node", 30*time.Second, func() bool { return has(id) })
	}
	// A restarted node replays the quota from its log.
	c.node(via).kill()
	c.node(via).start()
	waitFor(t, "the quota on the restarted node", 60*time.Second, func() bool { return has(via) })

	// The quota is enforced by the brokers that are not the controller
	// too: a producer over it is told throttle times.
	client := "slow"
	req.Entries = []kmsg.AlterClientQuotasRequestEntry{{
		Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: &client}},
		Ops:    []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 50 << 10}},
	}}
	waitFor(t, "AlterClientQuotas (NOT_CONTROLLER while the restarted node finds the controller)", 30*time.Second, func() bool {
		r, err := req.RequestWith(ctx, c.client())
		return err == nil && len(r.Entries) == 1 && r.Entries[0].ErrorCode == 0
	})
	if err := c.createTopic(ctx, "slow", 3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	throttles := &throttleCount{}
	p := c.client(kgo.ClientID(client), kgo.WithHooks(throttles), kgo.DefaultProduceTopic("slow"), kgo.ProducerLinger(0))
	payload := make([]byte, 40<<10)
	_, _ = rand.Read(payload) // incompressible
	active = c.leader()
	for i := 0; throttles.byOther(active) == 0; i++ {
		if i == 200 {
			t.Fatalf("200 records of 40 kB over 3 brokers at 50 kB/s each, never throttled by a broker other than the controller %d", active)
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// throttleCount counts the throttles each broker tells a client.
type throttleCount struct {
	mu     sync.Mutex
	byNode map[int32]int
}

func (c *throttleCount) OnBrokerThrottle(m kgo.BrokerMetadata, _ time.Duration, _ bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byNode == nil {
		c.byNode = map[int32]int{}
	}
	c.byNode[m.NodeID]++
}

// byOther is the number of throttles from nodes other than node.
func (c *throttleCount) byOther(node int32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, k := range c.byNode {
		if id != node {
			n += k
		}
	}
	return n
}
