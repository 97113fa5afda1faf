package group

import "sort"

// Stats is one group's state for metrics.
type Stats struct {
	Group   string
	Type    string // "classic" or "consumer"
	State   string
	Members int
	// Offsets are the committed offsets by partition.
	Offsets map[TopicPartition]int64
}

// Stats returns every group this coordinator owns (of partitions loaded),
// sorted by group id: what a metrics scrape reports. It holds the
// coordinator's lock while it copies.
func (c *Coordinator) Stats() []Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Stats, 0, len(c.groups))
	for _, g := range c.groups {
		if p := c.parts[g.partition]; p == nil || p.loading {
			continue
		}
		s := Stats{Group: g.id, Type: "classic", State: g.state.String(), Members: len(g.members),
			Offsets: make(map[TopicPartition]int64, len(g.offsets))}
		if g.consumer != nil {
			s.Type, s.State, s.Members = "consumer", g.consumer.state(), len(g.consumer.members)
		}
		for tp, o := range g.offsets {
			s.Offsets[TopicPartition{Topic: tp.topic, Partition: tp.partition}] = o.offset
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}
