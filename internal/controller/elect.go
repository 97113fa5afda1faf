package controller

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/stratalog/strata/internal/metadata"
)

// Leader elections asked for (ElectLeaders, KIP-460) and the automatic
// return of leadership to preferred replicas (auto.leader.rebalance.enable).

// Errors of ElectLeaders.
var (
	ErrElectionNotNeeded           = errors.New("election not needed")
	ErrPreferredLeaderNotAvailable = errors.New("preferred leader not available")
	ErrEligibleLeadersNotAvailable = errors.New("eligible leaders not available")
)

// ElectionType is ElectLeaders' election type, numbered as Kafka's.
type ElectionType int8

// Election types.
const (
	// ElectPreferred makes the preferred replica (the first) leader if it
	// is an unfenced in-sync replica.
	ElectPreferred ElectionType = 0
	// ElectUnclean gives a leaderless partition a leader: an unfenced
	// in-sync replica if there is one, else an unfenced eligible leader
	// replica (KIP-966), else any unfenced replica, whose
	// ISR becomes [it] (records only the old ISR had are lost).
	ElectUnclean ElectionType = 1
)

// ElectLeadersResult is the outcome for one partition.
type ElectLeadersResult struct {
	Topic     string
	Partition int32
	Err       error
}

// ElectLeaders runs elections of the given type for partitions (topic ->
// partition numbers), or for every partition when partitions is nil; then
// only the partitions where an election was needed are reported, as
// Kafka's controller does. Per partition: ErrUnknownTopic,
// ErrElectionNotNeeded (preferred: it already leads; unclean: the
// partition has a leader), ErrPreferredLeaderNotAvailable,
// ErrEligibleLeadersNotAvailable. The error is for the whole request
// (ErrNotController, ErrInvalidRequest for an unknown type, the commit).
func (c *Controller) ElectLeaders(typ ElectionType, partitions map[string][]int32) ([]ElectLeadersResult, error) {
	if typ != ElectPreferred && typ != ElectUnclean {
		return nil, fmt.Errorf("%w: election type %d", ErrInvalidRequest, typ)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return nil, ErrNotController
	}
	img := c.images.Image()
	var out []ElectLeadersResult
	var recs []metadata.Record
	elect := func(t *metadata.Topic, i int) error {
		p := t.Partitions[i]
		var r *metadata.PartitionRecord
		var err error
		if typ == ElectPreferred {
			r, err = c.electPreferred(img, t, i, p)
		} else {
			r, err = c.electLeaderless(img, t, i, p)
		}
		if r != nil {
			recs = append(recs, r)
		}
		return err
	}
	if partitions == nil {
		forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
			if err := elect(t, i); !errors.Is(err, ErrElectionNotNeeded) {
				out = append(out, ElectLeadersResult{Topic: t.Name, Partition: int32(i), Err: err})
			}
		})
	} else {
		for _, name := range sortedKeys(partitions) {
			seen := map[int32]bool{}
			for _, i := range partitions[name] {
				res := ElectLeadersResult{Topic: name, Partition: i}
				t := img.Topics[name]
				switch {
				case seen[i]:
					continue
				case t == nil || i < 0 || int(i) >= len(t.Partitions):
					res.Err = fmt.Errorf("%w: %s-%d", ErrUnknownTopic, name, i)
				default:
					res.Err = elect(t, int(i))
				}
				seen[i] = true
				out = append(out, res)
			}
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	if _, err := c.commit(recs); err != nil {
		return nil, fmt.Errorf("commit metadata: %w", err)
	}
	return out, nil
}

// electPreferred moves the leadership to the preferred replica.
func (c *Controller) electPreferred(img *metadata.Image, t *metadata.Topic, i int, p *metadata.Partition) (*metadata.PartitionRecord, error) {
	pref := p.Replicas[0]
	switch {
	case p.Leader == pref:
		return nil, fmt.Errorf("%w: %s-%d is led by its preferred replica %d", ErrElectionNotNeeded, t.Name, i, pref)
	case !slices.Contains(p.ISR, pref):
		return nil, fmt.Errorf("%w: %s-%d: preferred replica %d is not in the ISR %v", ErrPreferredLeaderNotAvailable, t.Name, i, pref, p.ISR)
	case !usable(img, pref):
		return nil, fmt.Errorf("%w: %s-%d: preferred replica %d is fenced", ErrPreferredLeaderNotAvailable, t.Name, i, pref)
	case !dirOnline(img, p, pref):
		return nil, fmt.Errorf("%w: %s-%d: preferred replica %d's log directory %s is offline", ErrPreferredLeaderNotAvailable, t.Name, i, pref, p.DirectoryOf(pref))
	}
	return c.change(img, t, i, p, pref, liveISR(img, p, p.ISR), nil), nil
}

// electLeaderless gives a leaderless partition a leader, uncleanly if it
// must.
func (c *Controller) electLeaderless(img *metadata.Image, t *metadata.Topic, i int, p *metadata.Partition) (*metadata.PartitionRecord, error) {
	if p.Leader >= 0 {
		return nil, fmt.Errorf("%w: %s-%d has leader %d", ErrElectionNotNeeded, t.Name, i, p.Leader)
	}
	if isr := liveISR(img, p, p.ISR); len(isr) > 0 {
		return c.change(img, t, i, p, firstIn(p.Replicas, isr), isr, nil), nil
	}
	if e := firstIn(p.Replicas, liveISR(img, p, p.ELR)); e >= 0 {
		return c.change(img, t, i, p, e, []int32{e}, nil), nil
	}
	if r := c.electUnclean(img, t, i, p, func(id int32) bool { return replicaLive(img, p, id) }); r != nil {
		return r, nil
	}
	return nil, fmt.Errorf("%w: %s-%d: no replica of %v is live", ErrEligibleLeadersNotAvailable, t.Name, i, p.Replicas)
}

// liveISR is the members of isr (replicas of p) that are unfenced, with
// their log directory online.
func liveISR(img *metadata.Image, p *metadata.Partition, isr []int32) []int32 {
	var out []int32
	for _, r := range isr {
		if replicaLive(img, p, r) {
			out = append(out, r)
		}
	}
	return out
}

// RebalanceLeaders moves the leadership of every partition whose
// preferred replica (the first) is an unfenced in-sync replica but not
// the leader back to it, if auto.leader.rebalance.enable is true (static
// or dynamic broker config). Only the active controller does anything;
// the server calls it every leader.imbalance.check.interval.seconds.
func (c *Controller) RebalanceLeaders() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return nil
	}
	img := c.images.Image()
	if on, err := strconv.ParseBool(c.brokerConfig(img, "auto.leader.rebalance.enable")); err != nil || !on {
		return nil
	}
	var recs []metadata.Record
	var moved []string
	forEachPartition(img, func(t *metadata.Topic, i int, p *metadata.Partition) {
		if r, err := c.electPreferred(img, t, i, p); err == nil {
			recs = append(recs, r)
			moved = append(moved, fmt.Sprintf("%s-%d", t.Name, i))
		}
	})
	if len(recs) == 0 {
		return nil
	}
	if _, err := c.commit(recs); err != nil {
		return fmt.Errorf("rebalance leaders: %w", err)
	}
	c.opts.Logger.Info("leadership moved back to preferred replicas", "partitions", moved)
	return nil
}
