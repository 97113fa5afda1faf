package controller

import (
	"slices"
	"strconv"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
)

// Leader election and ISR changes the controller makes on its own, as
// KRaft's controller does:
//
//   - A broker that is fenced (its session expired) or shuts down leaves
//     the ISR of every partition that has another in-sync member
//     (partition epoch +1); the partitions it led get the first replica
//     (in replica order) of the remaining ISR as leader (leader epoch
//     +1). Only in-sync replicas have every committed record, so only
//     they may lead.
//   - If it was the last in-sync member it stays in the ISR (it has the
//     committed data) and the partition has no leader (-1) until it
//     comes back, unless unclean.leader.election.enable resolves to true
//     for the topic: then the first live replica leads with ISR = [it],
//     and records the old ISR had beyond its log are lost (logged as a
//     WARN naming the partition).
//   - A broker that is unfenced or registers leads the leaderless
//     partitions it is in the ISR of (the ISR keeps only live members);
//     with unclean election enabled it also takes leaderless partitions
//     whose whole ISR is fenced, if it is a replica.

// brokersLeaving returns the partition changes for nodes being fenced or
// shutting down. c.mu held.
func (c *Controller) brokersLeaving(img *metadata.Image, nodes []int32) []metadata.Record {
	gone := func(id int32) bool { return slices.Contains(nodes, id) }
	var recs []metadata.Record
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		if !gone(p.Leader) && !slices.ContainsFunc(p.ISR, gone) {
			return
		}
		var isr []int32
		for _, r := range p.ISR {
			if !gone(r) && usable(img, r) {
				isr = append(isr, r)
			}
		}
		if len(isr) > 0 {
			leader := p.Leader
			if leader < 0 || gone(leader) || !slices.Contains(isr, leader) {
				leader = firstIn(p.Replicas, isr)
			}
			recs = append(recs, partitionChange(t, i, p, leader, isr))
			return
		}
		// No in-sync replica stays.
		if c.uncleanElection(img, t.Name) {
			if r := c.electUnclean(img, t, i, p, func(id int32) bool { return !gone(id) && usable(img, id) }); r != nil {
				recs = append(recs, r)
				return
			}
		}
		if p.Leader >= 0 {
			recs = append(recs, partitionChange(t, i, p, -1, p.ISR))
		}
	})
	return recs
}

// leadersGained returns partition changes giving node the leadership of
// the leaderless partitions it is an in-sync replica of (or, with unclean
// election enabled, a replica of whose ISR is all fenced). The broker is
// becoming live; img may still show it fenced. c.mu held.
func (c *Controller) leadersGained(img *metadata.Image, node int32) []metadata.Record {
	live := func(id int32) bool { return id == node || usable(img, id) }
	var recs []metadata.Record
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		if p.Leader >= 0 || !slices.Contains(p.Replicas, node) {
			return
		}
		if slices.Contains(p.ISR, node) {
			var isr []int32
			for _, r := range p.ISR {
				if live(r) {
					isr = append(isr, r)
				}
			}
			recs = append(recs, partitionChange(t, i, p, firstIn(p.Replicas, isr), isr))
			return
		}
		if slices.ContainsFunc(p.ISR, live) || !c.uncleanElection(img, t.Name) {
			return
		}
		if r := c.electUnclean(img, t, i, p, live); r != nil {
			recs = append(recs, r)
		}
	})
	return recs
}

// electUnclean makes the first replica that is eligible (and not in the
// ISR) the leader with ISR = [it], or returns nil if there is none.
func (c *Controller) electUnclean(img *metadata.Image, t *metadata.Topic, i int, p *metadata.Partition, eligible func(int32) bool) *metadata.PartitionRecord {
	for _, r := range p.Replicas {
		if slices.Contains(p.ISR, r) || !eligible(r) {
			continue
		}
		c.opts.Logger.Warn("unclean leader election: a replica outside the ISR leads; records it did not have are lost",
			"topic", t.Name, "partition", i, "leader", r, "previous_isr", p.ISR, "leader_epoch", p.LeaderEpoch+1)
		return partitionChange(t, i, p, r, []int32{r})
	}
	return nil
}

// partitionChange is a partition's new leader and ISR: the partition
// epoch moves, and the leader epoch too if the leader changes.
func partitionChange(t *metadata.Topic, i int, p *metadata.Partition, leader int32, isr []int32) *metadata.PartitionRecord {
	le := p.LeaderEpoch
	if leader != p.Leader {
		le++
	}
	return &metadata.PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: p.Replicas, ISR: isr,
		Leader: leader, LeaderEpoch: le, PartitionEpoch: p.PartitionEpoch + 1}
}

// firstIn is the first of replicas (the preferred order) that is in set,
// or -1.
func firstIn(replicas, set []int32) int32 {
	for _, r := range replicas {
		if slices.Contains(set, r) {
			return r
		}
	}
	return -1
}

// topicConfig is the effective value of a topic config on this
// controller: the topic's override, then this node's dynamic broker
// config, the cluster-wide dynamic default, the static config and the
// built-in default.
func (c *Controller) topicConfig(img *metadata.Image, topic, key string) string {
	d, ok := config.NewRegistry(config.TopicDefs()).Lookup(key)
	if !ok {
		return ""
	}
	return config.ResolveTopic(d, config.Layers{
		Topic:          img.TopicConfig(topic),
		DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(c.opts.NodeID))}],
		DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
		Static:         c.opts.Static,
	}).Value
}

// uncleanElection reports whether unclean.leader.election.enable is true
// for topic.
func (c *Controller) uncleanElection(img *metadata.Image, topic string) bool {
	v, err := strconv.ParseBool(c.topicConfig(img, topic, "unclean.leader.election.enable"))
	return err == nil && v
}

// brokerConfig is the effective value of a broker key on this controller:
// this node's dynamic config, the cluster-wide dynamic default, the static
// config, the built-in default.
func (c *Controller) brokerConfig(img *metadata.Image, key string) string {
	d, ok := config.NewRegistry(config.BrokerDefs()).Lookup(key)
	if !ok {
		return ""
	}
	return config.ResolveBroker(key, d.Default, config.Layers{
		DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(c.opts.NodeID))}],
		DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
		Static:         c.opts.Static,
	}).Value
}
