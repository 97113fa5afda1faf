// Package controller is the active controller's write path: it validates
// requests (topic names, partition counts, replication factors, configs),
// places partitions on brokers, turns each change into metadata records and
// proposes them to the metadata quorum (Quorum). It also keeps the sessions
// of registered brokers (brokers.go): heartbeats, fencing, controlled
// shutdown. Partition leadership and ISRs change as in KRaft
// (partitions.go, election.go, elect.go), and so do partition
// reassignments (reassign.go, KIP-455) and log directory failures
// reported in heartbeats (logdirs.go, KIP-858).
//
// The image it validates against is not its own: every node's metadata
// loader (internal/metadata/loader) is the quorum's state machine and
// publishes the image and its deltas to the rest of the node. A node that
// is its own quorum without Raft (tests, and reading a pre-quorum
// metadata log) writes through LocalLog, a local partition log fsynced
// before a write returns.
//
// It imports internal/metadata, internal/config, internal/storage and
// internal/record.
package controller
