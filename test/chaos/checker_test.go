package main

import (
	"fmt"
	"testing"
)

// clean builds a history of n acknowledged writes per partition, each read
// once by a group consumer and once by the final read.
func clean(parts, n int) *History {
	h := newHistory()
	for p := int32(0); p < int32(parts); p++ {
		for o := int64(0); o < int64(n); o++ {
			v := fmt.Sprintf("p%d-%d", p, o)
			i := h.begin("prod-0", "main", p, v)
			h.finish(i, OK, o, nil)
			h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: p, Offset: o, Value: v})
			h.Final[p] = append(h.Final[p], Rec{Offset: o, Value: v})
		}
		h.FinalEnd[p] = int64(n)
	}
	return h
}

func kinds(r Result) map[string]int {
	m := map[string]int{}
	for _, a := range r.Anomalies {
		m[a.Kind]++
	}
	return m
}

// expect fails unless r has exactly the anomaly kinds in want (kind -> count).
func expect(t *testing.T, r Result, want map[string]int) {
	t.Helper()
	got := kinds(r)
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: got %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %d %s: %+v", n, k, r.Anomalies)
		}
	}
}

func TestCleanHistoryPasses(t *testing.T) {
	h := clean(3, 50)
	// Unknown and failed writes never read are fine; so is a consumer that
	// re-reads after a reset (a rebalance).
	i := h.begin("prod-0", "main", 0, "maybe")
	h.finish(i, Unknown, -1, fmt.Errorf("timeout"))
	i = h.begin("prod-0", "main", 1, "no")
	h.finish(i, Failed, -1, fmt.Errorf("rejected"))
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Reset: true})
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Offset: 10, Value: "p0-10"})
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Offset: 11, Value: "p0-11"})
	expect(t, Check(h), map[string]int{})
}

func TestLostWrite(t *testing.T) {
	h := clean(2, 20)
	// Offset 5 of partition 1 now holds another value everywhere it was read:
	// the acknowledged value is lost (and the offset inconsistent with its ack).
	h.Final[1][5].Value = "other"
	var reads []Read
	for _, r := range h.Reads {
		if r.Partition == 1 && r.Offset == 5 {
			r.Value = "other"
		}
		reads = append(reads, r)
	}
	h.Reads = reads
	r := Check(h)
	expect(t, r, map[string]int{LostWrite: 1, InconsistentOffsets: 1, AckedOffsetMismatch: 0})
	for _, a := range r.Anomalies {
		if a.Kind == LostWrite && (a.Partition != 1 || a.Offset != 5 || a.Value != "p1-5") {
			t.Errorf("wrong lost write: %+v", a)
		}
	}
}

func TestLostWriteMissingFromLog(t *testing.T) {
	// The log simply lacks offsets 7..8 (truncated and rewritten by nobody):
	// acknowledged below the highest read offset and never read.
	h := clean(1, 20)
	h.Final[0] = append(append([]Rec{}, h.Final[0][:7]...), h.Final[0][9:]...)
	var reads []Read
	for _, r := range h.Reads {
		if r.Offset != 7 && r.Offset != 8 {
			reads = append(reads, r)
		}
	}
	h.Reads = reads
	// The group consumer jumped from 6 to 9, but 7 and 8 are known only from
	// acks: that is a skip too.
	expect(t, Check(h), map[string]int{LostWrite: 2, PollSkip: 2})
}

func TestUnseen(t *testing.T) {
	h := clean(1, 10)
	i := h.begin("prod-0", "main", 0, "tail")
	h.finish(i, OK, 10, nil)
	expect(t, Check(h), map[string]int{Unseen: 1})
}

func TestDuplicate(t *testing.T) {
	h := clean(1, 10)
	// A retried produce appended p0-3 again at offset 10.
	h.Final[0] = append(h.Final[0], Rec{Offset: 10, Value: "p0-3"})
	expect(t, Check(h), map[string]int{Duplicate: 1})
}

func TestInconsistentOffsetsAcrossReads(t *testing.T) {
	h := clean(1, 10)
	// A consumer saw a different value at offset 4 than the final read did
	// (a truncated-and-rewritten tail); the original value is not lost
	// because that consumer read it.
	h.Reads = append(h.Reads, Read{Consumer: "assigned", Partition: 0, Offset: 4, Value: "ghost"})
	expect(t, Check(h), map[string]int{InconsistentOffsets: 1})
}

func TestAckedOffsetMismatch(t *testing.T) {
	h := clean(1, 10)
	// The producer was told offset 20, the value sits at offset 3.
	h.Writes[3].Offset = 20
	expect(t, Check(h), map[string]int{AckedOffsetMismatch: 1})
}

func TestNonMonotonicPoll(t *testing.T) {
	h := clean(1, 10)
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Offset: 2, Value: "p0-2"})
	expect(t, Check(h), map[string]int{NonMonotonicPoll: 1})
}

func TestPollSkip(t *testing.T) {
	h := clean(1, 10)
	h.Reads = append(h.Reads, Read{Consumer: "g1", Partition: 0, Offset: 1, Value: "p0-1"})
	h.Reads = append(h.Reads, Read{Consumer: "g1", Partition: 0, Offset: 5, Value: "p0-5"})
	expect(t, Check(h), map[string]int{PollSkip: 1})
}

func TestResetAllowsRewind(t *testing.T) {
	h := clean(1, 10)
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Reset: true})
	h.Reads = append(h.Reads, Read{Consumer: "g0", Partition: 0, Offset: 5, Value: "p0-5"})
	expect(t, Check(h), map[string]int{})
}

func TestControlClassDoesNotFail(t *testing.T) {
	h := clean(1, 10)
	i := h.begin("control", "control", 0, "c-1")
	h.finish(i, OK, 3, nil) // acked at 3, but p0-3 is there
	r := Check(h)
	if len(r.Anomalies) == 0 {
		t.Fatal("the control producer's lost write was not detected")
	}
	if f := r.Failing(); len(f) != 0 {
		t.Errorf("control anomalies fail the run: %+v", f)
	}
	if r.Count(LostWrite, "control") != 1 {
		t.Errorf("want one control lost write, got %+v", r.Anomalies)
	}
}

func TestLostAfterBeingRead(t *testing.T) {
	// A consumer read p0-8 and p0-9, then the log lost its tail (end offset
	// 8) and nobody wrote there again: lost, though once seen.
	h := clean(1, 10)
	h.Final[0] = h.Final[0][:8]
	h.FinalEnd[0] = 8
	expect(t, Check(h), map[string]int{LostWrite: 2})
	// Unless the final read of that partition did not finish.
	h.FinalIncomplete = []int32{0}
	expect(t, Check(h), map[string]int{})
}
