package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/stratalog/strata/internal/metadata"
)

// Partition reassignment, as KRaft implements KIP-455:
//
//   - AlterPartitionReassignments with target replicas T for a partition
//     whose replicas are C sets Replicas = T followed by C − T,
//     AddingReplicas = T − C, RemovingReplicas = C − T (both sorted, as
//     Kafka), partition epoch +1. The ISR and the leader stay. Every
//     broker named opens its replica (replication.Manager); the new ones
//     follow the leader, which adds them to the ISR with AlterPartition
//     once they have caught up. C is the current Replicas: a reassignment
//     during another one starts from the union, as in Kafka.
//   - It completes when every replica of T, so every adding one, is in
//     the ISR (Kafka's PartitionReassignmentReplicas rule; checked at
//     every AlterPartition, at once when the reassignment starts, and by
//     the active controller's periodic CompleteReassignments): Replicas =
//     T, ISR = ISR ∩ T, ELR ∩ T, adding and removing cleared. A leader
//     outside T gives way to the first replica of T that is an unfenced
//     in-sync replica (leader epoch +1; -1 if there is none). The brokers
//     of removed replicas delete their logs when the image no longer
//     lists them. A shrink whose target is in sync completes at once.
//   - Cancelling (nil target) reverts to C minus the adding replicas,
//     which also leave the ISR and ELR; a leader among them gives way to
//     the first unfenced in-sync replica. If no in-sync replica would stay
//     the cancel needs an unclean election (INVALID_REPLICA_ASSIGNMENT
//     unless unclean.leader.election.enable).

// ErrNoReassignmentInProgress: a cancel for a partition that is not being
// reassigned.
var ErrNoReassignmentInProgress = errors.New("no reassignment in progress")

// Reassignment asks to move one partition to Replicas, or (nil) to cancel
// its reassignment.
type Reassignment struct {
	Topic     string
	Partition int32
	Replicas  []int32
}

// ReassignmentResult is the outcome for one partition.
type ReassignmentResult struct {
	Topic     string
	Partition int32
	Err       error
}

