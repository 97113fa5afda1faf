package cli

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
)

// reassignPlan is Kafka's reassignment JSON, as kafka-reassign-partitions.sh
// reads and writes it: {"version":1,"partitions":[{"topic":"a",
// "partition":0,"replicas":[2,3,4]}]}. The first replica is the preferred
// leader.
type reassignPlan struct {
	Version    int             `json:"version"`
	Partitions []planPartition `json:"partitions"`
}

type planPartition struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []int32  `json:"replicas"`
	LogDirs   []string `json:"log_dirs,omitempty"` // Kafka's; accepted, not used
}

// assignment is where each partition's replicas are, by topic and
// partition.
type assignment map[string]map[int32][]int32

func (a assignment) plan() reassignPlan {
	p := reassignPlan{Version: 1, Partitions: []planPartition{}}
	for _, t := range slices.Sorted(maps.Keys(a)) {
		for _, n := range slices.Sorted(maps.Keys(a[t])) {
			p.Partitions = append(p.Partitions, planPartition{Topic: t, Partition: n, Replicas: a[t][n]})
		}
	}
	return p
}

// readPlan parses and checks a reassignment JSON.
func readPlan(r io.Reader) (reassignPlan, error) {
	var p reassignPlan
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("not a reassignment JSON: %w", err)
	}
	if p.Version != 1 {
		return p, fmt.Errorf("reassignment JSON version %d: want 1", p.Version)
	}
	if len(p.Partitions) == 0 {
		return p, errors.New("reassignment JSON lists no partitions")
	}
	seen := map[string]bool{}
	for _, pp := range p.Partitions {
		id := fmt.Sprintf("%s/%d", pp.Topic, pp.Partition)
		switch {
		case pp.Topic == "" || pp.Partition < 0:
			return p, fmt.Errorf("reassignment JSON: partition %q: want a topic and a partition >= 0", id)
		case seen[id]:
			return p, fmt.Errorf("reassignment JSON: partition %s listed twice", id)
		case len(pp.Replicas) == 0:
			return p, fmt.Errorf("reassignment JSON: partition %s has no replicas", id)
		}
		seen[id] = true
		brokers := map[int32]bool{}
		for _, b := range pp.Replicas {
			if b < 0 || brokers[b] {
				return p, fmt.Errorf("reassignment JSON: partition %s: replicas %s: want distinct broker ids >= 0", id, cellString(pp.Replicas))
			}
			brokers[b] = true
		}
	}
	return p, nil
}

// encodePlan is the plan as JSON with one partition a line: readable,
// and short enough to diff.
func encodePlan(p reassignPlan) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\"version\":%d,\"partitions\":[", p.Version)
	for i, pp := range p.Partitions {
		line, _ := json.Marshal(pp)
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n  ")
		b.Write(line)
	}
	b.WriteString("\n]}\n")
	return b.String()
}

// generatePlan moves the replicas of cur onto brokers. It keeps each
// partition's replication factor and moves as few replicas as it can:
// replicas on brokers that stay, stay; those on brokers that go are
// replaced by the least loaded brokers; then, per topic, replicas move
// from the most to the least loaded broker only while their counts differ
// by more than one. Last, preferred leaders (first replicas) are spread
// over each topic's replicas, keeping a partition's leader where it can.
func generatePlan(cur assignment, brokers []int32) (assignment, error) {
	brokers = slices.Compact(slices.Sorted(slices.Values(brokers)))
	if len(brokers) == 0 {
		return nil, errors.New("no target brokers given")
	}
	target := map[int32]bool{}
	for _, b := range brokers {
		target[b] = true
	}
	g := &planner{brokers: brokers, target: target, load: map[int32]int{}, leaders: map[int32]int{}}
	out := assignment{}
	for _, t := range slices.Sorted(maps.Keys(cur)) {
		parts := slices.Sorted(maps.Keys(cur[t]))
		for _, p := range parts {
			if rf := len(cur[t][p]); rf > len(brokers) {
				return nil, fmt.Errorf("topic %s partition %d has %d replicas, more than the %d brokers given", t, p, rf, len(brokers))
			}
		}
		out[t] = g.topic(cur[t], parts)
	}
	return out, nil
}

