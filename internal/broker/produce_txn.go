package broker

// The transactional side of Produce (produce.go appends): a transactional
// batch needs the request's TransactionalID (else
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka answers), and, when the
// broker has a TxnVerifier, the transaction coordinator's word that the
// partition is in the producer's transaction before the batch may start a
// transaction there (KIP-890 part 1: Kafka's AddPartitionsToTxn with
// VerifyOnly). The verification is a round trip, so a request that needs
// one is served off the connection's reader; to keep a producer's
// pipelined batches in order, every later produce request of the
// connection also goes off the reader and appends after it.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
)

// TxnVerifier asks a transaction coordinator whether topic-partition was
// added to the producer's ongoing transaction (KIP-890 part 1). A nil
// error means it was; an error with a Kafka code (a *kerr.Error in its
// chain) answers the produce with that code, as Kafka does (retriable
// coordinator errors become NOT_ENOUGH_REPLICAS, PRODUCER_FENCED
// INVALID_PRODUCER_EPOCH: see verifyError), and any other error with
// INVALID_TXN_STATE.
type TxnVerifier interface {
	VerifyPartition(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, topic string, partition int32) error
}

// TxnPartitionAdder is optionally implemented by a TxnVerifier for
// transaction version 2 (KIP-890 part 2): a client that sends Produce v12+
// no longer adds partitions itself (AddPartitionsToTxn), the partition
// leader does, so for those requests the broker calls
// AddPartitionToTxn (AddPartitionsToTxn without VerifyOnly) instead of
// VerifyPartition. Its errors are mapped the same way.
type TxnPartitionAdder interface {
	AddPartitionToTxn(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, topic string, partition int32) error
}

type topicPartition struct {
	topic     string
	partition int32
}

// txnVerification is the outcome of one partition's verification: the
// guard to append with, or the error to answer.
type txnVerification struct {
	guard uint64
	err   error
}

// pendingVerification is a partition whose batch needs verifying.
type pendingVerification struct {
	tp    topicPartition
	pid   int64
	epoch int16
	guard uint64
}

// batchTransactional reports whether records starts with a v2 batch whose
// transactional attribute is set.
func batchTransactional(records []byte) bool {
	h, err := record.ParseHeader(records)
	return err == nil && h.IsTransactional()
}

// checkTxnProduce refuses a transactional batch in a request without a
// transactional id.
func (b *Broker) checkTxnProduce(req *kmsg.ProduceRequest, records []byte) error {
	if req.TransactionID == nil && batchTransactional(records) {
		return fmt.Errorf("%w: transactional batch in a produce request without a transactional id", kerr.TransactionalIDAuthorizationFailed)
	}
	return nil
}

// produceOrder chains the produce requests of a connection that are
// served off its reader: each waits for the previous one's appends.
type produceOrder struct {
	mu    sync.Mutex
	tails map[uint64]chan struct{} // per connection, the last request in flight off the reader
}

// enqueue returns, when the request must go off the reader (it needs a
// verification, or an earlier request of the connection is still off the
// reader), the channel of the request to wait for (nil if none) and its
// own, closed by done once it has appended.
func (o *produceOrder) enqueue(conn uint64, need bool) (prev, mine chan struct{}, async bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	prev = o.tails[conn]
	if prev == nil && !need {
		return nil, nil, false
	}
	if o.tails == nil {
		o.tails = make(map[uint64]chan struct{})
	}
	mine = make(chan struct{})
	o.tails[conn] = mine
	return prev, mine, true
}

func (o *produceOrder) done(conn uint64, mine chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(mine)
	if o.tails[conn] == mine {
		delete(o.tails, conn)
	}
}

// produceOrdered decides whether the request is served off the reader and
// returns the function that serves it there.
func (b *Broker) produceOrdered(r *request, req *kmsg.ProduceRequest) (func(), bool) {
	var pend []pendingVerification
	if b.opts.TxnVerifier != nil && req.TransactionID != nil {
		pend = b.verificationsNeeded(r, req)
	}
	conn := uint64(0)
	if r.conn != nil {
		conn = r.conn.ID
	}
	prev, mine, async := b.order.enqueue(conn, len(pend) > 0)
	if !async {
		return nil, false
	}
	return func() {
		if prev != nil {
			<-prev
		}
		verified := b.runVerifications(req, r.version, pend)
		resp, syncs, failed := b.produceAppend(r, req, verified)
		b.order.done(conn, mine)
		r.raw.Recycle()
		b.produceFinish(r, req, resp, syncs, failed)
	}, true
}

