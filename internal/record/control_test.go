package record

import "testing"

func TestTxnMarkerRoundTrip(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b := BuildTxnMarker(42, 7, 3, commit, 1000)
		h, err := Validate(b)
		if err != nil || !h.IsControl() || !h.IsTransactional() || h.ProducerID != 42 || h.ProducerEpoch != 7 || h.BaseSequence != -1 {
			t.Fatalf("marker header %+v: %v", h, err)
		}
		m, marker, err := ParseTxnMarker(b)
		if err != nil || !marker || m.Commit != commit || m.CoordinatorEpoch != 3 {
			t.Fatalf("ParseTxnMarker = %+v %v %v, want commit=%v epoch 3", m, marker, err, commit)
		}
	}
	// Kafka's other control records (KRaft's) are not markers.
	opts := NewBatchOptions(CodecNone)
	opts.Control = true
	b, err := Build(nil, opts, 0, []Record{{Key: []byte{0, 0, 0, 3}, Value: []byte{0, 0}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, marker, err := ParseTxnMarker(b); err != nil || marker {
		t.Fatalf("leader change record read as a marker (%v)", err)
	}
}
