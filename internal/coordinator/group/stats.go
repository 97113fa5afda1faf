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
// sorted by group id: what a metrics scrape reports. It holds each
// partition's lock in turn while it copies that partition's groups.
func (c *Coordinator) Stats() []Stats {
	var out []Stats
	for _, part := range c.partitions() {
		part.mu.Lock()
		out = part.appendStats(out)
		part.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Group < out[j].Group })
	return out
}

// appendStats appends the partition's groups. Callers hold part.mu.
func (part *partition) appendStats(out []Stats) []Stats {
	if part.loading || part.unloaded {
		return out
	}
	for _, g := range part.groups {
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
	return out
}
