package server

import (
	"context"
	"fmt"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/replication"
)

// isrChannel carries a partition leader's ISR changes to the active
// controller (replication.Controller over the broker-to-controller
// channel), as this broker's current registration.
type isrChannel struct{ s *Server }

func (c isrChannel) AlterPartition(ctx context.Context, ch replication.ISRChange) (replication.ISRChange, error) {
	epoch := c.s.life.epoch.Load()
	if epoch < 0 {
		return ch, fmt.Errorf("%w: this broker is not registered yet", controller.ErrBrokerNotRegistered)
	}
	res, err := c.s.cc.AlterPartition(ctx, controller.AlterPartitionRequest{
		BrokerID:    c.s.cfg.NodeID(),
		BrokerEpoch: epoch,
		Partitions: []controller.AlterPartitionItem{{TopicID: ch.TopicID, Topic: ch.Topic, Partition: ch.Partition,
			LeaderEpoch: ch.LeaderEpoch, PartitionEpoch: ch.PartitionEpoch, NewISR: ch.ISR}},
	})
	if err != nil {
		return ch, err
	}
	if len(res) != 1 {
		return ch, fmt.Errorf("AlterPartition answered %d partitions for one", len(res))
	}
	r := res[0]
	if r.Err != nil {
		return ch, r.Err
	}
	ch.LeaderEpoch, ch.PartitionEpoch, ch.ISR = r.LeaderEpoch, r.PartitionEpoch, r.ISR
	return ch, nil
}