// OngoingReassignment is a partition being reassigned, as
// ListPartitionReassignments reports it.
type OngoingReassignment struct {
	Topic            string
	Partition        int32
	Replicas         []int32
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// AlterPartitionReassignments starts, changes or cancels reassignments.
// allowRFChange false (AlterPartitionReassignments v1, KIP-860) refuses a
// target whose size differs from the partition's replica count (that of
// the target of a reassignment in progress, as Kafka) with
// ErrInvalidReplicationFactor. Per partition: ErrUnknownTopic (also an
// unknown partition), ErrInvalidReplicaAssignment (an empty target, a
// broker named twice or not registered, a cancel that needs an unclean
// election), ErrNoReassignmentInProgress, ErrInvalidRequest (a partition
// named more than once: every occurrence fails). The accepted ones commit
// together; the error is for the whole request (ErrNotController, the
// commit).
func (c *Controller) AlterPartitionReassignments(ctx context.Context, reqs []Reassignment, allowRFChange bool) ([]ReassignmentResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return nil, ErrNotController
	}
	img := c.images.Image()
	out := make([]ReassignmentResult, len(reqs))
	var recs []metadata.Record
	type tp struct {
		topic string
		p     int32
	}
	count := map[tp]int{}
	for _, r := range reqs {
		count[tp{r.Topic, r.Partition}]++
	}
	var completed []string
	for i, r := range reqs {
		out[i] = ReassignmentResult{Topic: r.Topic, Partition: r.Partition}
		if count[tp{r.Topic, r.Partition}] > 1 {
			out[i].Err = fmt.Errorf("%w: partition %s-%d appears more than once in the request", ErrInvalidRequest, r.Topic, r.Partition)
			continue
		}
		t := img.Topics[r.Topic]
		if t == nil || r.Partition < 0 || int(r.Partition) >= len(t.Partitions) {
			out[i].Err = fmt.Errorf("%w: %s-%d", ErrUnknownTopic, r.Topic, r.Partition)
			continue
		}
		var rec *metadata.PartitionRecord
		var err error
		if r.Replicas == nil {
			rec, err = c.planCancelReassignment(img, t, int(r.Partition))
		} else {
			rec, err = c.planReassignment(img, t, int(r.Partition), r.Replicas, allowRFChange)
		}
		if err != nil {
			out[i].Err = err
			continue
		}
		if rec != nil {
			recs = append(recs, rec)
			if r.Replicas != nil && len(rec.AddingReplicas) == 0 && len(rec.RemovingReplicas) == 0 {
				completed = append(completed, fmt.Sprintf("%s-%d", r.Topic, r.Partition))
			}
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	if _, err := c.commitCtx(ctx, recs); err != nil {
		return nil, fmt.Errorf("commit metadata: %w", err)
	}
	for i, r := range reqs {
		if out[i].Err == nil {
			c.opts.Logger.Info("partition reassignment", "topic", r.Topic, "partition", r.Partition, "target", r.Replicas, "cancel", r.Replicas == nil)
		}
	}
	if len(completed) > 0 {
		c.opts.Logger.Info("partition reassignments completed at once", "partitions", completed)
	}
	return out, nil
}

// planReassignment validates a target and returns the record starting
// (and, when nothing is to be added, completing) the reassignment, or nil
// when nothing changes.
func (c *Controller) planReassignment(img *metadata.Image, t *metadata.Topic, i int, target []int32, allowRFChange bool) (*metadata.PartitionRecord, error) {
	p := t.Partitions[i]
	name := fmt.Sprintf("%s-%d", t.Name, i)
	if len(target) == 0 {
		return nil, fmt.Errorf("%w: %s: the target replica list is empty", ErrInvalidReplicaAssignment, name)
	}
	for j, r := range target {
		if slices.Contains(target[:j], r) {
			return nil, fmt.Errorf("%w: %s: the target %v lists broker %d twice", ErrInvalidReplicaAssignment, name, target, r)
		}
		if img.Brokers[r] == nil {
			return nil, fmt.Errorf("%w: %s: the target %v has broker %d, which is not registered", ErrInvalidReplicaAssignment, name, target, r)
		}
	}
	if n := len(p.TargetReplicas()); !allowRFChange && len(target) != n {
		return nil, fmt.Errorf("%w: %s: the replication factor is changed from %d to %d, and the request does not allow it",
			ErrInvalidReplicationFactor, name, n, len(target))
	}
	// As Kafka: adding and removing sorted, the removing replicas after
	// the target.
	adding := without(target, p.Replicas)
	removing := without(p.Replicas, target)
	slices.Sort(adding)
	slices.Sort(removing)
	replicas := append(slices.Clone(target), removing...)
	if slices.Equal(replicas, p.Replicas) && slices.Equal(adding, p.AddingReplicas) && slices.Equal(removing, p.RemovingReplicas) {
		return nil, nil
	}
	rec := &metadata.PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: replicas, ISR: p.ISR,
		Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch + 1, ELR: p.ELR,
		AddingReplicas: adding, RemovingReplicas: removing, Directories: directoriesFor(img, replicas, p)}
	c.completeReassignment(img, t, p, rec)
	return rec, nil
}

// planCancelReassignment returns the record reverting a reassignment.
func (c *Controller) planCancelReassignment(img *metadata.Image, t *metadata.Topic, i int) (*metadata.PartitionRecord, error) {
	p := t.Partitions[i]
	name := fmt.Sprintf("%s-%d", t.Name, i)
	if !p.Reassigning() {
		return nil, fmt.Errorf("%w: %s", ErrNoReassignmentInProgress, name)
	}
	replicas := without(p.Replicas, p.AddingReplicas)
	isr := without(p.ISR, p.AddingReplicas)
	elr := without(p.ELR, p.AddingReplicas)
	leader := p.Leader
	if len(isr) == 0 {
		// Only adding replicas were in sync (Kafka's revert needs an
		// unclean election then).
		if !c.uncleanElection(img, t.Name) {
			return nil, fmt.Errorf("%w: %s: reverting to %v would need an unclean leader election (the ISR %v has only adding replicas)",
				ErrInvalidReplicaAssignment, name, replicas, p.ISR)
		}
		leader = firstIn(replicas, filter(replicas, func(id int32) bool { return replicaLive(img, p, id) }))
		if leader < 0 {
			return nil, fmt.Errorf("%w: %s: reverting to %v would need an unclean leader election and none of them is live",
				ErrInvalidReplicaAssignment, name, replicas)
		}
		c.opts.Logger.Warn("unclean leader election to cancel a reassignment: records only the adding replicas had are lost",
			"topic", t.Name, "partition", i, "leader", leader, "previous_isr", p.ISR)
		isr, elr = []int32{leader}, nil
	} else if !slices.Contains(isr, leader) {
		leader = firstIn(replicas, filter(isr, func(id int32) bool { return replicaLive(img, p, id) }))
	}
	le := p.LeaderEpoch
	if leader != p.Leader {
		le++
	}
	if len(isr) >= c.minISR(img, t.Name) {
		elr = nil
	}
	return &metadata.PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: replicas, ISR: isr,
		Leader: leader, LeaderEpoch: le, PartitionEpoch: p.PartitionEpoch + 1, ELR: elr, Directories: directoriesFor(img, replicas, p)}, nil
}

