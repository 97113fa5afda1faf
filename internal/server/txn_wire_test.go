package server

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

// TestTxnCoordinatorWire drives the transaction coordinator's APIs with raw
// requests on one node: FindCoordinator for a transactional id creates
// __transaction_state, InitProducerId fences, AddPartitionsToTxn (client
// and verify-only forms), AddOffsetsToTxn, EndTxn v4 and v5 (KIP-890 part
// 2's epoch bump), Describe/ListTransactions, and the errors of each.
func TestTxnCoordinatorWire(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", map[string]string{"transaction.state.log.num.partitions": "3", "transaction.max.timeout.ms": "60000"})
	if _, err := n.admin().CreateTopic(ctxT(t), 2, 1, nil, "out"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	check := func(what string, code int16, want error) {
		t.Helper()
		if got := kerr.ErrorForCode(code); got != want {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}

	// FindCoordinator creates the topic; the client retries until found.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(4)
	fc.CoordinatorType = 1
	fc.CoordinatorKeys = []string{"tx-a", ""}
	deadline := time.Now().Add(30 * time.Second)
	for {
		fr := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
		check("find coordinator, empty id", fr.Coordinators[1].ErrorCode, kerr.InvalidRequest)
		if fr.Coordinators[0].ErrorCode == 0 {
			if fr.Coordinators[0].NodeID != 1 {
				t.Fatalf("coordinator %d", fr.Coordinators[0].NodeID)
			}
			break
		}
		check("find coordinator before the topic", fr.Coordinators[0].ErrorCode, kerr.CoordinatorNotAvailable)
		if time.Now().After(deadline) {
			t.Fatal("__transaction_state never became available")
		}
		time.Sleep(20 * time.Millisecond)
	}

	init := func(v int16, id string, timeout int32, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.SetVersion(v)
		req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = &id, timeout, pid, epoch
		// The partition loads in the background: retry while loading.
		for end := time.Now().Add(30 * time.Second); ; {
			r := c.roundTrip(req).(*kmsg.InitProducerIDResponse)
			if (r.ErrorCode != kerr.CoordinatorLoadInProgress.Code && r.ErrorCode != kerr.NotCoordinator.Code) || time.Now().After(end) {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ir := init(4, "tx-a", 30000, -1, -1)
	check("init", ir.ErrorCode, nil)
	pid, epoch := ir.ProducerID, ir.ProducerEpoch
	check("init over transaction.max.timeout.ms", init(4, "tx-a", 60001, -1, -1).ErrorCode, kerr.InvalidTransactionTimeout)
	check("init with only a producer id", init(4, "tx-a", 30000, pid, -1).ErrorCode, kerr.InvalidRequest)

	add := func(v int16, id string, pid int64, epoch int16, topic string, parts ...int32) []int16 {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.SetVersion(v)
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, pid, epoch
		req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: parts}}
		r := c.roundTrip(req).(*kmsg.AddPartitionsToTxnResponse)
		var codes []int16
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				codes = append(codes, p.ErrorCode)
			}
		}
		return codes
	}
	check("add", add(3, "tx-a", pid, epoch, "out", 0, 1)[0], nil)
	check("add, stale epoch v3", add(3, "tx-a", pid, epoch-1, "out", 0)[0], kerr.ProducerFenced)
	check("add, stale epoch v1", add(1, "tx-a", pid, epoch-1, "out", 0)[0], kerr.InvalidProducerEpoch)
	check("add, unknown topic", add(3, "tx-a", pid, epoch, "nope", 0)[0], kerr.UnknownTopicOrPartition)

	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.SetVersion(3)
	ao.TransactionalID, ao.ProducerID, ao.ProducerEpoch, ao.Group = "tx-a", pid, epoch, "g"
	check("add offsets", c.roundTrip(ao).(*kmsg.AddOffsetsToTxnResponse).ErrorCode, nil)

	// Verify-only, as a partition leader asks (KIP-890 part 1).
	gp := group.PartitionFor("g", 50)
	vr := kmsg.NewPtrAddPartitionsToTxnRequest()
	vr.SetVersion(4)
	vr.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{{TransactionalID: "tx-a", ProducerID: pid, ProducerEpoch: epoch, VerifyOnly: true,
		Topics: []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "out", Partitions: []int32{1}}, {Topic: "__consumer_offsets", Partitions: []int32{gp, (gp + 1) % 50}}}}}
	vres := c.roundTrip(vr).(*kmsg.AddPartitionsToTxnResponse)
	var in, out int
	for _, tp := range vres.Transactions[0].Topics {
		for _, p := range tp.Partitions {
			switch p.ErrorCode {
			case 0:
				in++
			case kerr.TransactionAbortable.Code:
				out++
			default:
				t.Fatalf("verify %s-%d: %v", tp.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	if in != 2 || out != 1 { // out-1 and the group's offsets partition are in
		t.Fatalf("verify: %d in, %d not in the transaction, want 2 and 1", in, out)
	}

	desc := func(id string) kmsg.DescribeTransactionsResponseTransactionState {
		t.Helper()
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{id}
		return c.roundTrip(req).(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
	}
	if d := desc("tx-a"); d.State != "Ongoing" || d.ProducerID != pid || len(d.Topics) != 2 || d.TimeoutMillis != 30000 {
		t.Fatalf("describe: %+v", d)
	}
	check("describe unknown", desc("nope").ErrorCode, kerr.TransactionalIDNotFound)

	// A second instance fences the first: its ongoing transaction is
	// aborted first (CONCURRENT_TRANSACTIONS until the abort completes).
	check("init of a second instance", init(4, "tx-a", 30000, -1, -1).ErrorCode, kerr.ConcurrentTransactions)
	end := kmsg.NewPtrEndTxnRequest()
	end.SetVersion(4)
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = "tx-a", pid, epoch, true
	check("commit of the fenced instance", c.roundTrip(end).(*kmsg.EndTxnResponse).ErrorCode, kerr.ProducerFenced)
	if d := desc("tx-a"); d.State != "PrepareAbort" && d.State != "CompleteAbort" {
		t.Fatalf("after the fence: %+v", d)
	}

	lt := kmsg.NewPtrListTransactionsRequest()
	lt.SetVersion(1)
	lt.StateFilters = []string{"PrepareAbort", "CompleteAbort", "Bogus"}
	lr := c.roundTrip(lt).(*kmsg.ListTransactionsResponse)
	check("list", lr.ErrorCode, nil)
	if len(lr.TransactionStates) != 1 || lr.TransactionStates[0].TransactionalID != "tx-a" || len(lr.UnknownStateFilters) != 1 {
		t.Fatalf("list: %+v", lr)
	}

	// KIP-890 part 2 on another id: EndTxn v5 bumps the epoch every time.
	ir = init(5, "tx-b", 30000, -1, -1)
	check("init tx-b", ir.ErrorCode, nil)
	bp, be := ir.ProducerID, ir.ProducerEpoch
	end.SetVersion(5)
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = "tx-b", bp, be, false
	er := c.roundTrip(end).(*kmsg.EndTxnResponse)
	check("abort of an empty transaction, v5", er.ErrorCode, nil)
	if er.ProducerID != bp || er.ProducerEpoch != be+1 {
		t.Fatalf("EndTxn v5 answered %d/%d, want %d/%d", er.ProducerID, er.ProducerEpoch, bp, be+1)
	}
	// The same end retried is answered the same (once the abort
	// completed: CONCURRENT_TRANSACTIONS before, and the client retries).
	for end0 := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		er = c.roundTrip(end).(*kmsg.EndTxnResponse)
		if er.ErrorCode != kerr.ConcurrentTransactions.Code || time.Now().After(end0) {
			break
		}
	}
	check("retried abort, v5", er.ErrorCode, nil)
	if er.ProducerEpoch != be+1 {
		t.Fatalf("retried EndTxn v5 answered epoch %d, want %d", er.ProducerEpoch, be+1)
	}
	// Version 4 at the new epoch: the abort is complete (a retry is
	// fine), a commit of it is not.
	end.SetVersion(4)
	end.ProducerEpoch = be + 1
	check("completed abort again, v4", c.roundTrip(end).(*kmsg.EndTxnResponse).ErrorCode, nil)
	end.Commit = true
	check("commit of a completed abort, v4", c.roundTrip(end).(*kmsg.EndTxnResponse).ErrorCode, kerr.InvalidTxnState)
}

// TestTxnVersion2ImplicitAdd: KIP-890 part 2. A producer of transaction
// version 2 sends Produce v12 without AddPartitionsToTxn: the partition
// leader adds the partition to the transaction at the coordinator; EndTxn
// v5 commits with an epoch bump, and a read_committed consumer sees the
// record.
func TestTxnVersion2ImplicitAdd(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", map[string]string{"transaction.state.log.num.partitions": "1"})
	if _, err := n.admin().CreateTopic(ctxT(t), 1, 1, nil, "tv2"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	id := "tv2-app"
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(4)
	fc.CoordinatorType, fc.CoordinatorKeys = 1, []string{id}
	init := kmsg.NewPtrInitProducerIDRequest()
	init.SetVersion(5)
	init.TransactionalID, init.TransactionTimeoutMillis, init.ProducerID, init.ProducerEpoch = &id, 30000, -1, -1
	var ir *kmsg.InitProducerIDResponse
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c.roundTrip(fc)
		ir = c.roundTrip(init).(*kmsg.InitProducerIDResponse)
		if ir.ErrorCode == 0 || time.Now().After(end) {
			break
		}
	}
	if ir.ErrorCode != 0 {
		t.Fatalf("init: %v", kerr.ErrorForCode(ir.ErrorCode))
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.SetVersion(12)
	produce.TransactionID, produce.Acks, produce.TimeoutMillis = &id, -1, 10000
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "tv2", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0,
		Records: txnBatch(t, ir.ProducerID, ir.ProducerEpoch, 0, true, "v2-record")}}}}
	pr := c.roundTrip(produce).(*kmsg.ProduceResponse)
	if code := pr.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("produce v12 without AddPartitionsToTxn: %v", kerr.ErrorForCode(code))
	}
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{id}
	d := c.roundTrip(dt).(*kmsg.DescribeTransactionsResponse).TransactionStates[0]
	if d.State != "Ongoing" || len(d.Topics) != 1 || d.Topics[0].Topic != "tv2" {
		t.Fatalf("after the produce: %+v", d)
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.SetVersion(5)
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, ir.ProducerID, ir.ProducerEpoch, true
	er := c.roundTrip(end).(*kmsg.EndTxnResponse)
	if er.ErrorCode != 0 || er.ProducerEpoch != ir.ProducerEpoch+1 {
		t.Fatalf("EndTxn v5: %v, epoch %d", kerr.ErrorForCode(er.ErrorCode), er.ProducerEpoch)
	}
	if got := consumeTopic(t, n, "tv2", true, 1); len(got) != 1 || got[0] != "v2-record" {
		t.Fatalf("read_committed: %v", got)
	}
}
