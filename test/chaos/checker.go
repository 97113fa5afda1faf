package main

import (
	"fmt"
	"sort"
)

// Anomaly kinds, named as Jepsen's Kafka checker names them.
const (
	LostWrite           = "lost-write"            // acknowledged, below an offset some read reached, never read; or read once and gone from the final read
	Duplicate           = "duplicate"             // one value at two offsets
	InconsistentOffsets = "inconsistent-offsets"  // two values at one offset (across reads, acks or replicas)
	NonMonotonicPoll    = "nonmonotonic-poll"     // a consumer's next poll went back (or stayed) without a reset
	PollSkip            = "poll-skip"             // a consumer's next poll jumped over offsets that exist
	Unseen              = "unseen"                // acknowledged, never read, above every read offset
	ReplicaDivergence   = "replica-divergence"    // replicas differ below the high watermark
	AckedOffsetMismatch = "acked-offset-mismatch" // acknowledged at one offset, read at another
)

// AnomalyKinds is the order the summary prints them in.
var AnomalyKinds = []string{LostWrite, Duplicate, InconsistentOffsets, NonMonotonicPoll, PollSkip, Unseen, AckedOffsetMismatch, ReplicaDivergence}

// Anomaly is one violation with the operations that show it.
type Anomaly struct {
	Kind      string  `json:"kind"`
	Class     string  `json:"class"` // class of the producer of the value involved ("main" or "control")
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Value     string  `json:"value,omitempty"`
	Detail    string  `json:"detail"`
	Writes    []Write `json:"writes,omitempty"`
	Reads     []Read  `json:"reads,omitempty"`
}

// Result is the checker's verdict on one history.
type Result struct {
	Anomalies []Anomaly
}

// Count returns the number of anomalies of kind in class ("" for any).
func (r Result) Count(kind, class string) int {
	n := 0
	for _, a := range r.Anomalies {
		if a.Kind == kind && (class == "" || a.Class == class) {
			n++
		}
	}
	return n
}

// Failing returns the anomalies that fail a run: every one whose value was
// written by a main producer (the control producer's are expected under
// acks=1 and only reported).
func (r Result) Failing() []Anomaly {
	var out []Anomaly
	for _, a := range r.Anomalies {
		if a.Class != "control" {
			out = append(out, a)
		}
	}
	return out
}

type po struct {
	p int32
	o int64
}