// completeReassignment finishes the reassignment rec (the next state of
// p) carries if every target replica (so every adding one) is in its ISR,
// and reports whether it did. It changes rec in place; its
// epochs stay relative to p.
func (c *Controller) completeReassignment(img *metadata.Image, t *metadata.Topic, p *metadata.Partition, rec *metadata.PartitionRecord) bool {
	if len(rec.AddingReplicas) == 0 && len(rec.RemovingReplicas) == 0 {
		return false
	}
	target := without(rec.Replicas, rec.RemovingReplicas)
	isr := without(rec.ISR, rec.RemovingReplicas)
	if len(isr) == 0 {
		return false
	}
	for _, r := range target {
		if !slices.Contains(isr, r) {
			return false // Kafka's rule: the whole target is in sync
		}
	}
	rec.Replicas, rec.ISR = target, isr
	rec.Directories = directoriesFor(img, target, p)
	rec.ELR = without(rec.ELR, rec.RemovingReplicas)
	if len(isr) >= c.minISR(img, t.Name) {
		rec.ELR = nil
	}
	rec.AddingReplicas, rec.RemovingReplicas = nil, nil
	if !slices.Contains(target, rec.Leader) {
		// The leader is being removed (or there is none): the first
		// target replica that is a live in-sync replica leads.
		rec.Leader = firstIn(target, filter(isr, func(id int32) bool { return replicaLive(img, p, id) }))
	}
	rec.LeaderEpoch = p.LeaderEpoch
	if rec.Leader != p.Leader {
		rec.LeaderEpoch++
	}
	return true
}

// CompleteReassignments completes every reassignment whose adding
// replicas are all in the ISR (AlterPartition completes them as the ISR
// grows; this catches those that became complete otherwise, and a new
// active controller's backlog). Only the active controller does anything;
// the server calls it periodically.
func (c *Controller) CompleteReassignments() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return nil
	}
	img := c.images.Image()
	var recs []metadata.Record
	var done []string
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		if !p.Reassigning() {
			return
		}
		rec := &metadata.PartitionRecord{TopicID: t.ID, Partition: int32(i), Replicas: p.Replicas, ISR: p.ISR,
			Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch + 1, ELR: p.ELR,
			AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas, Directories: p.Directories}
		if c.completeReassignment(img, t, p, rec) {
			recs = append(recs, rec)
			done = append(done, fmt.Sprintf("%s-%d", t.Name, i))
		}
	})
	if len(recs) == 0 {
		return nil
	}
	if _, err := c.commit(recs); err != nil {
		return fmt.Errorf("complete reassignments: %w", err)
	}
	c.opts.Logger.Info("partition reassignments completed", "partitions", done)
	return nil
}

// ListPartitionReassignments lists the reassignments in progress: of the
// named partitions (topic -> partition numbers; unknown ones and those
// not being reassigned are left out, as Kafka does), or of every
// partition when partitions is nil. The order is by topic, then
// partition as named.
func (c *Controller) ListPartitionReassignments(partitions map[string][]int32) []OngoingReassignment {
	img := c.images.Image()
	var out []OngoingReassignment
	add := func(t *metadata.Topic, i int, p *metadata.Partition) {
		if p.Reassigning() {
			out = append(out, OngoingReassignment{Topic: t.Name, Partition: int32(i), Replicas: p.Replicas,
				AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas})
		}
	}
	if partitions == nil {
		forEachPartition(img, add)
		return out
	}
	for _, name := range sortedKeys(partitions) {
		t := img.Topics[name]
		if t == nil {
			continue
		}
		seen := map[int32]bool{}
		for _, i := range partitions[name] {
			if seen[i] || i < 0 || int(i) >= len(t.Partitions) {
				continue
			}
			seen[i] = true
			add(t, int(i), t.Partitions[i])
		}
	}
	return out
}

// without returns the members of ids not in drop (nil if none).
func without[T comparable](ids, drop []T) []T {
	var out []T
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}
