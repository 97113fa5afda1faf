package main

import (
	"strings"
	"testing"
)

func txnHist(txns []Txn, reads []Read, final map[int32][]Rec) *TxnHistory {
	h := newTxnHistory("t")
	h.Txns, h.Reads, h.Final = txns, reads, final
	for p := range final {
		h.FinalEnd[p] = int64(len(final[p]))
	}
	return h
}

func txnKinds(as []Anomaly) string {
	var ks []string
	for _, a := range as {
		ks = append(ks, a.Kind)
	}
	return strings.Join(ks, ",")
}

func TestCheckTxn(t *testing.T) {
	committed := Txn{ID: 1, Producer: "tx0", Outcome: TxnCommitted, Values: []TxnValue{{0, "a", 0}, {1, "b", 0}}}
	aborted := Txn{ID: 2, Producer: "tx0", Outcome: TxnAborted, Values: []TxnValue{{0, "c", 1}}}
	unknown := Txn{ID: 3, Producer: "tx0", Outcome: TxnUnknown, Values: []TxnValue{{0, "d", 2}, {1, "e", 1}}}
	for _, tc := range []struct {
		name  string
		h     *TxnHistory
		stuck map[int32]int64
		want  string
	}{
		{"clean", txnHist([]Txn{committed, aborted, unknown},
			[]Read{{Partition: 0, Offset: 0, Value: "a"}, {Partition: 0, Offset: 2, Value: "d"}},
			map[int32][]Rec{0: {{0, "a"}, {2, "d"}}, 1: {{0, "b"}, {1, "e"}}}), nil, ""},
		{"unknown, not committed", txnHist([]Txn{committed, unknown},
			nil, map[int32][]Rec{0: {{0, "a"}}, 1: {{0, "b"}}}), nil, ""},
		{"aborted read by the reader", txnHist([]Txn{committed, aborted},
			[]Read{{Partition: 0, Offset: 1, Value: "c"}},
			map[int32][]Rec{0: {{0, "a"}}, 1: {{0, "b"}}}), nil, AbortedRead},
		{"aborted read in the final read", txnHist([]Txn{committed, aborted},
			nil, map[int32][]Rec{0: {{0, "a"}, {1, "c"}}, 1: {{0, "b"}}}), nil, AbortedRead},
		{"lost committed", txnHist([]Txn{committed},
			nil, map[int32][]Rec{0: {{0, "a"}}, 1: {}}), nil, LostCommitted},
		{"non-atomic", txnHist([]Txn{unknown},
			nil, map[int32][]Rec{0: {{2, "d"}}, 1: {}}), nil, NonAtomic},
		{"duplicate", txnHist([]Txn{committed},
			nil, map[int32][]Rec{0: {{0, "a"}, {5, "a"}}, 1: {{0, "b"}}}), nil, Duplicate},
		{"two values at one offset", txnHist([]Txn{committed, unknown},
			[]Read{{Partition: 0, Offset: 0, Value: "d"}}, map[int32][]Rec{0: {{0, "a"}}, 1: {{0, "b"}}}), nil,
			AckedOffsetMismatch + "," + InconsistentOffsets},
		{"reader goes back", txnHist([]Txn{committed, unknown},
			[]Read{{Partition: 0, Offset: 2, Value: "d"}, {Partition: 0, Offset: 0, Value: "a"}},
			map[int32][]Rec{0: {{0, "a"}, {2, "d"}}, 1: {{0, "b"}, {1, "e"}}}), nil, NonMonotonicPoll},
		{"hanging: no verdict on its partition", txnHist([]Txn{committed},
			nil, map[int32][]Rec{0: {{0, "a"}}, 1: {}}), map[int32]int64{1: 0}, HangingTxn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.h.FinalStuck = tc.stuck
			if got := txnKinds(CheckTxn(tc.h)); got != tc.want {
				t.Fatalf("anomalies %q, want %q: %+v", got, tc.want, CheckTxn(tc.h))
			}
		})
	}
}
