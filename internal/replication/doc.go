// Package replication owns the partitions a broker hosts: it opens and closes
// their logs as the metadata image assigns and removes them, and keeps each
// partition's high watermark, leader epoch and the wake-ups that long-polling
// fetches wait on.
//
// In this version every partition has one replica, so the high watermark
// follows the log end offset, or the durable offset when the broker fsyncs
// before acknowledging. Follower fetching, the ISR and acks=all waiting on
// followers belong here when replication arrives.
//
// It imports internal/storage, internal/metadata and internal/config.
package replication
