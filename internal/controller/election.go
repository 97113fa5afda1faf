package controller

import (
	"fmt"
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
//   - Eligible leader replicas (ELR, KIP-966; see change) come next: when
//     no in-sync replica is live, a live ELR member leads with ISR = [it].
//   - A broker that is unfenced or registers leads the leaderless
//     partitions it is in the ISR of (the ISR keeps only live members), or
//     in the ELR of when no in-sync replica is live; with unclean election
//     enabled it also takes leaderless partitions whose whole ISR is
//     fenced, if it is a replica.
//   - A broker that registers after an unclean shutdown leaves ISRs and
//     ELRs (uncleanRestart): the "last replica standing" does not lead
//     again when another replica is known to have every committed record.

// brokersLeaving returns the partition changes for nodes being fenced or
// shutting down. c.mu held.
func (c *Controller) brokersLeaving(img *metadata.Image, nodes []int32) []metadata.Record {
	return c.replicasLeaving(img, func(_ *metadata.Partition, id int32) bool { return slices.Contains(nodes, id) }, false, "brokers_leaving", nodes)
}

// replicasLeaving returns the partition changes for replicas that can no
// longer lead or stay in sync: those for which leaving(p, id) is true
// (their broker is fenced or shutting down, or their log directory went
// offline). With keepLast, a leaving leader that is the last live
// in-sync replica (no eligible leader replica either, and no unclean
// election) keeps the leadership instead of leaving the partition
// leaderless: its broker is alive and answers KAFKA_STORAGE_ERROR, which
// clients retry, and recovers in place (logdirs.go). why and who name the
// cause in the log line. c.mu held.
func (c *Controller) replicasLeaving(img *metadata.Image, leaving func(p *metadata.Partition, id int32) bool, keepLast bool, why string, who any) []metadata.Record {
	var recs []metadata.Record
	var offline, kept []string
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		gone := func(id int32) bool { return leaving(p, id) }
		live := func(id int32) bool { return !gone(id) && replicaLive(img, p, id) }
		if !gone(p.Leader) && !slices.ContainsFunc(p.ISR, gone) {
			return
		}
		isr := filter(p.ISR, live)
		if len(isr) > 0 {
			leader := p.Leader
			if leader < 0 || gone(leader) || !slices.Contains(isr, leader) {
				leader = firstIn(p.Replicas, isr)
			}
			recs = append(recs, c.change(img, t, i, p, leader, isr, nil))
			return
		}
		// No in-sync replica stays. An eligible leader replica has every
		// committed record: it leads alone (KIP-966).
		if e := firstIn(p.Replicas, filter(p.ELR, live)); e >= 0 {
			c.opts.Logger.Info("leader elected from the eligible leader replicas", "topic", t.Name, "partition", i, "leader", e, "previous_isr", p.ISR)
			recs = append(recs, c.change(img, t, i, p, e, []int32{e}, nil))
			return
		}
		if c.uncleanElection(img, t.Name) {
			if r := c.electUnclean(img, t, i, p, live); r != nil {
				recs = append(recs, r)
				return
			}
		}
		if keepLast && p.Leader >= 0 && gone(p.Leader) {
			kept = append(kept, fmt.Sprintf("%s-%d", t.Name, i))
			return
		}
		if p.Leader >= 0 {
			offline = append(offline, fmt.Sprintf("%s-%d", t.Name, i))
			recs = append(recs, c.change(img, t, i, p, -1, p.ISR, nil))
		}
	})
	if len(kept) > 0 {
		c.opts.Logger.Warn("partitions keep their leader on an offline log directory: no other live in-sync replica (writes answer KAFKA_STORAGE_ERROR until it recovers or another replica catches up)",
			why, who, "count", len(kept), "partitions", kept[:min(len(kept), 10)])
	}
	if len(offline) > 0 {
		// One line for all of them: a broker leaving may take thousands.
		shown := offline
		if len(shown) > 10 {
			shown = shown[:10]
		}
		c.opts.Logger.Warn("partitions offline: no live in-sync replica to lead them (they return when one does; unclean.leader.election.enable would elect an out-of-sync one, losing records)",
			why, who, "count", len(offline), "partitions", shown)
	}
	return recs
}

// leadersGained returns partition changes giving node the leadership of
// the leaderless partitions it is an in-sync replica of (the ISR keeps
// only live members), or, when no in-sync replica is live, an eligible
// leader replica of, or (with unclean election enabled) a replica of.
// The broker is becoming live; img may still show it fenced. c.mu held.
func (c *Controller) leadersGained(img *metadata.Image, node int32) []metadata.Record {
	var recs []metadata.Record
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		if p.Leader >= 0 || !slices.Contains(p.Replicas, node) || !dirOnline(img, p, node) {
			return
		}
		live := func(id int32) bool { return (id == node) || replicaLive(img, p, id) }
		if slices.Contains(p.ISR, node) {
			isr := filter(p.ISR, live)
			recs = append(recs, c.change(img, t, i, p, firstIn(p.Replicas, isr), isr, nil))
			return
		}
		if slices.ContainsFunc(p.ISR, live) {
			return
		}
		if slices.Contains(p.ELR, node) {
			c.opts.Logger.Info("leader elected from the eligible leader replicas", "topic", t.Name, "partition", i, "leader", node, "previous_isr", p.ISR)
			recs = append(recs, c.change(img, t, i, p, node, []int32{node}, nil))
			return
		}
		if !c.uncleanElection(img, t.Name) {
			return
		}
		if r := c.electUnclean(img, t, i, p, live); r != nil {
			recs = append(recs, r)
		}
	})
	return recs
}

