package broker

// AddPartitionsToTxn, v0..5. v0-3 come from transactional producers: one
// transaction, its partitions added to it (the coordinator writes Ongoing).
// Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION and the rest
// OPERATION_NOT_ATTEMPTED, as Kafka answers. v4+ is the batched form
// partition leaders send (KIP-890): per transaction, VerifyOnly asks
// whether the partitions are in the ongoing transaction (part 1; a
// partition that is not gets TRANSACTION_ABORTABLE), and otherwise (v5,
// part 2) adds them on behalf of a transaction-version-2 producer. v0-1
// get INVALID_PRODUCER_EPOCH where later versions get PRODUCER_FENCED
// (KIP-588).

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/txn"
)

func (b *Broker) handleAddPartitionsToTxn(_ context.Context, r *request) {
	req := r.body.(*kmsg.AddPartitionsToTxnRequest)
	resp := kmsg.NewPtrAddPartitionsToTxnResponse()
	if r.version < 4 {
		var topics []kmsg.AddPartitionsToTxnRequestTransactionTopic
		for _, t := range req.Topics {
			topics = append(topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
		tx := kmsg.AddPartitionsToTxnRequestTransaction{TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Topics: topics}
		b.addPartitionsToTxn(r.version, tx, func(res kmsg.AddPartitionsToTxnResponseTransaction) {
			for _, t := range res.Topics {
				rt := kmsg.AddPartitionsToTxnResponseTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p.Partition, ErrorCode: p.ErrorCode})
				}
				resp.Topics = append(resp.Topics, rt)
			}
			r.respond(resp)
		})
		return
	}
	if len(req.Transactions) == 0 {
		r.respond(resp)
		return
	}
	var (
		mu   sync.Mutex
		left = len(req.Transactions)
	)
	resp.Transactions = make([]kmsg.AddPartitionsToTxnResponseTransaction, len(req.Transactions))
	for i, tx := range req.Transactions {
		b.addPartitionsToTxn(r.version, tx, func(res kmsg.AddPartitionsToTxnResponseTransaction) {
			mu.Lock()
			resp.Transactions[i] = res
			left--
			last := left == 0
			mu.Unlock()
			if last {
				r.respond(resp)
			}
		})
	}
}

// addPartitionsToTxn serves one transaction of the request.
func (b *Broker) addPartitionsToTxn(version int16, tx kmsg.AddPartitionsToTxnRequestTransaction, done func(kmsg.AddPartitionsToTxnResponseTransaction)) {
	res := kmsg.AddPartitionsToTxnResponseTransaction{TransactionalID: tx.TransactionalID}
	var parts []txn.TopicPartition
	img := b.image()
	unknown := map[txn.TopicPartition]bool{}
	for _, t := range tx.Topics {
		meta := img.Topics[t.Topic]
		for _, p := range t.Partitions {
			tp := txn.TopicPartition{Topic: t.Topic, Partition: p}
			parts = append(parts, tp)
			if meta == nil || p < 0 || int(p) >= len(meta.Partitions) {
				unknown[tp] = true
			}
		}
	}
	answer := func(code func(i int, tp txn.TopicPartition) int16) {
		idx := map[string]int{}
		for i, tp := range parts {
			j, ok := idx[tp.Topic]
			if !ok {
				j = len(res.Topics)
				idx[tp.Topic] = j
				res.Topics = append(res.Topics, kmsg.AddPartitionsToTxnResponseTransactionTopic{Topic: tp.Topic})
			}
			res.Topics[j].Partitions = append(res.Topics[j].Partitions, kmsg.AddPartitionsToTxnResponseTransactionTopicPartition{Partition: tp.Partition, ErrorCode: code(i, tp)})
		}
		done(res)
	}
	all := func(c int16) { answer(func(int, txn.TopicPartition) int16 { return c }) }
	switch {
	case b.opts.Txns == nil:
		all(kerr.TransactionalIDAuthorizationFailed.Code)
		return
	case len(unknown) > 0:
		answer(func(_ int, tp txn.TopicPartition) int16 {
			if unknown[tp] {
				return kerr.UnknownTopicOrPartition.Code
			}
			return kerr.OperationNotAttempted.Code
		})
		return
	}
	if tx.VerifyOnly {
		b.opts.Txns.VerifyPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts, func(errs []error, err error) {
			if err != nil {
				all(errorCode(err))
				return
			}
			answer(func(i int, _ txn.TopicPartition) int16 { return errorCode(errs[i]) })
		})
		return
	}
	tv := int16(0)
	if version >= 5 {
		tv = 2
	}
	b.opts.Txns.AddPartitions(tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, parts, tv, func(err error) {
		if err != nil {
			b.log.Debug("add partitions to transaction", "transactional_id", tx.TransactionalID, "err", err)
		}
		all(fencedCode(err, version, 2))
	})
}
