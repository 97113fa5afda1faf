package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratalog/strata/internal/metadata"
)

// The ISR of a partition changes in two ways, as in KRaft: its leader asks
// (AlterPartition, KIP-497: shrink when a follower lags, expand when it has
// caught up), or the controller removes a broker that is fenced or shutting
// down (election.go). Every change bumps the partition epoch; a change of
// leader bumps the leader epoch. A leader's request names the epochs it
// saw, so a request built on a state that has moved on is refused rather
// than applied over a newer change. An ISR change that brings every
// adding replica of a reassignment into the ISR completes it
// (reassign.go).

// Errors of AlterPartition.
var (
	// ErrFencedLeaderEpoch: the request comes from a broker that is not
	// (or no longer) the partition's leader, or names an old leader epoch.
	ErrFencedLeaderEpoch = errors.New("fenced leader epoch")
	// ErrInvalidUpdateVersion: the partition epoch named is not the
	// current one (the partition changed since the leader last saw it).
	ErrInvalidUpdateVersion = errors.New("invalid update version")
	// ErrIneligibleReplica: the new ISR adds a broker that is fenced, not
	// registered, or registered with another broker epoch than the
	// leader saw (KIP-841, KIP-903).
	ErrIneligibleReplica = errors.New("ineligible replica")
)

// AlterPartitionRequest is a partition leader's request to change the ISR
// of partitions it leads.
type AlterPartitionRequest struct {
	BrokerID    int32
	BrokerEpoch int64
	Partitions  []AlterPartitionItem
}

// AlterPartitionItem is the change asked for one partition.
type AlterPartitionItem struct {
	// TopicID names the topic; Topic (by name, AlterPartition v0..1) is
	// used when TopicID is zero.
	TopicID        metadata.UUID
	Topic          string
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	NewISR         []int32
	// NewISREpochs, if not nil, has the broker epoch of each NewISR
	// member as the leader knows it (AlterPartition v3, KIP-903); -1
	// skips the check for that member. A member whose registration has
	// another epoch restarted since it fetched and is ineligible.
	NewISREpochs []int64
}

// PartitionState is a partition's leadership and ISR as committed.
type PartitionState struct {
	Leader         int32
	LeaderEpoch    int32
	ISR            []int32
	PartitionEpoch int32
}

// AlterPartitionResult is the outcome for one partition: the state after
// the change (or the current state, when nothing changed), or Err.
type AlterPartitionResult struct {
	TopicID   metadata.UUID
	Topic     string
	Partition int32
	PartitionState
	Err error
}