// Check looks for Jepsen's Kafka anomalies in h. It reads h without locking:
// call it once the workload has stopped.
func Check(h *History) Result {
	var res Result
	class := map[string]string{}
	writesOf := map[string][]Write{}
	for _, w := range h.Writes {
		class[w.Value] = w.Class
		writesOf[w.Value] = append(writesOf[w.Value], w)
	}
	classOf := func(v string) string {
		if c, ok := class[v]; ok {
			return c
		}
		return "main"
	}

	// Every (partition, offset) -> value observation: polls, the final read,
	// and acknowledgements.
	type obs struct {
		value string
		read  *Read  // nil for the final read or an ack
		write *Write // an ack
	}
	at := map[po][]obs{}
	seenAt := map[string]map[po]bool{} // value -> positions it was read at
	maxRead := map[int32]int64{}
	known := map[int32]map[int64]bool{} // offsets known to exist per partition
	note := func(p int32, o int64) {
		if known[p] == nil {
			known[p] = map[int64]bool{}
		}
		known[p][o] = true
	}
	sawRead := func(p int32, o int64, v string) {
		if seenAt[v] == nil {
			seenAt[v] = map[po]bool{}
		}
		seenAt[v][po{p, o}] = true
		if m, ok := maxRead[p]; !ok || o > m {
			maxRead[p] = o
		}
		note(p, o)
	}
	for i := range h.Reads {
		r := &h.Reads[i]
		if r.Reset {
			continue
		}
		at[po{r.Partition, r.Offset}] = append(at[po{r.Partition, r.Offset}], obs{value: r.Value, read: r})
		sawRead(r.Partition, r.Offset, r.Value)
	}
	for p, recs := range h.Final {
		for _, rec := range recs {
			at[po{p, rec.Offset}] = append(at[po{p, rec.Offset}], obs{value: rec.Value})
			sawRead(p, rec.Offset, rec.Value)
		}
	}
	for i := range h.Writes {
		w := &h.Writes[i]
		if w.Outcome == OK {
			at[po{w.Partition, w.Offset}] = append(at[po{w.Partition, w.Offset}], obs{value: w.Value, write: w})
			note(w.Partition, w.Offset)
		}
	}

	// Inconsistent offsets: more than one value at one position.
	keys := make([]po, 0, len(at))
	for k := range at {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].p != keys[j].p {
			return keys[i].p < keys[j].p
		}
		return keys[i].o < keys[j].o
	})
	for _, k := range keys {
		vals := map[string]bool{}
		var order []string
		for _, ob := range at[k] {
			if !vals[ob.value] {
				vals[ob.value] = true
				order = append(order, ob.value)
			}
		}
		if len(order) < 2 {
			continue
		}
		a := Anomaly{Kind: InconsistentOffsets, Class: classOf(order[0]), Partition: k.p, Offset: k.o, Value: order[0],
			Detail: fmt.Sprintf("values %q at partition %d offset %d", order, k.p, k.o)}
		// It fails the run unless only a control producer's acknowledgement
		// disagrees: reads disagreeing among themselves, or with a main
		// producer's acknowledgement, are a main anomaly.
		strict := map[string]bool{}
		for _, ob := range at[k] {
			if ob.write == nil || ob.write.Class != "control" {
				strict[ob.value] = true
			}
		}
		a.Class = "control"
		if len(strict) > 1 {
			a.Class = "main"
		}
		for _, ob := range at[k] {
			if ob.read != nil {
				a.Reads = append(a.Reads, *ob.read)
			}
			if ob.write != nil {
				a.Writes = append(a.Writes, *ob.write)
			}
		}
		res.Anomalies = append(res.Anomalies, a)
	}

	// Duplicates: one value read at more than one position; and values read
	// somewhere other than where their acknowledgement said.
	vals := make([]string, 0, len(seenAt))
	for v := range seenAt {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	for _, v := range vals {
		pos := seenAt[v]
		if len(pos) > 1 {
			var list []po
			for k := range pos {
				list = append(list, k)
			}
			sort.Slice(list, func(i, j int) bool { return list[i].p < list[j].p || list[i].p == list[j].p && list[i].o < list[j].o })
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: Duplicate, Class: classOf(v), Partition: list[0].p, Offset: list[0].o, Value: v,
				Detail: fmt.Sprintf("value %q read at %d positions %v", v, len(list), list), Writes: writesOf[v]})
		}
		for _, w := range writesOf[v] {
			if w.Outcome == OK && !pos[po{w.Partition, w.Offset}] {
				res.Anomalies = append(res.Anomalies, Anomaly{Kind: AckedOffsetMismatch, Class: w.Class, Partition: w.Partition, Offset: w.Offset, Value: v,
					Detail: fmt.Sprintf("acknowledged at partition %d offset %d, never read there", w.Partition, w.Offset), Writes: []Write{w}})
			}
		}
	}

	// Lost and unseen: acknowledged values never read anywhere; and
	// (stricter than Jepsen) acknowledged values some consumer read that a
	// complete final read of their partition no longer holds.
	inFinal := map[string]bool{}
	for _, recs := range h.Final {
		for _, r := range recs {
			inFinal[r.Value] = true
		}
	}
	incomplete := map[int32]bool{}
	for _, p := range h.FinalIncomplete {
		incomplete[p] = true
	}
	for _, w := range h.Writes {
		if w.Outcome != OK {
			continue
		}
		if len(seenAt[w.Value]) > 0 {
			if end, ok := h.FinalEnd[w.Partition]; ok && !incomplete[w.Partition] && !inFinal[w.Value] {
				res.Anomalies = append(res.Anomalies, Anomaly{Kind: LostWrite, Class: w.Class, Partition: w.Partition, Offset: w.Offset, Value: w.Value,
					Detail: fmt.Sprintf("acknowledged at offset %d and read by a consumer, but gone from the final read of partition %d (end offset %d)", w.Offset, w.Partition, end),
					Writes: []Write{w}})
			}
			continue
		}
		m, ok := maxRead[w.Partition]
		if ok && w.Offset <= m {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: LostWrite, Class: w.Class, Partition: w.Partition, Offset: w.Offset, Value: w.Value,
				Detail: fmt.Sprintf("acknowledged at offset %d, reads reached offset %d of partition %d, never read", w.Offset, m, w.Partition), Writes: []Write{w}})
		} else {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: Unseen, Class: w.Class, Partition: w.Partition, Offset: w.Offset, Value: w.Value,
				Detail: fmt.Sprintf("acknowledged at offset %d of partition %d, never read (reads reached %d)", w.Offset, w.Partition, m), Writes: []Write{w}})
		}
	}

	// Poll order per consumer and partition, reset by Reset markers; the
	// final read is one more consumer that must see offsets in order.
	sorted := map[int32][]int64{}
	for p, set := range known {
		for o := range set {
			sorted[p] = append(sorted[p], o)
		}
		sort.Slice(sorted[p], func(i, j int) bool { return sorted[p][i] < sorted[p][j] })
	}
	type cp struct {
		c string
		p int32
	}
	last := map[cp]*Read{}
	checkStep := func(prev, cur *Read) {
		if cur.Offset <= prev.Offset {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: NonMonotonicPoll, Class: classOf(cur.Value), Partition: cur.Partition, Offset: cur.Offset, Value: cur.Value,
				Detail: fmt.Sprintf("consumer %s read partition %d offset %d after offset %d", cur.Consumer, cur.Partition, cur.Offset, prev.Offset), Reads: []Read{*prev, *cur}})
			return
		}
		offs := sorted[cur.Partition]
		i := sort.Search(len(offs), func(i int) bool { return offs[i] > prev.Offset })
		if i < len(offs) && offs[i] < cur.Offset {
			res.Anomalies = append(res.Anomalies, Anomaly{Kind: PollSkip, Class: classOf(cur.Value), Partition: cur.Partition, Offset: cur.Offset, Value: cur.Value,
				Detail: fmt.Sprintf("consumer %s read partition %d offset %d right after offset %d, skipping offset %d", cur.Consumer, cur.Partition, cur.Offset, prev.Offset, offs[i]),
				Reads:  []Read{*prev, *cur}})
		}
	}
	for i := range h.Reads {
		r := &h.Reads[i]
		k := cp{r.Consumer, r.Partition}
		if r.Reset {
			delete(last, k)
			continue
		}
		if prev := last[k]; prev != nil {
			checkStep(prev, r)
		}
		last[k] = r
	}
	parts := make([]int32, 0, len(h.Final))
	for p := range h.Final {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		recs := h.Final[p]
		for i := 1; i < len(recs); i++ {
			prev := &Read{Consumer: "final", Partition: p, Offset: recs[i-1].Offset, Value: recs[i-1].Value}
			cur := &Read{Consumer: "final", Partition: p, Offset: recs[i].Offset, Value: recs[i].Value}
			checkStep(prev, cur)
		}
	}
	return res
}
