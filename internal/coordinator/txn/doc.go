// Package txn is the transaction coordinator (KIP-98, with KIP-360's
// producer recovery, KIP-588's epoch handling, KIP-664's admin views and
// KIP-890's defences): it owns the transactional ids whose
// __transaction_state partition this broker leads, answers InitProducerId
// with a transactional id, AddPartitionsToTxn (and its verify-only form the
// partition leaders send, KIP-890 part 1), EndTxn (KIP-890 part 2: every
// commit or abort of a version-2 client bumps the epoch), and
// Describe/ListTransactions, and drives the commit or abort markers to the
// partitions of each transaction.
//
// It runs on internal/coordinator/runtime: one shard per
// __transaction_state partition. Every state change is one record in
// Kafka's TransactionLog format (kmsg.TxnMetadataKey/Value; a nil value is
// a tombstone for an expired id) written to the shard's partition and
// replayed by replay, the function that also rebuilds the state at load.
// An answer is given once its record is durable. A PrepareCommit or
// PrepareAbort that is durable starts the markers (markers.go), sent
// through the MarkerChannel seam until every partition has its marker; the
// CompleteCommit or CompleteAbort record follows. A new leader of a
// partition reloads it and resends the markers of every transaction it
// finds prepared.
//
// The core is free of I/O apart from the seams (the runtime's Log, the
// MarkerChannel, the producer id allocator): time comes from Options.Now,
// and timeouts (transaction.timeout.ms, transactional.id.expiration.ms)
// fire when Tick is called.
//
// It imports internal/coordinator/runtime, internal/record and kmsg (the
// record formats); nothing above.
package txn
