package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTxnOffsetsDurableAcrossRestart: one producer commits offsets in three
// transactions of the same epoch (TxnOffsetCommit, then EndTxn); each is
// its own transactional batch on __consumer_offsets, in sequence, so none
// is taken for a duplicate of the one before; after a restart the group
// has the last committed offset, replayed from the log and its markers.
// An aborted fourth one leaves it.
func TestTxnOffsetsDurableAcrossRestart(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groupOverrides)
	if _, err := n.admin().CreateTopic(ctxT(t), 1, 1, nil, "src"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	check := func(what string, code int16) {
		t.Helper()
		if code != 0 {
			t.Fatalf("%s: %v", what, kerr.ErrorForCode(code))
		}
	}
	id := "offsets-tx"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 30000
	var ir *kmsg.InitProducerIDResponse
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.SetVersion(4)
		fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{id}
		c.roundTrip(fc)
		ir = c.roundTrip(init).(*kmsg.InitProducerIDResponse)
		if ir.ErrorCode == 0 || time.Now().After(end) {
			break
		}
	}
	check("init", ir.ErrorCode)
	txn := func(offset int64, commit bool) {
		t.Helper()
		ao := kmsg.NewPtrAddOffsetsToTxnRequest()
		ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = id, ir.ProducerID, ir.ProducerEpoch, "og"
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			r := c.roundTrip(ao).(*kmsg.AddOffsetsToTxnResponse)
			if r.ErrorCode != kerr.ConcurrentTransactions.Code || time.Now().After(end) {
				check("add offsets", r.ErrorCode)
				break
			}
		}
		oc := kmsg.NewPtrTxnOffsetCommitRequest()
		oc.SetVersion(3)
		oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch, oc.Generation = id, "og", ir.ProducerID, ir.ProducerEpoch, -1
		oc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "src", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
		check("txn offset commit", c.roundTrip(oc).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode)
		end := kmsg.NewPtrEndTxnRequest()
		end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, ir.ProducerID, ir.ProducerEpoch, commit
		check("end", c.roundTrip(end).(*kmsg.EndTxnResponse).ErrorCode)
	}
	fetch := func(c *rawConn) int64 {
		t.Helper()
		of := kmsg.NewPtrOffsetFetchRequest()
		of.SetVersion(7)
		of.Group, of.RequireStable = "og", true
		of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src", Partitions: []int32{0}}}
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			r := c.roundTrip(of).(*kmsg.OffsetFetchResponse)
			if r.ErrorCode == 0 && len(r.Topics) == 1 && r.Topics[0].Partitions[0].ErrorCode == 0 {
				return r.Topics[0].Partitions[0].Offset
			}
			if time.Now().After(end) {
				t.Fatalf("offset fetch: %+v", r)
			}
		}
	}
	txn(10, true)
	txn(20, true)
	txn(30, true)
	txn(40, false)
	if got := fetch(c); got != 30 {
		t.Fatalf("committed offset %d, want 30", got)
	}
	n.restart()
	if got := fetch(n.raw()); got != 30 {
		t.Fatalf("committed offset after a restart %d, want 30", got)
	}
}

// TestTxnOffsetCommitV5AddsPartition (KIP-890 part 2): a transaction
// version 2 producer sends no AddOffsetsToTxn; TxnOffsetCommit v5 has the
// group coordinator add the group's __consumer_offsets partition to the
// transaction, so the EndTxn v5 markers reach it: the committed
// transaction's offset becomes stable, the aborted one's is dropped.
// Without the add no marker is written there and require_stable fetches
// answer UNSTABLE_OFFSET_COMMIT for ever.
func TestTxnOffsetCommitV5AddsPartition(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groupOverrides)
	if _, err := n.admin().CreateTopic(ctxT(t), 1, 1, nil, "src5"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	id, group := "offsets-tx-v5", "og5"
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 30000
	var ir *kmsg.InitProducerIDResponse
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.SetVersion(4)
		fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{id}
		c.roundTrip(fc)
		ir = c.roundTrip(init).(*kmsg.InitProducerIDResponse)
		if ir.ErrorCode == 0 || time.Now().After(end) {
			break
		}
	}
	if ir.ErrorCode != 0 {
		t.Fatalf("init: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	txn := func(offset int64, commit bool) {
		t.Helper()
		oc := kmsg.NewPtrTxnOffsetCommitRequest()
		oc.SetVersion(5)
		oc.TransactionalID, oc.Group, oc.ProducerID, oc.ProducerEpoch, oc.Generation = id, group, pid, epoch, -1
		oc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "src5", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
		// COORDINATOR_NOT_AVAILABLE while the previous transaction
		// completes (CONCURRENT_TRANSACTIONS at the coordinator).
		for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			code := c.roundTrip(oc).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
			if code == 0 {
				break
			}
			if code != kerr.CoordinatorNotAvailable.Code || time.Now().After(end) {
				t.Fatalf("txn offset commit v5: %v", kerr.ErrorForCode(code))
			}
		}
		er := kmsg.NewPtrEndTxnRequest()
		er.SetVersion(5)
		er.TransactionalID, er.ProducerID, er.ProducerEpoch, er.Commit = id, pid, epoch, commit
		resp := c.roundTrip(er).(*kmsg.EndTxnResponse)
		if resp.ErrorCode != 0 {
			t.Fatalf("end v5: %v", kerr.ErrorForCode(resp.ErrorCode))
		}
		if resp.ProducerEpoch != epoch+1 {
			t.Fatalf("EndTxn v5 answered epoch %d, want %d", resp.ProducerEpoch, epoch+1)
		}
		pid, epoch = resp.ProducerID, resp.ProducerEpoch
	}
	txn(10, true)
	txn(20, false)
	of := kmsg.NewPtrOffsetFetchRequest()
	of.SetVersion(7)
	of.Group, of.RequireStable = group, true
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src5", Partitions: []int32{0}}}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := c.roundTrip(of).(*kmsg.OffsetFetchResponse)
		if r.ErrorCode == 0 && len(r.Topics) == 1 && r.Topics[0].Partitions[0].ErrorCode == 0 {
			if got := r.Topics[0].Partitions[0].Offset; got != 10 {
				t.Fatalf("committed offset %d, want 10", got)
			}
			return
		}
		if time.Now().After(end) {
			t.Fatalf("offset fetch never stable: %+v", r)
		}
	}
}
