package controller

import (
	"fmt"
	"slices"
	"strings"

	"github.com/stratalog/strata/internal/metadata"
)

// Log directory failures, as KRaft handles them (KIP-858,
// ReplicationControlManager.handleDirectoriesOffline): a broker registers
// the ids of its log directories and names the failed ones in every
// heartbeat (BrokerHeartbeat OfflineLogDirs). When the set changes, the
// active controller writes a BrokerRegistrationChangeRecord listing the
// directories still online, and:
//
//   - for a directory gone offline, every replica in it leaves as a
//     fenced broker's do (election.go): out of the ISR where another
//     in-sync replica is live, leadership to the first of those. As the
//     last live in-sync replica (no eligible leader replica, no unclean
//     election) it stays in the ISR, and a leader stays leader: unlike a
//     fenced broker's, its broker is alive, answers KAFKA_STORAGE_ERROR
//     (retriable) and recovers in place once the directory works, where
//     Kafka would leave the partition offline until a restart. When
//     another replica catches up and the leader adds it to the ISR, the
//     leadership moves to it (planAlterPartition);
//   - while offline, a replica in it is not live: it is not elected,
//     preferred elections skip it, AlterPartition may not add it to an ISR
//     (INELIGIBLE_REPLICA), and a broker whose every directory is offline
//     gets no new replicas (placementBrokers);
//   - for a directory back online (Strata's broker probes a failed
//     directory and reports it online when a write succeeds; Kafka needs
//     a restart), its replicas lead the leaderless partitions whose ISR
//     they are in, and otherwise rejoin ISRs the usual way: the leader sees
//     them caught up and expands the ISR with AlterPartition.
//
// Strata runs one data dir per broker, so in practice a broker's replicas
// are all in one directory; the rules still go by each replica's
// directory (PartitionRecord.Directories, assigned at creation to the
// broker's only directory).

// dirOnline reports whether replica id of p has its log directory online
// (true for an unregistered broker: usable answers for it).
func dirOnline(img *metadata.Image, p *metadata.Partition, id int32) bool {
	b := img.Brokers[id]
	return b == nil || b.DirOnline(p.DirectoryOf(id))
}

// replicaLive reports whether replica id of p may lead or be in sync: its
// broker is registered and unfenced and the replica's directory is online.
func replicaLive(img *metadata.Image, p *metadata.Partition, id int32) bool {
	return usable(img, id) && dirOnline(img, p, id)
}

// defaultDir is the directory a new replica on broker id goes to: its only
// registered one (zero, unassigned, if it registered none or several:
// Kafka's defaultDir).
func defaultDir(img *metadata.Image, id int32) metadata.UUID {
	if b := img.Brokers[id]; b != nil && len(b.LogDirs) == 1 {
		return b.LogDirs[0]
	}
	return metadata.UUID{}
}

// directoriesFor is the Directories of a partition whose replicas become
// replicas: a replica p already has keeps its directory, a new one gets
// its broker's default. Nil when every one is unassigned.
func directoriesFor(img *metadata.Image, replicas []int32, p *metadata.Partition) []metadata.UUID {
	out := make([]metadata.UUID, len(replicas))
	any := false
	for i, r := range replicas {
		if p != nil && slices.Contains(p.Replicas, r) {
			out[i] = p.DirectoryOf(r)
		} else {
			out[i] = defaultDir(img, r)
		}
		any = any || !out[i].IsZero()
	}
	if !any {
		return nil
	}
	return out
}

// logDirChanges returns the records for a heartbeat of broker b naming
// reported as its offline log directories: none if the set of its
// registered directories offline is unchanged, else the
// BrokerRegistrationChangeRecord and the partition changes it causes (see
// above), and the image after them. Ids b did not register are ignored.
// c.mu held.
func (c *Controller) logDirChanges(img *metadata.Image, b *metadata.Broker, reported []metadata.UUID) ([]metadata.Record, *metadata.Image, error) {
	var offline, online []metadata.UUID
	for _, d := range b.LogDirs {
		if slices.Contains(reported, d) {
			offline = append(offline, d)
		} else {
			online = append(online, d)
		}
	}
	if slices.Equal(offline, b.OfflineLogDirs) {
		return nil, img, nil
	}
	node := b.NodeID
	if online == nil {
		online = []metadata.UUID{}
	}
	recs := []metadata.Record{&metadata.BrokerRegistrationChangeRecord{NodeID: node, Epoch: b.Epoch, LogDirs: online}}
	after, err := img.Apply(img.Offset, recs)
	if err != nil {
		return nil, nil, err
	}
	failed := without(offline, b.OfflineLogDirs)
	back := without(b.OfflineLogDirs, offline)
	if len(failed) > 0 {
		nb := after.Brokers[node]
		leaving := func(p *metadata.Partition, id int32) bool {
			return id == node && slices.Contains(p.Replicas, id) && !nb.DirOnline(p.DirectoryOf(id))
		}
		moves := c.replicasLeaving(after, leaving, true, "offline_log_dirs", fmt.Sprintf("node %d: %s", node, dirNames(failed)))
		c.opts.Logger.Warn("log directory offline: leadership and ISR membership move off its replicas",
			"node", node, "dirs", dirNames(failed), "partition_changes", len(moves))
		if after, err = after.Apply(after.Offset, moves); err != nil {
			return nil, nil, err
		}
		recs = append(recs, moves...)
	}
	if len(back) > 0 {
		var gained []metadata.Record
		if !b.Fenced {
			gained = c.leadersGained(after, node)
			if after, err = after.Apply(after.Offset, gained); err != nil {
				return nil, nil, err
			}
			recs = append(recs, gained...)
		}
		c.opts.Logger.Info("log directory online again: its replicas rejoin ISRs as they catch up",
			"node", node, "dirs", dirNames(back), "leaders_gained", len(gained))
	}
	return recs, after, nil
}

func dirNames(ids []metadata.UUID) string {
	s := make([]string, len(ids))
	for i, d := range ids {
		s[i] = d.String()
	}
	return strings.Join(s, ",")
}

// tooFewBrokers is the error of a creation that needs rf brokers where n
// are usable; it names the brokers left out because every log directory
// of theirs is offline (Kafka answers INVALID_REPLICATION_FACTOR too).
func tooFewBrokers(img *metadata.Image, rf, n int) error {
	var why []string
	for _, id := range sortedBrokers(img) {
		if b := img.Brokers[id]; !b.Fenced && b.AllDirsOffline() {
			why = append(why, fmt.Sprintf("broker %d has its log directory %s offline (a failed write; it is back once a write succeeds there)", id, dirNames(b.OfflineLogDirs)))
		}
	}
	msg := fmt.Sprintf("replication factor %d is larger than the %d available broker(s)", rf, n)
	if len(why) > 0 {
		msg += ": " + strings.Join(why, "; ")
	}
	return fmt.Errorf("%w: %s", ErrInvalidReplicationFactor, msg)
}
