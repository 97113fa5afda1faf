package group

// The server-side assignors of the consumer protocol.
//
// uniform: spreads every subscribed partition so that member counts differ
// by at most one among members that could take a partition, keeping each
// partition where the previous target had it when that does not break the
// balance (sticky).
//
// range: per topic, the members subscribed to it (sorted by member id) get
// contiguous ranges of partitions, the first ones one more when the count
// does not divide evenly, as the classic range assignor does.

import (
	"maps"
	"slices"
)

// computeTarget returns the target assignment of every member.
func computeTarget(assignor string, members map[string]*cmember, topics map[string]TopicMeta, prev map[string]pset) map[string]pset {
	ids := slices.Sorted(maps.Keys(members))
	names := slices.Sorted(maps.Keys(topics))
	out := make(map[string]pset, len(ids))
	for _, id := range ids {
		out[id] = pset{}
	}
	// Members that left for now (static, -2) keep their target.
	subs := map[string][]string{} // topic -> subscribed member ids, sorted
	for _, id := range ids {
		for _, t := range members[id].topics {
			if _, ok := topics[t]; ok {
				subs[t] = append(subs[t], id)
			}
		}
	}
	if assignor == AssignorRange {
		for _, t := range names {
			ms := subs[t]
			if len(ms) == 0 {
				continue
			}
			n, k := topics[t].Partitions, int32(len(ms))
			base, extra := n/k, n%k
			next := int32(0)
			for i, id := range ms {
				cnt := base
				if int32(i) < extra {
					cnt++
				}
				for p := next; p < next+cnt; p++ {
					out[id][tidp{topics[t].ID, p}] = struct{}{}
				}
				next += cnt
			}
		}
		return out
	}
	return uniformAssign(ids, names, topics, subs, prev, out)
}

func uniformAssign(ids, names []string, topics map[string]TopicMeta, subs map[string][]string, prev map[string]pset, out map[string]pset) map[string]pset {
	eligible := map[[16]byte][]string{}
	var all []tidp
	for _, t := range names {
		if len(subs[t]) == 0 {
			continue
		}
		id := topics[t].ID
		eligible[id] = subs[t]
		for p := range topics[t].Partitions {
			all = append(all, tidp{id, p})
		}
	}
	active := 0
	for _, id := range ids {
		for _, t := range names {
			if slices.Contains(subs[t], id) {
				active++
				break
			}
		}
	}
	if active == 0 {
		return out
	}
	limit := (len(all) + active - 1) / active
	owner := make(map[tidp]string, len(all))
	// 1. Sticky: keep the previous target within the limit.
	for _, id := range ids {
		for _, p := range sortedSet(prev[id]) {
			if len(out[id]) >= limit || !slices.Contains(eligible[p.topic], id) {
				continue
			}
			out[id][p] = struct{}{}
			owner[p] = id
		}
	}
	// 2. The rest go to the least loaded eligible member.
	least := func(cands []string) string {
		best := ""
		for _, id := range cands {
			if best == "" || len(out[id]) < len(out[best]) {
				best = id
			}
		}
		return best
	}
	for _, p := range all {
		if _, ok := owner[p]; ok {
			continue
		}
		id := least(eligible[p.topic])
		out[id][p] = struct{}{}
		owner[p] = id
	}
	// 3. Balance: move partitions from members with two or more than an
	// eligible peer (matters for differing subscriptions).
	for range len(all) + 1 {
		moved := false
		for _, p := range all {
			from := owner[p]
			to := least(eligible[p.topic])
			if len(out[from]) > len(out[to])+1 {
				delete(out[from], p)
				out[to][p] = struct{}{}
				owner[p] = to
				moved = true
			}
		}
		if !moved {
			break
		}
	}
	return out
}

func sortedSet(s pset) []tidp {
	out := slices.Collect(maps.Keys(s))
	slices.SortFunc(out, func(a, b tidp) int {
		if c := compareID(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.part - b.part)
	})
	return out
}
