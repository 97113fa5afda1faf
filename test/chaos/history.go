package main

import (
	"sync"
	"time"
)

// Outcome is what a client learned about one operation.
type Outcome string

const (
	OK      Outcome = "ok"      // acknowledged: the offset is known
	Failed  Outcome = "failed"  // definitely not written
	Unknown Outcome = "unknown" // may or may not have been written (timeouts, lost connections)
	Pending Outcome = "pending" // still in flight (never left in a finished history)
)

// Write is one produce operation.
type Write struct {
	Op        int     `json:"op"`
	Producer  string  `json:"producer"`
	Class     string  `json:"class"` // "main" (the --acks producers) or "control" (acks=1)
	Partition int32   `json:"partition"`
	Value     string  `json:"value"`
	Outcome   Outcome `json:"outcome"`
	Offset    int64   `json:"offset"` // -1 unless ok
	Err       string  `json:"err,omitempty"`
	StartMs   int64   `json:"start_ms"`
	EndMs     int64   `json:"end_ms"`
}

// Read is one record a consumer polled, or (Reset) a point where the
// consumer's position on the partition was legitimately reset (an
// assignment, a revocation), after which order is not compared with what
// came before.
type Read struct {
	Consumer  string `json:"consumer"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value,omitempty"`
	Reset     bool   `json:"reset,omitempty"`
	AtMs      int64  `json:"at_ms"`
}

// Rec is a record at an offset.
type Rec struct {
	Offset int64  `json:"offset"`
	Value  string `json:"value"`
}

// History is everything a schedule's clients did and saw.
type History struct {
	mu    sync.Mutex
	start time.Time

	Writes []Write `json:"writes"`
	Reads  []Read  `json:"reads"`
	// Final is the read of every partition from the start after healing,
	// in offset order; FinalEnd is each partition's end offset then.
	Final    map[int32][]Rec `json:"final"`
	FinalEnd map[int32]int64 `json:"final_end"`
	// FinalIncomplete lists partitions the final read could not finish.
	FinalIncomplete []int32 `json:"final_incomplete,omitempty"`
	// ConsumerErrors counts fetch errors the consumers reported.
	ConsumerErrors int `json:"consumer_errors"`
	// Txn is the transactional workload's history (--txn), if any.
	Txn *TxnHistory `json:"txn,omitempty"`
}

func newHistory() *History {
	return &History{start: time.Now(), Final: map[int32][]Rec{}, FinalEnd: map[int32]int64{}}
}

func (h *History) now() int64 { return time.Since(h.start).Milliseconds() }

// begin records a write in flight and returns its index.
func (h *History) begin(producer, class string, p int32, value string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := len(h.Writes)
	h.Writes = append(h.Writes, Write{Op: i, Producer: producer, Class: class, Partition: p, Value: value, Outcome: Pending, Offset: -1, StartMs: h.now()})
	return i
}

func (h *History) finish(i int, o Outcome, offset int64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := &h.Writes[i]
	w.Outcome, w.Offset, w.EndMs = o, offset, h.now()
	if err != nil {
		w.Err = err.Error()
	}
}

func (h *History) read(r Read) {
	h.mu.Lock()
	r.AtMs = h.now()
	h.Reads = append(h.Reads, r)
	h.mu.Unlock()
}

func (h *History) consumerError() {
	h.mu.Lock()
	h.ConsumerErrors++
	h.mu.Unlock()
}

// maxAcked is, per partition, the highest offset acknowledged to a
// producer of class.
func (h *History) maxAcked(class string) map[int32]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[int32]int64{}
	for _, w := range h.Writes {
		if w.Class != class || w.Outcome != OK {
			continue
		}
		if cur, ok := out[w.Partition]; !ok || w.Offset > cur {
			out[w.Partition] = w.Offset
		}
	}
	return out
}

// settle turns writes still pending into unknown (the client gave up on them).
func (h *History) settle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.Writes {
		if h.Writes[i].Outcome == Pending {
			h.Writes[i].Outcome = Unknown
			h.Writes[i].EndMs = h.now()
		}
	}
}

// counts returns writes by outcome, how many unknown writes were read
// somewhere (they did land), and the number of polled records.
func (h *History) counts() (ok, failed, unknown, landed, reads int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range h.Reads {
		if !r.Reset {
			reads++
			seen[r.Value] = true
		}
	}
	for _, recs := range h.Final {
		for _, r := range recs {
			seen[r.Value] = true
		}
	}
	for _, w := range h.Writes {
		switch w.Outcome {
		case OK:
			ok++
		case Failed:
			failed++
		default:
			unknown++
			if seen[w.Value] {
				landed++
			}
		}
	}
	return
}
