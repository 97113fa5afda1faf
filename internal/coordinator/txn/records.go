package txn

// The __transaction_state record format, as Kafka's TransactionLog writes
// it: key version 0, TransactionLogKey{transactional id}; value version 0,
// or version 1 (flexible, with the tagged previous and next producer ids
// and the client's transaction version) for a transaction-version-2
// client: TransactionLogValue{producer id, epoch, timeout, state, the
// partitions (null when Empty), last update and start timestamps}. A nil
// value is the tombstone of an expired transactional id. replay is the one
// function that turns records into state.

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/runtime"
	"github.com/stratalog/strata/internal/record"
)

func txnKey(id string) []byte {
	k := kmsg.NewTxnMetadataKey()
	k.Version = 0
	k.TransactionalID = id
	return k.AppendTo(nil)
}

func txnValue(t *txn) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = 0
	if t.clientTxnVersion >= 2 {
		v.Version = 1
	}
	v.ProducerID = t.producerID
	v.ProducerEpoch = t.epoch
	v.TimeoutMillis = t.timeoutMs
	v.State = kmsg.TransactionState(t.state)
	v.LastUpdateTimestamp = t.updateMs
	v.StartTimestamp = t.startMs
	v.PreviousProducerID = t.prevProducerID
	v.NextProducerID = t.nextProducerID
	v.ClientTransactionVersion = t.clientTxnVersion
	v.NextProducerEpoch = -1
	if t.state != Empty || len(t.partitions) > 0 {
		var cur *kmsg.TxnMetadataValueTopic
		for _, tp := range t.sortedPartitions() {
			if cur == nil || cur.Topic != tp.Topic {
				v.Topics = append(v.Topics, kmsg.TxnMetadataValueTopic{Topic: tp.Topic})
				cur = &v.Topics[len(v.Topics)-1]
			}
			cur.Partitions = append(cur.Partitions, tp.Partition)
		}
	}
	return v.AppendTo(nil)
}

// record is the write of t's whole state.
func txnRecord(t *txn) runtime.Record {
	return runtime.Record{Key: txnKey(t.id), Value: txnValue(t)}
}

func tombstone(id string) runtime.Record { return runtime.Record{Key: txnKey(id)} }

// replay applies one __transaction_state batch to txns. Unknown key
// versions are skipped, as Kafka skips them. lastEpochs holds the last
// epochs and previous producer ids of the ids the batch writes, when the
// writer knows them (a version 0 record does not carry them; Kafka keeps
// them in memory too).
func replay(txns map[string]*txn, memos map[string]memo, batch []byte) error {
	h, err := record.ParseHeader(batch)
	if err != nil {
		return err
	}
	if h.IsControl() {
		return nil
	}
	return record.ForEach(batch, func(r *record.Record) error {
		return replayRecord(txns, memos, r.Key, r.Value)
	})
}

// memo is what a writer knows of an id beyond a version 0 record.
type memo struct {
	lastEpoch      int16
	prevProducerID int64
}

func replayRecord(txns map[string]*txn, memos map[string]memo, key, value []byte) error {
	if len(key) < 2 {
		return fmt.Errorf("__transaction_state record with a %d-byte key", len(key))
	}
	if ver := int16(binary.BigEndian.Uint16(key)); ver != 0 {
		return nil
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("decode transaction log key: %w", err)
	}
	if value == nil {
		delete(txns, k.TransactionalID)
		return nil
	}
	var v kmsg.TxnMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("decode transaction log value of %q: %w", k.TransactionalID, err)
	}
	t := &txn{
		id:               k.TransactionalID,
		producerID:       v.ProducerID,
		prevProducerID:   NoProducerID,
		nextProducerID:   NoProducerID,
		epoch:            v.ProducerEpoch,
		lastEpoch:        NoProducerEpoch,
		timeoutMs:        v.TimeoutMillis,
		state:            State(v.State),
		partitions:       map[TopicPartition]bool{},
		startMs:          v.StartTimestamp,
		updateMs:         v.LastUpdateTimestamp,
		clientTxnVersion: v.ClientTransactionVersion,
	}
	// The last epoch is in no record, and the previous producer id only
	// in version 1: they are kept in memory for KIP-360 retries while the
	// coordinator does not move, as Kafka keeps them.
	prev := txns[k.TransactionalID]
	m, known := memos[k.TransactionalID]
	switch {
	case known:
		t.lastEpoch, t.prevProducerID = m.lastEpoch, m.prevProducerID
	case prev != nil:
		t.lastEpoch, t.prevProducerID = prev.lastEpoch, prev.prevProducerID
	}
	if v.Version >= 1 {
		t.prevProducerID, t.nextProducerID = v.PreviousProducerID, v.NextProducerID
	}
	for _, top := range v.Topics {
		for _, p := range top.Partitions {
			t.partitions[TopicPartition{top.Topic, p}] = true
		}
	}
	if t.state == Dead {
		delete(txns, t.id)
		return nil
	}
	txns[t.id] = t
	return nil
}
