package broker

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/coordinator/txn"
	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/internal/replication"
)

// errorCode maps a domain error to the Kafka error code a Kafka broker would
// send for it. nil maps to 0.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return m.code.Code
		}
	}
	return kerr.UnknownServerError.Code
}

var errorTable = []struct {
	err  error
	code *kerr.Error
}{
	{controller.ErrTopicExists, kerr.TopicAlreadyExists},
	{controller.ErrUnacceptableCredential, kerr.UnacceptableCredential},
	{controller.ErrUnsupportedSASLMechanism, kerr.UnsupportedSaslMechanism},
	{controller.ErrResourceNotFound, kerr.ResourceNotFound},
	{controller.ErrDuplicateResource, kerr.DuplicateResource},
	{controller.ErrInvalidTopic, kerr.InvalidTopicException},
	{controller.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
	{controller.ErrUnknownTopicID, kerr.UnknownTopicID},
	{controller.ErrInvalidPartitions, kerr.InvalidPartitions},
	{controller.ErrInvalidReplicationFactor, kerr.InvalidReplicationFactor},
	{controller.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
	{controller.ErrInvalidConfig, kerr.InvalidConfig},
	{config.ErrInvalid, kerr.InvalidConfig},
	{config.ErrUnknown, kerr.InvalidConfig},
	{controller.ErrInvalidRequest, kerr.InvalidRequest},
	{controller.ErrInvalidACL, kerr.InvalidRequest},
	{controller.ErrPolicyViolation, kerr.PolicyViolation},
	{controller.ErrDeletionDisabled, kerr.TopicDeletionDisabled},
	{controller.ErrNotController, kerr.NotController},
	{controller.ErrQuorumUnavailable, kerr.RequestTimedOut},
	{controller.ErrStaleBrokerEpoch, kerr.StaleBrokerEpoch},
	{controller.ErrBrokerNotRegistered, kerr.BrokerIDNotRegistered},
	{controller.ErrDuplicateRegistration, kerr.DuplicateBrokerRegistration},
	{controller.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{controller.ErrInvalidUpdateVersion, kerr.InvalidUpdateVersion},
	{controller.ErrIneligibleReplica, kerr.IneligibleReplica},
	{controller.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
	{controller.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
	{controller.ErrEligibleLeadersNotAvailable, kerr.EligibleLeadersNotAvailable},
	{controller.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
	{replication.ErrOffsetOutOfRange, kerr.OffsetOutOfRange},
	{replication.ErrOutOfOrderSequence, kerr.OutOfOrderSequenceNumber},
	{replication.ErrInvalidProducerEpoch, kerr.InvalidProducerEpoch},
	{replication.ErrRecordTooLarge, kerr.RecordListTooLarge},
	{replication.ErrInvalidTimestamp, kerr.InvalidTimestamp},
	{replication.ErrClosed, kerr.NotLeaderForPartition},
	{replication.ErrCorruptSegment, kerr.KafkaStorageError},
	{replication.ErrStorage, kerr.KafkaStorageError},
	{replication.ErrNotLeader, kerr.NotLeaderForPartition},
	{replication.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
	{replication.ErrUnknownLeaderEpoch, kerr.UnknownLeaderEpoch},
	{replication.ErrNotEnoughReplicas, kerr.NotEnoughReplicas},
	{replication.ErrNotEnoughReplicasAfterAppend, kerr.NotEnoughReplicasAfterAppend},
	{replication.ErrReplicationTimeout, kerr.RequestTimedOut},
	{replication.ErrMessageTooLarge, kerr.MessageTooLarge},
	{replication.ErrInvalidTxnState, kerr.InvalidTxnState},
	{replication.ErrCoordinatorFenced, kerr.TransactionCoordinatorFenced},
	{group.ErrNotCoordinator, kerr.NotCoordinator},
	{group.ErrLoadInProgress, kerr.CoordinatorLoadInProgress},
	{group.ErrCoordinatorNotAvail, kerr.CoordinatorNotAvailable},
	{group.ErrInvalidGroupID, kerr.InvalidGroupID},
	{group.ErrUnknownMember, kerr.UnknownMemberID},
	{group.ErrMemberIDRequired, kerr.MemberIDRequired},
	{group.ErrIllegalGeneration, kerr.IllegalGeneration},
	{group.ErrRebalanceInProgress, kerr.RebalanceInProgress},
	{group.ErrInconsistentProtocol, kerr.InconsistentGroupProtocol},
	{group.ErrInvalidSessionTimout, kerr.InvalidSessionTimeout},
	{group.ErrFencedInstanceID, kerr.FencedInstanceID},
	{group.ErrMetadataTooLarge, kerr.OffsetMetadataTooLarge},
	{group.ErrGroupNotFound, kerr.GroupIDNotFound},
	{group.ErrNonEmptyGroup, kerr.NonEmptyGroup},
	{group.ErrSubscribedToTopic, kerr.GroupSubscribedToTopic},
	{group.ErrInvalidRegularExpression, kerr.InvalidRegularExpression},
	{group.ErrInvalidRequest, kerr.InvalidRequest},
	{group.ErrGroupMaxSize, kerr.GroupMaxSizeReached},
	{group.ErrFencedMemberEpoch, kerr.FencedMemberEpoch},
	{group.ErrStaleMemberEpoch, kerr.StaleMemberEpoch},
	{group.ErrUnreleasedInstanceID, kerr.UnreleasedInstanceID},
	{group.ErrUnsupportedAssignor, kerr.UnsupportedAssignor},
	{txn.ErrNotCoordinator, kerr.NotCoordinator},
	{txn.ErrLoadInProgress, kerr.CoordinatorLoadInProgress},
	{txn.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
	{txn.ErrInvalidRequest, kerr.InvalidRequest},
	{txn.ErrInvalidTimeout, kerr.InvalidTransactionTimeout},
	{txn.ErrConcurrentTransactions, kerr.ConcurrentTransactions},
	{txn.ErrProducerFenced, kerr.ProducerFenced},
	{txn.ErrInvalidProducerIDMap, kerr.InvalidProducerIDMapping},
	{txn.ErrInvalidTxnState, kerr.InvalidTxnState},
	{txn.ErrTransactionalIDNotFound, kerr.TransactionalIDNotFound},
	{txn.ErrTransactionAbortable, kerr.TransactionAbortable},
	{record.ErrMagic, kerr.UnsupportedForMessageFormat},
	{record.ErrBadCRC, kerr.CorruptMessage},
	{record.ErrCorrupt, kerr.CorruptMessage},
	{record.ErrShort, kerr.CorruptMessage},
	{record.ErrInvalid, kerr.InvalidRecord},
}

// fencedCode is errorCode for the transaction APIs, whose versions before
// KIP-588's (minVersion) know INVALID_PRODUCER_EPOCH instead of
// PRODUCER_FENCED.
func fencedCode(err error, version, minVersion int16) int16 {
	c := errorCode(err)
	if c == kerr.ProducerFenced.Code && version < minVersion {
		return kerr.InvalidProducerEpoch.Code
	}
	return c
}

// errorMessage is the text for a response's error message field, or nil.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
