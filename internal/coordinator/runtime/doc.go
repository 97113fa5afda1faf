// Package runtime is the small coordinator runtime the transaction
// coordinator runs on (Kafka's CoordinatorRuntime and CoordinatorResult,
// DESIGN.md 7.4): one shard per partition of the coordinator's internal
// topic, each with its own goroutine, so that no lock spans shards.
//
// An operation runs on its shard's goroutine against the shard's state
// machine and returns records and a result. The runtime appends the
// records to the partition as one batch, replays the batch into the state
// machine with the same Replay that rebuilds the state at load time, and
// answers the operation only once the partition's high watermark has
// passed everything written so far: an answer is never based on state
// that a leader change could take back. Answers of one shard are given in
// the order the operations ran.
//
// The in-memory state runs ahead of the durable state by the batches in
// flight, exactly as the leader's log does; a write that never becomes
// durable is lost only with the leadership, and then the shard is unloaded
// and a new leader rebuilds its state from its own log.
//
// It imports internal/record (to build batches); the partition is behind
// the Log interface, so tests use an in-memory log.
package runtime
