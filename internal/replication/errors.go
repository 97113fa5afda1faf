package replication

import (
	"context"
	"errors"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// Errors of the partition rules. internal/broker maps them to Kafka codes.
var (
	ErrNotLeader                    = errors.New("not the leader of the partition")
	ErrFencedLeaderEpoch            = errors.New("leader epoch is older than the partition's")
	ErrUnknownLeaderEpoch           = errors.New("leader epoch is newer than this replica knows")
	ErrNotEnoughReplicas            = errors.New("fewer in-sync replicas than min.insync.replicas")
	ErrNotEnoughReplicasAfterAppend = errors.New("written, but the ISR shrank below min.insync.replicas")
	ErrReplicationTimeout           = errors.New("not replicated to the ISR within the request timeout")
	ErrMessageTooLarge              = errors.New("batch larger than max.message.bytes")
	// ErrStorage is returned by Manager.Get for a partition whose log
	// failed to open, and by the writes of a partition whose log failed
	// (a full disk, a failed fsync: faults.go). Kafka's
	// KAFKA_STORAGE_ERROR.
	ErrStorage = errors.New("partition storage failed")

	// Storage's errors, so that callers need not import storage.
	ErrOffsetOutOfRange     = storage.ErrOffsetOutOfRange
	ErrOutOfOrderSequence   = storage.ErrOutOfOrderSequence
	ErrInvalidProducerEpoch = storage.ErrInvalidProducerEpoch
	ErrRecordTooLarge       = storage.ErrRecordTooLarge
	ErrInvalidTimestamp     = storage.ErrInvalidTimestamp
	ErrClosed               = storage.ErrClosed
	ErrCorruptSegment       = storage.ErrCorruptSegment
	ErrInvalidTxnState      = storage.ErrInvalidTxnState
	ErrCoordinatorFenced    = storage.ErrCoordinatorFenced
)

// ISRChange is an AlterPartition request of a leader, or the controller's
// answer: the partition's state after the change.
type ISRChange struct {
	TopicID        metadata.UUID
	Topic          string
	Partition      int32
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []int32
}

// Controller is the way from a partition leader to the active controller.
type Controller interface {
	// AlterPartition asks to change the ISR (KIP-497) and returns the
	// partition's committed state after it.
	AlterPartition(ctx context.Context, req ISRChange) (ISRChange, error)
}
