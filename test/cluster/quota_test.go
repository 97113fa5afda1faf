package cluster

import (
	"context"
	"testing"
	"time"

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
// the active controller (relayed there) reaches every node's image, and a
// node restarted replays it from the metadata log.
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
}
