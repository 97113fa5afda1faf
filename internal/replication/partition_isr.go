package replication

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The leader's side of replication: followers' progress, the high
// watermark, acks=all waits, and ISR changes through the controller.

// WaitReplicated waits until the high watermark passes offset: every
// in-sync replica has the record (acks=all). It fails if this replica stops
// leading or ctx ends first, and with ErrNotEnoughReplicasAfterAppend if the
// ISR shrank below min.insync.replicas meanwhile.
func (p *Partition) WaitReplicated(ctx context.Context, offset int64) error {
	for {
		ch := p.Wait()
		if p.hw.Load() > offset {
			break
		}
		if !p.leader.Load() {
			return fmt.Errorf("%w: leadership moved before offset %d was replicated", ErrNotLeader, offset)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: offset %d not replicated to the ISR %v in time (high watermark %d)", ErrReplicationTimeout, offset, p.ISR(), p.hw.Load())
		}
	}
	minISR := p.Config().MinInsyncReplicas
	if _, n := p.sizes(); n < int(minISR) {
		return fmt.Errorf("%w: %d in-sync replicas, min.insync.replicas is %d", ErrNotEnoughReplicasAfterAppend, n, minISR)
	}
	return nil
}

// setHWLocked moves the high watermark forward and wakes waiters; mu held.
// The manager checkpoints it periodically and at close.
func (p *Partition) setHWLocked(hw int64) bool {
	if hw <= p.hw.Load() {
		return false
	}
	p.hw.Store(hw)
	// Completed transactions below the new high watermark stop holding
	// the last stable offset back (waiters woken below see it move).
	p.log.OnHighWatermark(hw)
	p.wakeLocked()
	return true
}

// maybeAdvanceLocked recomputes the leader's high watermark; mu held.
func (p *Partition) maybeAdvanceLocked() {
	if !p.leader.Load() {
		return
	}
	// KIP-966: below min.insync.replicas the high watermark stands still,
	// so that the eligible leader replicas (which left the ISR while it was
	// this small) hold everything below it. The committed ISR decides, as
	// in Kafka: a pending expansion is not in the controller's ISR yet, and
	// the controller may still elect an eligible leader replica that lacks
	// what the pending member has (the chaos harness found exactly that:
	// records read by consumers, then truncated by an ELR leader).
	if len(p.st.isr) < int(p.Config().MinInsyncReplicas) {
		return
	}
	isr := p.maximalISRLocked()
	hw := p.log.LogEndOffset()
	if p.env.fsyncAlways {
		hw = p.log.DurableOffset()
	}
	for _, id := range isr {
		if id == p.env.nodeID {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			return // an ISR member has not fetched in this epoch yet
		}
		hw = min(hw, f.leo)
	}
	p.setHWLocked(hw)
}

// maximalISRLocked is the committed ISR, with the members of a pending
// expansion added; mu held.
func (p *Partition) maximalISRLocked() []int32 {
	if p.pending == nil {
		return p.st.isr
	}
	out := slices.Clone(p.st.isr)
	for _, id := range p.pending {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// followerFetched records a follower's fetch at offset (its log end), and
// moves the high watermark or proposes adding it to the ISR.
func (p *Partition) followerFetched(id int32, offset int64) {
	now := p.env.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() || !slices.Contains(p.st.replicas, id) {
		return
	}
	f := p.followers[id]
	if f == nil {
		f = &follower{leo: -1, prevLeaderLEO: -1}
		p.followers[id] = f
	}
	leo := p.log.LogEndOffset()
	// Kafka's caught-up rule: a fetch at the leader's log end is caught up
	// now; one at the log end the leader had at the previous fetch was
	// caught up then.
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case f.prevLeaderLEO >= 0 && offset >= f.prevLeaderLEO && f.prevFetch.After(f.lastCaughtUp):
		f.lastCaughtUp = f.prevFetch
	}
	f.prevLeaderLEO, f.prevFetch = leo, now
	f.leo, f.lastFetch = offset, now
	p.maybeAdvanceLocked()
	if !slices.Contains(p.st.isr, id) && p.pending == nil && !now.Before(p.retryAt) &&
		offset >= p.hw.Load() && offset >= p.epochStart {
		p.proposeLocked(append(slices.Clone(p.st.isr), id), "caught up")
	}
}

// maybeShrinkISR drops followers that have not caught up for
// replica.lag.time.max.ms from the ISR (through the controller). The
// manager calls it periodically.
func (p *Partition) maybeShrinkISR() {
	now := p.env.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.leader.Load() || p.pending != nil || now.Before(p.retryAt) {
		return
	}
	var keep, out []int32
	for _, id := range p.st.isr {
		f := p.followers[id]
		if id != p.env.nodeID && (f == nil || now.Sub(f.lastCaughtUp) > p.env.lagMax) {
			out = append(out, id)
			continue
		}
		keep = append(keep, id)
	}
	if len(out) == 0 {
		return
	}
	p.proposeLocked(keep, fmt.Sprintf("replicas %v not caught up within %s", out, p.env.lagMax))
}

// proposeLocked sends an ISR change to the controller in the background;
// mu held. One change is in flight at a time.
func (p *Partition) proposeLocked(isr []int32, why string) {
	if p.env.ctrl == nil {
		return
	}
	slices.Sort(isr)
	p.pending = isr
	req := ISRChange{TopicID: p.TopicID, Topic: p.Topic, Partition: p.Index,
		LeaderEpoch: p.st.leaderEpoch, PartitionEpoch: p.st.partitionEpoch, ISR: isr}
	p.logger.Info("proposing ISR change", "from", p.st.isr, "to", isr, "why", why, "leader_epoch", req.LeaderEpoch, "partition_epoch", req.PartitionEpoch)
	p.env.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := p.env.ctrl.AlterPartition(ctx, req)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.pending = nil
		if err != nil {
			// A broker just restarted is fenced until its first
			// heartbeat; a leader that just lost leadership hears
			// about it from the image: retry a little later.
			p.retryAt = p.env.now().Add(isrRetryBackoff)
			p.logger.Warn("ISR change refused; retrying", "to", isr, "after", isrRetryBackoff, "err", err)
			return
		}
		if got.LeaderEpoch == p.st.leaderEpoch && got.PartitionEpoch > p.st.partitionEpoch {
			p.env.countISRChange(len(p.st.isr), len(got.ISR))
			p.st.isr, p.st.partitionEpoch = got.ISR, got.PartitionEpoch
		}
		p.maybeAdvanceLocked()
		p.wakeLocked()
	})
}

// isrRetryBackoff is how long a leader waits after a refused ISR change
// before it asks again.
const isrRetryBackoff = 500 * time.Millisecond
