package group

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stratalog/strata/internal/record"
)

// marker appends a control batch of producer pid, as the partition writes
// WriteTxnMarkers.
func (f *fixture) marker(pid int64, epoch int16, commit bool) {
	f.t.Helper()
	key := binary.BigEndian.AppendUint16(nil, 0)
	typ := uint16(0)
	if commit {
		typ = 1
	}
	key = binary.BigEndian.AppendUint16(key, typ)
	val := binary.BigEndian.AppendUint16(nil, 0)
	val = binary.BigEndian.AppendUint32(val, 0)
	opts := record.NewBatchOptions(record.CodecNone)
	opts.ProducerID, opts.ProducerEpoch, opts.Transactional, opts.Control = pid, epoch, true, true
	b, err := record.Build(nil, opts, f.clk.now.UnixMilli(), []record.Record{{Key: key, Value: val}})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.log.Append(b); err != nil {
		f.t.Fatal(err)
	}
	f.c.OnTxnMarker(0, pid, epoch, commit, int64(len(f.log.batches)))
}

func (f *fixture) offset(tp string) (int64, bool) {
	f.t.Helper()
	offs, err := f.c.Offsets("g")
	if err != nil {
		f.t.Fatal(err)
	}
	o, ok := offs[tp][0]
	return o.Offset, ok
}

func (f *fixture) txnCommit(pid int64, off int64) {
	f.t.Helper()
	errs, err := f.c.CommitTxn(TxnCommitRequest{TransactionalID: "tx", Group: "g", ProducerID: pid, ProducerEpoch: 0, Generation: -1,
		Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: off, LeaderEpoch: -1}}})
	if err != nil || errs[0] != nil {
		f.t.Fatalf("txn commit: %v %v", err, errs)
	}
}

func TestTxnOffsetsPendingUntilMarker(t *testing.T) {
	f := newFixture(t, 0)
	f.txnCommit(7, 10)
	if _, ok := f.offset("t"); ok {
		t.Fatal("a transactional commit is visible before its marker")
	}
	if p, _ := f.c.PendingTxnOffsets("g", []TopicPartition{{"t", 0}, {"t", 1}}); !p[0] || p[1] {
		t.Fatalf("pending = %v, want [true false]", p)
	}
	f.marker(7, 0, true)
	if o, ok := f.offset("t"); !ok || o != 10 {
		t.Fatalf("after commit marker: %d %v, want 10", o, ok)
	}
	// An aborted transaction's offsets are dropped.
	f.txnCommit(8, 20)
	f.marker(8, 0, false)
	if o, _ := f.offset("t"); o != 10 {
		t.Fatalf("after abort marker: %d, want 10", o)
	}
	// A plain commit after the transactional one wins over it.
	f.txnCommit(9, 30)
	if errs, err := f.c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 40, LeaderEpoch: -1}}}); err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	f.marker(9, 0, true)
	if o, _ := f.offset("t"); o != 40 {
		t.Fatalf("later plain commit lost to an earlier transactional one: %d", o)
	}
	// One more pending at the end; a reload replays markers the same way.
	f.txnCommit(11, 50)
	f.c = f.coordinator(0)
	if o, _ := f.offset("t"); o != 40 {
		t.Fatalf("after reload: %d, want 40", o)
	}
	if p, _ := f.c.PendingTxnOffsets("g", []TopicPartition{{"t", 0}}); !p[0] {
		t.Fatal("pending offsets lost by the reload")
	}
	f.marker(11, 0, true)
	if o, _ := f.offset("t"); o != 50 {
		t.Fatalf("after reload and commit: %d, want 50", o)
	}
}

func TestTxnOffsetCommitMemberChecks(t *testing.T) {
	f := newFixture(t, 0)
	j := f.join(joinReq("", "range"))
	if j.res == nil || j.res.Err != nil {
		t.Fatalf("join: %+v", j.res)
	}
	member, gen := j.res.MemberID, j.res.Generation
	req := TxnCommitRequest{Group: "g", ProducerID: 1, Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 1}}}
	for _, c := range []struct {
		member string
		gen    int32
		want   error
	}{
		{"nobody", gen, ErrUnknownMember},
		{member, gen + 1, ErrIllegalGeneration},
		{member, gen, nil},
		{"", -1, nil}, // before KIP-447: no checks
	} {
		req.MemberID, req.Generation = c.member, c.gen
		_, err := f.c.CommitTxn(req)
		if !errors.Is(err, c.want) {
			t.Errorf("member %q generation %d: %v, want %v", c.member, c.gen, err, c.want)
		}
	}
}
