// Package storage owns partition logs on disk, in Kafka's layout: a directory
// per partition holding segments named by base offset (.log, .index,
// .timeindex, .txnindex), producer-state snapshots (.snapshot), the
// leader-epoch-checkpoint and partition.metadata.
//
// A Log appends record batches verbatim (rewriting only the base offset, the
// partition leader epoch and, for LogAppendTime, the timestamps), enforces
// idempotent-producer sequence rules and the transaction rules (txn.go:
// markers, the last stable offset, the aborted transaction index)
// atomically with the append, serves reads
// as file regions for sendfile, finds offsets by timestamp through the sparse
// time index, rolls segments by size and age, deletes old segments by
// retention, moves the log start offset for DeleteRecords, fsyncs by policy
// (page cache with flush.messages/flush.ms, or always, with group commit),
// and recovers after a crash by truncating a torn tail and rebuilding indexes.
// Compacted logs are cleaned by Log.Clean, or in the background by a
// Cleaner (cleaner.go describes the algorithm and its files). For
// replication (follower.go), a follower appends the leader's batches
// verbatim (AppendAsFollower), truncates a divergent tail (TruncateTo,
// TruncateFullyAndStartAt) and keeps the high watermark in
// replication-offset-checkpoint (unless the caller keeps it for the whole
// data dir and gives it at Open).
//
// With a shared Journal (journal.go, log.journal.enable, on by default), produced batches go to one
// append-only file per data dir, one write per request, and reach their
// segments later in larger writes; a log keeps the journaled tail in
// memory (pending.go), and the journal is replayed into the logs after a
// crash.
//
// A broker shutting many logs down at once (CloseDeferSync) writes one
// clean shutdown summary for the data dir (DirSummary, dirsummary.go) in
// place of each log's marker, and its logs consult it at Open.
//
// It imports internal/record and the standard library (plus x/sys/unix).
package storage
