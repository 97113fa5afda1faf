package quorum

import (
	"errors"
	"fmt"
)

// Errors returned by a Node. Match them with errors.Is.
var (
	// ErrNotLeader is matched by every *NotLeaderError.
	ErrNotLeader = errors.New("quorum: not the leader")
	// ErrNoQuorum means no leader could commit the proposal before the
	// context's deadline: a majority of voters is unreachable, or the
	// cluster is electing. The entry may still commit later. The error
	// also wraps the context's error.
	ErrNoQuorum = errors.New("quorum: quorum unavailable")
	// ErrProposalDropped means the entry was definitely not committed:
	// raft refused it, or a new leader overwrote it.
	ErrProposalDropped = errors.New("quorum: proposal dropped")
	// ErrOutcomeUnknown means the log was replaced by a snapshot from the
	// leader before the entry was applied here: it may or may not be in
	// that snapshot.
	ErrOutcomeUnknown = errors.New("quorum: proposal outcome unknown")
	// ErrStopped is returned once the node is stopped (or was never
	// started). A proposal pending at Stop may still commit.
	ErrStopped = errors.New("quorum: node stopped")
	// ErrClusterIDMismatch means the data directory, or a peer, belongs to
	// another cluster.
	ErrClusterIDMismatch = errors.New("quorum: cluster id mismatch")
	// ErrCorrupt means the data directory holds damaged or inconsistent
	// raft state that recovery must not paper over.
	ErrCorrupt = errors.New("quorum: corrupt raft data")
	// ErrTooLarge is returned for a proposal over MaxProposalBytes.
	ErrTooLarge = errors.New("quorum: proposal too large")
	// ErrStorage is matched by every *StorageError: the node could not
	// write its metadata log and stopped.
	ErrStorage = errors.New("quorum: metadata log write failed")
)

// StorageError is why a node stopped when a write or fsync of its metadata
// log (a WAL segment, the snapshot file) failed: a full disk or a failing
// device. The node stops for good, as a Kafka node whose metadata log
// directory fails halts: raft cannot go on without persisting what it
// promises. What the failed write began is cut off, so the next start
// (once the disk is fixed) recovers the log up to its last whole save, and
// the node catches up from the quorum.
type StorageError struct {
	Dir string // the quorum directory (__cluster_metadata-0)
	Err error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("cannot write the metadata log in %s: %v", e.Dir, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrStorage) true.
func (e *StorageError) Is(target error) bool { return target == ErrStorage }

// NotLeaderError is returned by Propose on a node that is not the leader.
type NotLeaderError struct {
	// Leader is the id of the leader this node knows of; never zero
	// (while no leader is known, Propose waits for one).
	Leader uint64
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("quorum: not the leader (leader is node %d)", e.Leader)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
