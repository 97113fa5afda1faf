//go:build !kfake

package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// openTxn starts a transaction of id on topic's partition 0 with raw
// requests (InitProducerId, AddPartitionsToTxn), as a producer would.
func openTxn(t *testing.T, addr, id, topic string) (int64, int16) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 60000
	var ir *kmsg.InitProducerIDResponse
	waitFor(t, "InitProducerId to succeed", func() bool {
		r, err := init.RequestWith(ctx, cl)
		ir = r
		return err == nil && r.ErrorCode == 0
	})
	add := kmsg.NewPtrAddPartitionsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch = id, ir.ProducerID, ir.ProducerEpoch
	add.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: topic, Partitions: []int32{0}}}
	ar, err := add.RequestWith(ctx, cl)
	if err != nil || ar.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("add partitions: %v %+v", err, ar)
	}
	return ir.ProducerID, ir.ProducerEpoch
}

// TestTxnListDescribe runs strata txn list and describe against an open
// transaction.
func TestTxnListDescribe(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "tx-out", "-p", "1")
	pid, _ := openTxn(t, addr, "app-1", "tx-out")

	text := mustRun(t, addr, "", "txn", "list")
	if !strings.Contains(text, "TRANSACTIONAL-ID") || !strings.Contains(text, "app-1") || !strings.Contains(text, "Ongoing") {
		t.Fatalf("txn list:\n%s", text)
	}
	var listed []struct {
		TransactionalID string `json:"transactional_id"`
		ProducerID      int64  `json:"producer_id"`
		State           string `json:"state"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "txn", "list", "--json", "--state", "Ongoing")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].TransactionalID != "app-1" || listed[0].ProducerID != pid {
		t.Fatalf("txn list --json: %+v", listed)
	}
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "txn", "list", "--json", "--state", "CompleteCommit")), &listed); err != nil || len(listed) != 0 {
		t.Fatalf("txn list --state CompleteCommit: %+v %v", listed, err)
	}

	var described []struct {
		TransactionalID string   `json:"transactional_id"`
		State           string   `json:"state"`
		ProducerID      int64    `json:"producer_id"`
		TimeoutMs       int32    `json:"timeout_ms"`
		Partitions      []string `json:"partitions"`
		Error           string   `json:"error"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "txn", "describe", "app-1", "--json")), &described); err != nil {
		t.Fatal(err)
	}
	if d := described[0]; d.State != "Ongoing" || d.ProducerID != pid || d.TimeoutMs != 60000 || len(d.Partitions) != 1 || d.Partitions[0] != "tx-out-0" {
		t.Fatalf("txn describe: %+v", d)
	}
	text = mustRun(t, addr, "", "txn", "describe", "app-1")
	if !strings.Contains(text, "tx-out-0") || !strings.Contains(text, "1m0s") {
		t.Fatalf("txn describe:\n%s", text)
	}
	r := run(t, addr, "", "txn", "describe", "nobody")
	if r.err == nil || !strings.Contains(r.stdout, "TRANSACTIONAL_ID_NOT_FOUND") {
		t.Fatalf("describe of an unknown id: err %v, stdout:\n%s", r.err, r.stdout)
	}
	if r := run(t, addr, "", "txn", "abort", "--topic", "tx-out", "--producer-id", "1"); r.err == nil || !strings.Contains(r.err.Error(), "--producer-epoch") {
		t.Fatalf("abort with partial flags: %v", r.err)
	}
}

// TestTxnDescribeProducersAndAbort: a transaction left open on a partition
// holds its last stable offset; strata txn describe-producers shows it with
// its start offset, and strata txn abort --start-offset writes the abort
// marker that lets the last stable offset move on.
func TestTxnDescribeProducersAndAbort(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "hang", "-p", "1")
	mustRun(t, addr, "a\nb\n", "produce", "hang", "-p", "0")
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("hanging"), kgo.DefaultProduceTopic("hang"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The producer goes away without ending its transaction.

	var producers []struct {
		ProducerID            int64 `json:"producer_id"`
		ProducerEpoch         int16 `json:"producer_epoch"`
		CurrentTxnStartOffset int64 `json:"current_txn_start_offset"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "txn", "describe-producers", "--topic", "hang", "--partition", "0", "--json")), &producers); err != nil {
		t.Fatal(err)
	}
	open := 0
	for _, p := range producers {
		if p.CurrentTxnStartOffset == 2 {
			open++
		} else if p.CurrentTxnStartOffset != -1 {
			t.Errorf("producer %d has a transaction open at %d", p.ProducerID, p.CurrentTxnStartOffset)
		}
	}
	if open != 1 {
		t.Fatalf("describe-producers: %+v, want one producer with a transaction open at 2 (and the idempotent one of strata produce)", producers)
	}
	text := mustRun(t, addr, "", "txn", "describe-producers", "--topic", "hang", "--partition", "0")
	if !strings.Contains(text, "TXN-START-OFFSET") || !strings.Contains(text, "hang-0, leader 1") {
		t.Fatalf("describe-producers:\n%s", text)
	}
	stable := func() int64 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		req := kmsg.NewPtrListOffsetsRequest()
		req.IsolationLevel = 1
		req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "hang", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0].Offset
	}
	if lso := stable(); lso != 2 {
		t.Fatalf("last stable offset %d with the transaction open, want 2", lso)
	}
	if r := run(t, addr, "", "txn", "abort", "--topic", "hang", "--partition", "0", "--start-offset", "7"); r.err == nil {
		t.Fatal("abort of a transaction that does not start at 7 succeeded")
	}
	out := mustRun(t, addr, "", "txn", "abort", "--topic", "hang", "--partition", "0", "--start-offset", "2")
	if !strings.Contains(out, "aborted the transaction of producer") {
		t.Fatalf("abort: %s", out)
	}
	if lso := stable(); lso != 4 { // the open record and the abort marker
		t.Fatalf("last stable offset %d after the abort, want 4", lso)
	}
}
