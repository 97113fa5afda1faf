package main

import (
	"fmt"
	"sort"
)

// Transactional anomaly kinds (class "txn").
const (
	AbortedRead   = "aborted-read"   // G1a: a read_committed read saw a record of an aborted transaction
	LostCommitted = "lost-committed" // a record of a committed transaction missing from the complete final read
	NonAtomic     = "non-atomic"     // some records of a transaction visible and others not
	HangingTxn    = "hanging-txn"    // a partition's last stable offset never reached its end after healing
)

// CheckTxn checks the transactional history: aborted reads, lost committed
// records, transactions visible in part, hanging transactions, and the
// order and uniqueness rules of the main checker for what read_committed
// readers saw. Call it once the workload has stopped.
func CheckTxn(h *TxnHistory) []Anomaly {
	var out []Anomaly
	add := func(kind string, p int32, o int64, v, detail string) {
		out = append(out, Anomaly{Kind: kind, Class: "txn", Partition: p, Offset: o, Value: v, Detail: detail})
	}
	txnOf := map[string]*Txn{}
	for i := range h.Txns {
		for _, v := range h.Txns[i].Values {
			txnOf[v.Value] = &h.Txns[i]
		}
	}
	stuckParts := make([]int32, 0, len(h.FinalStuck))
	for p := range h.FinalStuck {
		stuckParts = append(stuckParts, p)
	}
	sort.Slice(stuckParts, func(i, j int) bool { return stuckParts[i] < stuckParts[j] })
	for _, p := range stuckParts {
		add(HangingTxn, p, h.FinalStuck[p], "", fmt.Sprintf("partition %d: last stable offset %d never reached the end %d after healing", p, h.FinalStuck[p], h.FinalEnd[p]))
	}

	// Every position each value was read at, by the reader or the final read.
	seenAt := map[string]map[po]bool{}
	at := map[po]map[string]bool{}
	saw := func(p int32, o int64, v string) {
		if seenAt[v] == nil {
			seenAt[v] = map[po]bool{}
		}
		seenAt[v][po{p, o}] = true
		if at[po{p, o}] == nil {
			at[po{p, o}] = map[string]bool{}
		}
		at[po{p, o}][v] = true
	}
	for _, r := range h.Reads {
		saw(r.Partition, r.Offset, r.Value)
	}
	inFinal := map[string]bool{}
	for p, recs := range h.Final {
		for _, r := range recs {
			saw(p, r.Offset, r.Value)
			inFinal[r.Value] = true
		}
	}
	complete := map[int32]bool{}
	for p := range h.FinalEnd {
		complete[p] = true
	}
	for p := range h.FinalStuck {
		delete(complete, p)
	}
	for _, p := range h.FinalIncomplete {
		delete(complete, p)
	}

	vals := make([]string, 0, len(seenAt))
	for v := range seenAt {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	for _, v := range vals {
		pos := sortedPos(seenAt[v])
		t := txnOf[v]
		if t == nil {
			add(InconsistentOffsets, pos[0].p, pos[0].o, v, fmt.Sprintf("value %q read at %v was never written", v, pos))
			continue
		}
		if t.Outcome == TxnAborted {
			add(AbortedRead, pos[0].p, pos[0].o, v, fmt.Sprintf("value %q of aborted transaction %s/%d read at %v", v, t.Producer, t.ID, pos))
		}
		if len(pos) > 1 {
			add(Duplicate, pos[0].p, pos[0].o, v, fmt.Sprintf("value %q read at %d positions %v", v, len(pos), pos))
		}
		for _, tv := range t.Values {
			if tv.Value == v && tv.Offset >= 0 && !seenAt[v][po{tv.Partition, tv.Offset}] {
				add(AckedOffsetMismatch, tv.Partition, tv.Offset, v, fmt.Sprintf("acknowledged at partition %d offset %d, read at %v", tv.Partition, tv.Offset, pos))
			}
		}
	}
	for _, k := range sortedPos(keysOf(at)) {
		if len(at[k]) > 1 {
			var vs []string
			for v := range at[k] {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			add(InconsistentOffsets, k.p, k.o, vs[0], fmt.Sprintf("values %q at partition %d offset %d", vs, k.p, k.o))
		}
	}

	// Committed transactions are wholly in the final read; transactions of
	// unknown outcome wholly or not at all (judged on complete partitions).
	for i := range h.Txns {
		t := &h.Txns[i]
		var present, absent []string
		for _, v := range t.Values {
			if !complete[v.Partition] {
				continue
			}
			if inFinal[v.Value] {
				present = append(present, v.Value)
			} else {
				absent = append(absent, v.Value)
			}
		}
		switch {
		case t.Outcome == TxnCommitted && len(absent) > 0:
			for _, v := range t.Values {
				if !inFinal[v.Value] && complete[v.Partition] {
					add(LostCommitted, v.Partition, v.Offset, v.Value, fmt.Sprintf("value %q of committed transaction %s/%d missing from the final read of partition %d", v.Value, t.Producer, t.ID, v.Partition))
				}
			}
		case t.Outcome == TxnUnknown && len(present) > 0 && len(absent) > 0:
			add(NonAtomic, t.Values[0].Partition, t.Values[0].Offset, t.Values[0].Value,
				fmt.Sprintf("transaction %s/%d (outcome unknown): %q visible, %q not", t.Producer, t.ID, present, absent))
		}
	}

	// The reader's polls go forward per partition.
	last := map[int32]*Read{}
	for i := range h.Reads {
		r := &h.Reads[i]
		if prev := last[r.Partition]; prev != nil && r.Offset <= prev.Offset {
			add(NonMonotonicPoll, r.Partition, r.Offset, r.Value, fmt.Sprintf("read_committed reader read partition %d offset %d after offset %d", r.Partition, r.Offset, prev.Offset))
		}
		last[r.Partition] = r
	}
	return out
}

func keysOf(m map[po]map[string]bool) map[po]bool {
	out := make(map[po]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func sortedPos(set map[po]bool) []po {
	out := make([]po, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].p < out[j].p || out[i].p == out[j].p && out[i].o < out[j].o })
	return out
}
