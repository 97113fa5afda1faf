// Package controller decides cluster metadata changes: it validates requests
// (topic names, partition counts, replication factors, configs), places
// partitions on brokers, turns each change into metadata records, commits
// them through a metadata.Log, and publishes the resulting Image to
// listeners. Partition leadership and ISRs change as in KRaft
// (partitions.go, election.go, elect.go), and so do partition
// reassignments (reassign.go, KIP-455).
//
// In this version a node is its own single-voter quorum: LocalLog keeps the
// __cluster_metadata log on local disk, fsynced before a write returns. A
// Raft-backed metadata.Log replaces it without touching the rest.
//
// It imports internal/metadata, internal/config, internal/storage and
// internal/record.
package controller