// AlterPartition validates and commits ISR changes asked by a partition
// leader. The error is for the whole request (Kafka's top-level error
// code): ErrNotController off the active controller, ErrStaleBrokerEpoch
// for a broker epoch that is not the registered one, or the commit's
// failure; otherwise each partition succeeds or fails on its own and the
// successful ones are committed together (the commit bounded by ctx and
// Options.WriteTimeout). Errors per partition: ErrUnknownTopicID or
// ErrUnknownTopic (also for an unknown partition number),
// ErrFencedLeaderEpoch, ErrInvalidUpdateVersion, ErrInvalidRequest (a new
// ISR that is empty, lists a broker twice or outside the replicas, or
// leaves out the leader), ErrIneligibleReplica. A new ISR equal to the
// current one commits nothing and returns the current state. Off the
// active controller every item fails with ErrNotController.
func (c *Controller) AlterPartition(ctx context.Context, req AlterPartitionRequest) ([]AlterPartitionResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return nil, ErrNotController
	}
	img := c.images.Image()
	if b := img.Brokers[req.BrokerID]; b == nil || b.Epoch != req.BrokerEpoch {
		have := int64(-1)
		if b != nil {
			have = b.Epoch
		}
		return nil, fmt.Errorf("%w: AlterPartition from node %d with broker epoch %d, registered with %d", ErrStaleBrokerEpoch, req.BrokerID, req.BrokerEpoch, have)
	}
	out := make([]AlterPartitionResult, len(req.Partitions))
	for i, p := range req.Partitions {
		out[i].TopicID, out[i].Topic, out[i].Partition = p.TopicID, p.Topic, p.Partition
	}
	var recs []metadata.Record
	var changed []int
	type tp struct {
		id metadata.UUID
		p  int32
	}
	seen := map[tp]bool{}
	for i, item := range req.Partitions {
		res := &out[i]
		t, err := lookupTopic(img, item.TopicID, item.Topic)
		if err != nil {
			res.Err = err
			continue
		}
		res.TopicID, res.Topic = t.ID, t.Name
		key := tp{t.ID, item.Partition}
		if seen[key] {
			res.Err = fmt.Errorf("%w: partition %s-%d appears more than once in the request", ErrInvalidRequest, t.Name, item.Partition)
			continue
		}
		seen[key] = true
		rec, state, err := c.planAlterPartition(img, req.BrokerID, t, item)
		res.PartitionState = state
		if err != nil {
			res.Err = err
			continue
		}
		if rec != nil {
			recs = append(recs, rec)
			changed = append(changed, i)
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	if _, err := c.commitCtx(ctx, recs); err != nil {
		return nil, fmt.Errorf("commit metadata: %w", err)
	}
	for _, i := range changed {
		c.opts.Logger.Info("ISR changed", "topic", out[i].Topic, "partition", out[i].Partition,
			"isr", out[i].ISR, "leader", out[i].Leader, "partition_epoch", out[i].PartitionEpoch)
	}
	return out, nil
}

func lookupTopic(img *metadata.Image, id metadata.UUID, name string) (*metadata.Topic, error) {
	if !id.IsZero() {
		if t := img.TopicsByID[id]; t != nil {
			return t, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopicID, id)
	}
	if t := img.Topics[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownTopic, name)
}

func stateOf(p *metadata.Partition) PartitionState {
	return PartitionState{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: p.ISR, PartitionEpoch: p.PartitionEpoch}
}

// planAlterPartition validates one item; it returns the record to commit
// (nil if the ISR does not change) and the resulting state.
func (c *Controller) planAlterPartition(img *metadata.Image, from int32, t *metadata.Topic, item AlterPartitionItem) (*metadata.PartitionRecord, PartitionState, error) {
	if item.Partition < 0 || int(item.Partition) >= len(t.Partitions) {
		return nil, PartitionState{}, fmt.Errorf("%w: topic %q has no partition %d", ErrUnknownTopic, t.Name, item.Partition)
	}
	p := t.Partitions[item.Partition]
	name := fmt.Sprintf("%s-%d", t.Name, item.Partition)
	switch {
	case p.Leader != from:
		return nil, PartitionState{}, fmt.Errorf("%w: node %d is not the leader of %s (the leader is %d, leader epoch %d)", ErrFencedLeaderEpoch, from, name, p.Leader, p.LeaderEpoch)
	case item.LeaderEpoch != p.LeaderEpoch:
		return nil, PartitionState{}, fmt.Errorf("%w: %s: leader epoch %d, the current one is %d", ErrFencedLeaderEpoch, name, item.LeaderEpoch, p.LeaderEpoch)
	case item.PartitionEpoch != p.PartitionEpoch:
		return nil, PartitionState{}, fmt.Errorf("%w: %s: partition epoch %d, the current one is %d", ErrInvalidUpdateVersion, name, item.PartitionEpoch, p.PartitionEpoch)
	}
	if item.NewISREpochs != nil && len(item.NewISREpochs) != len(item.NewISR) {
		return nil, PartitionState{}, fmt.Errorf("%w: %s: %d broker epochs for %d ISR members", ErrInvalidRequest, name, len(item.NewISREpochs), len(item.NewISR))
	}
	if len(item.NewISR) == 0 {
		return nil, PartitionState{}, fmt.Errorf("%w: %s: the new ISR is empty", ErrInvalidRequest, name)
	}
	for i, r := range item.NewISR {
		if slices.Contains(item.NewISR[:i], r) {
			return nil, PartitionState{}, fmt.Errorf("%w: %s: the new ISR %v lists broker %d twice", ErrInvalidRequest, name, item.NewISR, r)
		}
		if !slices.Contains(p.Replicas, r) {
			return nil, PartitionState{}, fmt.Errorf("%w: %s: the new ISR %v has broker %d, which is not a replica (replicas %v)", ErrInvalidRequest, name, item.NewISR, r, p.Replicas)
		}
	}
	if !slices.Contains(item.NewISR, p.Leader) {
		return nil, PartitionState{}, fmt.Errorf("%w: %s: the new ISR %v leaves out the leader %d", ErrInvalidRequest, name, item.NewISR, p.Leader)
	}
	for i, r := range item.NewISR {
		if slices.Contains(p.ISR, r) {
			continue // only members added must be eligible
		}
		b := img.Brokers[r]
		switch {
		case b == nil:
			return nil, PartitionState{}, fmt.Errorf("%w: %s: broker %d is not registered", ErrIneligibleReplica, name, r)
		case b.Fenced:
			return nil, PartitionState{}, fmt.Errorf("%w: %s: broker %d is fenced", ErrIneligibleReplica, name, r)
		case !b.DirOnline(p.DirectoryOf(r)):
			return nil, PartitionState{}, fmt.Errorf("%w: %s: broker %d has the replica's log directory offline", ErrIneligibleReplica, name, r)
		case item.NewISREpochs != nil && item.NewISREpochs[i] >= 0 && item.NewISREpochs[i] != b.Epoch:
			return nil, PartitionState{}, fmt.Errorf("%w: %s: broker %d has broker epoch %d, the leader saw %d", ErrIneligibleReplica, name, r, b.Epoch, item.NewISREpochs[i])
		}
	}
	if sameMembers(item.NewISR, p.ISR) {
		return nil, stateOf(p), nil
	}
	leader, isr := p.Leader, slices.Clone(item.NewISR)
	if !dirOnline(img, p, leader) {
		// The leader's log directory is offline and it kept the
		// leadership as the last in-sync replica (logdirs.go): the
		// first live replica joining the ISR takes over.
		live := filter(isr, func(id int32) bool { return id != leader && replicaLive(img, p, id) })
		if len(live) > 0 {
			leader, isr = firstIn(p.Replicas, live), filter(isr, func(id int32) bool { return id != p.Leader })
			c.opts.Logger.Info("leadership moves off a leader whose log directory is offline", "topic", t.Name, "partition", item.Partition, "from", p.Leader, "to", leader)
		}
	}
	rec := c.change(img, t, int(item.Partition), p, leader, isr, nil)
	if c.completeReassignment(img, t, p, rec) {
		c.opts.Logger.Info("partition reassignment completed", "topic", t.Name, "partition", item.Partition,
			"replicas", rec.Replicas, "isr", rec.ISR, "leader", rec.Leader, "leader_epoch", rec.LeaderEpoch)
	}
	return rec, PartitionState{Leader: rec.Leader, LeaderEpoch: rec.LeaderEpoch, ISR: rec.ISR, PartitionEpoch: rec.PartitionEpoch}, nil
}

// sameMembers reports whether a and b hold the same brokers (in any order).
func sameMembers(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
