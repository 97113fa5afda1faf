// Package replication owns the replicas a broker hosts, in Kafka's model:
// the Manager applies metadata images on its own goroutine (opening,
// leading, following and deleting replicas), and each Partition owns the
// partition rules: validation of produced batches, reads up to the high
// watermark (consumers) or the log end (followers), the leader's view of
// its followers, the ISR changes it asks the controller for, the high
// watermark, and the partition side of transactions (partition_txn.go:
// markers, the last stable offset, read_committed reads). Followers replicate through fetchers, one per leader broker,
// that long-poll the leader with the Fetch API and truncate where the
// leader says their log diverges. Storage failures put a partition in
// error (faults.go) and the broker's log directory offline (logdir.go),
// which the broker reports to the controller until a probe write succeeds.
//
// It imports internal/storage, internal/metadata, internal/config,
// internal/record and internal/kclient.
package replication