// verificationsNeeded finds the transactional batches that would start a
// transaction on their partition. Partitions that fail to resolve are left
// to the append, which reports their error.
func (b *Broker) verificationsNeeded(r *request, req *kmsg.ProduceRequest) []pendingVerification {
	img := b.image()
	var out []pendingVerification
	for i := range req.Topics {
		rt := &req.Topics[i]
		var t *metadata.Topic
		if r.version >= 13 {
			t = img.TopicsByID[metadata.UUID(rt.TopicID)]
		} else {
			t = img.Topics[rt.Topic]
		}
		if t == nil || internalTopic(t.Name) {
			continue
		}
		for j := range rt.Partitions {
			rec := rt.Partitions[j].Records
			if !batchTransactional(rec) {
				continue
			}
			p, err := b.partition(t.Name, rt.Partitions[j].Partition)
			if err != nil || p == nil || !p.IsLeader() {
				continue // the append answers the error
			}
			pid := int64(binary.BigEndian.Uint64(rec[43:]))
			epoch := int16(binary.BigEndian.Uint16(rec[51:]))
			if guard, needed := p.StartTxnVerification(pid, epoch); needed {
				out = append(out, pendingVerification{tp: topicPartition{t.Name, p.Index}, pid: pid, epoch: epoch, guard: guard})
			}
		}
	}
	return out
}

// runVerifications asks the coordinator about every pending partition,
// concurrently, within the request's timeout.
func (b *Broker) runVerifications(req *kmsg.ProduceRequest, version int16, pend []pendingVerification) map[topicPartition]txnVerification {
	if len(pend) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(req.TimeoutMillis, 1000))*time.Millisecond)
	defer cancel()
	out := make(map[topicPartition]txnVerification, len(pend))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, pv := range pend {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if adder, ok := b.opts.TxnVerifier.(TxnPartitionAdder); ok && version >= 12 {
				err = adder.AddPartitionToTxn(ctx, *req.TransactionID, pv.pid, pv.epoch, pv.tp.topic, pv.tp.partition)
			} else {
				err = b.opts.TxnVerifier.VerifyPartition(ctx, *req.TransactionID, pv.pid, pv.epoch, pv.tp.topic, pv.tp.partition)
			}
			if err != nil {
				b.log.Info("transactional produce not verified by the coordinator", "transactional_id", *req.TransactionID,
					"producer_id", pv.pid, "epoch", pv.epoch, "topic", pv.tp.topic, "partition", pv.tp.partition, "err", err)
				err = verifyError(err, version)
			}
			mu.Lock()
			out[pv.tp] = txnVerification{guard: pv.guard, err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// verifyError maps a verifier's error to the produce answer of a request
// of version v, as Kafka's AddPartitionsToTxnManager and ReplicaManager do:
// PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH (producers expect it
// here), TRANSACTION_ABORTABLE becomes INVALID_TXN_STATE before Produce
// v12 (older clients do not know it), retriable coordinator errors become
// NOT_ENOUGH_REPLICAS, and an error without a Kafka code INVALID_TXN_STATE.
func verifyError(err error, v int16) error {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return fmt.Errorf("%w: transaction verification: %v", kerr.InvalidTxnState, err)
	}
	switch {
	case ke == kerr.CoordinatorLoadInProgress, ke == kerr.CoordinatorNotAvailable, ke == kerr.NotCoordinator, ke == kerr.ConcurrentTransactions:
		return fmt.Errorf("%w: unable to verify the partition was added to the transaction: %v", kerr.NotEnoughReplicas, err)
	case ke == kerr.ProducerFenced:
		return fmt.Errorf("%w: transaction verification: %v", kerr.InvalidProducerEpoch, err)
	case ke == kerr.TransactionAbortable && v < 12, ke == kerr.ClusterAuthorizationFailed:
		return fmt.Errorf("%w: transaction verification: %v", kerr.InvalidTxnState, err)
	}
	return err
}
