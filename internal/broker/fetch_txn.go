package broker

// The transactional part of Fetch (kept apart from fetch.go): the isolation
// level a consumer asks for, and the aborted transactions a read_committed
// read reports so that the client drops their records. The read itself
// (stopping at the last stable offset) is replication.Partition.Read's.
// Long polls need nothing more: the last stable offset only moves when the
// high watermark moves or a batch is appended, and both wake the
// partition's waiters.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/replication"
)

// fetchIsolation is the request's isolation level (v4+; Fetch starts at 4).
func fetchIsolation(req *kmsg.FetchRequest) replication.IsolationLevel {
	if req.IsolationLevel == 1 {
		return replication.ReadCommitted
	}
	return replication.ReadUncommitted
}

// abortedTransactions converts a read's aborted transactions: nil (sent as
// null) for read_uncommitted, a list, possibly empty, for read_committed,
// as Kafka answers.
func abortedTransactions(txns []replication.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	if txns == nil {
		return nil
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(txns))
	for i, t := range txns {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: t.ProducerID, FirstOffset: t.FirstOffset}
	}
	return out
}
