// Package group is the classic consumer group coordinator: membership
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets, and the
// admin views (describe, list, delete), with Kafka's semantics.
//
// State is a map of groups per __consumer_offsets partition this broker
// leads. Every durable change is a record (kmsg.GroupMetadataKey/Value,
// kmsg.OffsetCommitKey/Value; a nil value is a tombstone) appended to the
// group's partition through the Log seam and then applied to memory by
// applyRecord, the same function that rebuilds the state when a partition is
// loaded (Load replays the log). The records use Kafka's formats, so Kafka's
// tooling can read the topic.
//
// The core is I/O-free apart from Log: time comes from Options.Now, and
// timeouts (session, rebalance, initial delay) fire when Tick is called
// (Run calls it periodically). Requests that wait (JoinGroup, SyncGroup)
// take a completion callback, called later from another request or from
// Tick; callbacks always run after the coordinator's lock is released.
//
// KIP-848 consumer protocol groups (ConsumerGroupHeartbeat,
// ConsumerGroupDescribe; consumer*.go) live in the same map: a group is
// either classic or consumer type. Their membership is kept in memory only
// (members rejoin with epoch 0 after a restart); their committed offsets
// use the same offset records as classic groups.
//
// It imports internal/record (to build and walk batches) and kmsg for the
// record formats and the consumer protocol's member metadata; nothing above.
package group