// uncleanRestart returns the partition changes for a broker that
// registers again after an unclean shutdown (KIP-966: its
// PreviousBrokerEpoch is not its registered epoch). It may have lost
// records it had acknowledged (the page cache, with log.fsync=interval),
// so it leaves every ISR and ELR; it rejoins ISRs when a leader sees it
// caught up. Where it was the last in-sync replica ("last replica
// standing"), an eligible leader replica, which has every committed
// record, takes its place in the ISR (and leads, if live; else the
// partition waits for it). Only without one does the restarted broker
// stay and lead again, possibly without records it acknowledged, as in
// Kafka without ELR; that is logged as a WARN. c.mu held.
func (c *Controller) uncleanRestart(img *metadata.Image, node int32) []metadata.Record {
	isNode := func(id int32) bool { return id == node }
	notNode := func(id int32) bool { return id != node }
	var recs []metadata.Record
	// One line for each outcome, not one per partition: a single node
	// with 100,000 partitions of one replica each would log 100,000.
	var stays, replaced partitionList
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		inISR := slices.Contains(p.ISR, node)
		if !inISR && !slices.Contains(p.ELR, node) {
			return
		}
		if !inISR {
			recs = append(recs, c.change(img, t, i, p, p.Leader, p.ISR, isNode))
			return
		}
		if isr := filter(p.ISR, notNode); len(isr) > 0 {
			leader := p.Leader
			if leader < 0 || leader == node {
				leader = firstIn(p.Replicas, filter(isr, func(id int32) bool { return replicaLive(img, p, id) }))
			}
			recs = append(recs, c.change(img, t, i, p, leader, isr, isNode))
			return
		}
		elr := filter(p.ELR, notNode)
		if len(elr) == 0 {
			stays.add(t.Name, i)
			return
		}
		e := firstIn(p.Replicas, filter(elr, func(id int32) bool { return replicaLive(img, p, id) }))
		leader := e
		if e < 0 {
			e, leader = firstIn(p.Replicas, elr), -1
		}
		replaced.add(t.Name, i)
		recs = append(recs, c.change(img, t, i, p, leader, []int32{e}, isNode))
	})
	if stays.n > 0 {
		c.opts.Logger.Warn("a broker back from an unclean shutdown was the last in-sync replica of partitions no other replica is known to have every committed record of: it leads them again, and records it acknowledged but lost are gone",
			"node", node, "partitions", stays.n, "first", stays.sample)
	}
	if replaced.n > 0 {
		c.opts.Logger.Info("a broker back from an unclean shutdown was the last in-sync replica of partitions: an eligible leader replica replaces it in their ISR",
			"node", node, "partitions", replaced.n, "first", replaced.sample)
	}
	return recs
}

// partitionList counts partitions and keeps the first few names, for a
// log line about many.
type partitionList struct {
	n      int
	sample []string
}

func (l *partitionList) add(topic string, partition int) {
	l.n++
	if len(l.sample) < 10 {
		l.sample = append(l.sample, topic+"-"+strconv.Itoa(partition))
	}
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
		return c.change(img, t, i, p, r, []int32{r}, func(int32) bool { return true })
	}
	return nil
}

// change is a partition's new leader and ISR: the partition epoch
// moves, and the leader epoch too if the leader changes. A reassignment
// in progress (reassign.go) carries over. The ELR follows
// KIP-966: empty while the ISR has at least min.insync.replicas members;
// below that, the members leaving the ISR join it (with acks=all nothing
// is committed while the ISR is that small, so they hold every committed
// record), members joining the ISR leave it, and so do those drop names
// (a broker back from an unclean shutdown; everyone, after an unclean
// election).
func (c *Controller) change(img *metadata.Image, t *metadata.Topic, i int, p *metadata.Partition, leader int32, isr []int32, drop func(int32) bool) *metadata.PartitionRecord {
	le := p.LeaderEpoch
	if leader != p.Leader {
		le++
	}
	var elr []int32
	if len(isr) < c.minISR(img, t.Name) {
		for _, r := range p.Replicas {
			was := slices.Contains(p.ELR, r) || slices.Contains(p.ISR, r)
			if was && !slices.Contains(isr, r) && (drop == nil || !drop(r)) {
				elr = append(elr, r)
			}
		}
	}
	return &metadata.PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: p.Replicas, ISR: isr,
		Leader: leader, LeaderEpoch: le, PartitionEpoch: p.PartitionEpoch + 1, ELR: elr,
		AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas, Directories: p.Directories}
}

// filter returns the members of ids for which keep is true (nil if none).
func filter(ids []int32, keep func(int32) bool) []int32 {
	var out []int32
	for _, id := range ids {
		if keep(id) {
			out = append(out, id)
		}
	}
	return out
}

// minISR is min.insync.replicas for topic (1 if unreadable).
func (c *Controller) minISR(img *metadata.Image, topic string) int {
	n, err := strconv.Atoi(c.topicConfig(img, topic, "min.insync.replicas"))
	if err != nil || n < 1 {
		return 1
	}
	return n
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

// Read-only registries for resolving configs during elections.
var (
	topicDefs  = config.NewRegistry(config.TopicDefs())
	brokerDefs = config.NewRegistry(config.BrokerDefs())
)

// topicConfig is the effective value of a topic config on this
// controller: the topic's override, then this node's dynamic broker
// config, the cluster-wide dynamic default, the static config and the
// built-in default.
func (c *Controller) topicConfig(img *metadata.Image, topic, key string) string {
	d, ok := topicDefs.Lookup(key)
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
	d, ok := brokerDefs.Lookup(key)
	if !ok {
		return ""
	}
	return config.ResolveBroker(key, d.Default, config.Layers{
		DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(c.opts.NodeID))}],
		DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
		Static:         c.opts.Static,
	}).Value
}
