package brokerlink

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/controller"
)

// ErrRemote is an error code from the active controller that has no
// sentinel of the controller's: the Kafka error is wrapped with it.
var ErrRemote = errors.New("error from the active controller")

// sentinels turn Kafka codes from the active controller back into the
// controller's errors: the inverse of internal/broker's error table for
// the codes controller requests answer.
var sentinels = map[int16]error{
	kerr.TopicAlreadyExists.Code:          controller.ErrTopicExists,
	kerr.InvalidTopicException.Code:       controller.ErrInvalidTopic,
	kerr.UnknownTopicOrPartition.Code:     controller.ErrUnknownTopic,
	kerr.UnknownTopicID.Code:              controller.ErrUnknownTopicID,
	kerr.InvalidPartitions.Code:           controller.ErrInvalidPartitions,
	kerr.InvalidReplicationFactor.Code:    controller.ErrInvalidReplicationFactor,
	kerr.InvalidReplicaAssignment.Code:    controller.ErrInvalidReplicaAssignment,
	kerr.InvalidConfig.Code:               controller.ErrInvalidConfig,
	kerr.InvalidRequest.Code:              controller.ErrInvalidRequest,
	kerr.PolicyViolation.Code:             controller.ErrPolicyViolation,
	kerr.TopicDeletionDisabled.Code:       controller.ErrDeletionDisabled,
	kerr.NotController.Code:               controller.ErrNotController,
	kerr.RequestTimedOut.Code:             controller.ErrQuorumUnavailable,
	kerr.StaleBrokerEpoch.Code:            controller.ErrStaleBrokerEpoch,
	kerr.BrokerIDNotRegistered.Code:       controller.ErrBrokerNotRegistered,
	kerr.DuplicateBrokerRegistration.Code: controller.ErrDuplicateRegistration,
	kerr.FencedLeaderEpoch.Code:           controller.ErrFencedLeaderEpoch,
	kerr.InvalidUpdateVersion.Code:        controller.ErrInvalidUpdateVersion,
	kerr.IneligibleReplica.Code:           controller.ErrIneligibleReplica,
	kerr.OperationNotAttempted.Code:       controller.ErrIneligibleReplica,
	kerr.ElectionNotNeeded.Code:           controller.ErrElectionNotNeeded,
	kerr.NoReassignmentInProgress.Code:    controller.ErrNoReassignmentInProgress,
}

// remoteError is the error for a Kafka code (and message) from the active
// controller: its sentinel (or ErrRemote) wrapping the Kafka error, so
// that internal/broker maps it back to the same code. 0 is nil.
func remoteError(code int16, msg *string) error {
	if code == 0 {
		return nil
	}
	ke := kerr.ErrorForCode(code)
	s, ok := sentinels[code]
	if !ok {
		s = ErrRemote
	}
	if msg != nil && *msg != "" {
		return fmt.Errorf("%w: %s (%w from the active controller)", s, *msg, ke)
	}
	return fmt.Errorf("%w (%w from the active controller)", s, ke)
}

// NeedsRegistration reports whether an error from a heartbeat means the
// broker must register again (a new controller lost track of it, or its
// epoch is stale).
func NeedsRegistration(err error) bool {
	return errors.Is(err, controller.ErrStaleBrokerEpoch) || errors.Is(err, controller.ErrBrokerNotRegistered)
}