// planner carries the cluster-wide load across topics: it breaks ties so
// that many small topics do not all land on the same broker.
type planner struct {
	brokers []int32
	target  map[int32]bool
	load    map[int32]int // replicas per broker, all topics so far
	leaders map[int32]int // preferred leaders per broker, all topics so far
}

// topic plans one topic's partitions (parts, sorted).
func (g *planner) topic(cur map[int32][]int32, parts []int32) map[int32][]int32 {
	count := map[int32]int{} // this topic's replicas per broker
	slots := make(map[int32][]int32, len(parts))
	for _, p := range parts {
		s := slices.Clone(cur[p])
		for i, b := range s {
			if g.target[b] {
				count[b]++
			} else {
				s[i] = -1 // on a broker that goes: to fill
			}
		}
		slots[p] = s
	}
	// Fill the vacated slots with the least loaded brokers.
	for _, p := range parts {
		for i, b := range slots[p] {
			if b < 0 {
				b = g.least(count, slots[p])
				slots[p][i] = b
				count[b]++
			}
		}
	}
	// Even out this topic: one move at a time from the most to the least
	// loaded broker, preferring a partition where it is not the leader.
	for {
		hi, lo := g.extremes(count)
		if count[hi]-count[lo] <= 1 {
			break
		}
		p, i := pickMove(slots, parts, hi, lo)
		slots[p][i] = lo
		count[hi]--
		count[lo]++
	}
	for _, p := range parts {
		for _, b := range slots[p] {
			g.load[b]++
		}
	}
	g.spreadLeaders(slots, parts)
	return slots
}

// less orders brokers by this topic's count, then the cluster-wide load,
// then id.
func (g *planner) less(count map[int32]int, a, b int32) int {
	return cmp.Or(cmp.Compare(count[a], count[b]), cmp.Compare(g.load[a], g.load[b]), cmp.Compare(a, b))
}

// least is the least loaded target broker not among taken.
func (g *planner) least(count map[int32]int, taken []int32) int32 {
	best := int32(-1)
	for _, b := range g.brokers {
		if slices.Contains(taken, b) {
			continue
		}
		if best < 0 || g.less(count, b, best) < 0 {
			best = b
		}
	}
	return best
}

func (g *planner) extremes(count map[int32]int) (hi, lo int32) {
	hi, lo = g.brokers[0], g.brokers[0]
	for _, b := range g.brokers[1:] {
		if g.less(count, b, hi) > 0 {
			hi = b
		}
		if g.less(count, b, lo) < 0 {
			lo = b
		}
	}
	return hi, lo
}

// pickMove finds a replica on hi in a partition without lo: a follower if
// there is one, else a leader. One exists whenever hi has more replicas
// than lo.
func pickMove(slots map[int32][]int32, parts []int32, hi, lo int32) (int32, int) {
	lp, li := int32(-1), -1
	for _, p := range parts {
		s := slots[p]
		i := slices.Index(s, hi)
		if i < 0 || slices.Contains(s, lo) {
			continue
		}
		if i > 0 {
			return p, i
		}
		if lp < 0 {
			lp, li = p, i
		}
	}
	return lp, li
}

// spreadLeaders reorders replicas so that each broker is the preferred
// leader of about as many of the topic's partitions as the others: a
// partition keeps its leader unless that broker already has its share.
func (g *planner) spreadLeaders(slots map[int32][]int32, parts []int32) {
	share := (len(parts) + len(g.brokers) - 1) / len(g.brokers)
	count := map[int32]int{}
	for _, p := range parts {
		s := slots[p]
		if count[s[0]] >= share {
			best := 0
			for i, b := range s {
				if c := cmp.Or(cmp.Compare(count[b], count[s[best]]), cmp.Compare(g.leaders[b], g.leaders[s[best]])); c < 0 {
					best = i
				}
			}
			s[0], s[best] = s[best], s[0]
		}
		count[s[0]]++
		g.leaders[s[0]]++
	}
}

// movedReplicas counts the replicas of next that are not in cur (data to
// copy) and the partitions whose preferred leader changes.
func movedReplicas(cur, next assignment) (moved, total, leaders int) {
	for t, ps := range next {
		for p, rs := range ps {
			old := cur[t][p]
			total += len(rs)
			for _, b := range rs {
				if !slices.Contains(old, b) {
					moved++
				}
			}
			if len(old) > 0 && len(rs) > 0 && old[0] != rs[0] {
				leaders++
			}
		}
	}
	return moved, total, leaders
}
