package metadata

import "slices"

// Log directories (KIP-858, as KRaft records them). A broker registers the
// ids of its log directories (RegisterBrokerRecord.LogDirs, the
// directory.id of each data dir's meta.properties); when one fails, its
// heartbeat names it offline and the active controller writes a
// BrokerRegistrationChangeRecord whose LogDirs are the directories still
// online, and moves leadership and ISR membership off the replicas in the
// failed one (controller/logdirs.go). Each replica's directory is in
// PartitionRecord.Directories. Kafka needs a restart to bring a directory
// back; Strata's broker reports it online again when a probe write
// succeeds, and the controller writes another change record listing it.

// BrokerRegistrationChangeRecord changes a registered broker's online log
// directories (Kafka's BrokerRegistrationChangeRecord v2 LogDirs): LogDirs
// are every registered directory that is online; the others are offline.
// Epoch is the registration it applies to: a record for an older
// registration is ignored.
type BrokerRegistrationChangeRecord struct {
	NodeID  int32  `json:"node_id"`
	Epoch   int64  `json:"epoch"`
	LogDirs []UUID `json:"log_dirs"`
}

// Type implements Record.
func (*BrokerRegistrationChangeRecord) Type() RecordType { return TypeBrokerRegistrationChange }

// offlineDirs are the registered directories not listed online.
func offlineDirs(registered, online []UUID) []UUID {
	var out []UUID
	for _, d := range registered {
		if !slices.Contains(online, d) {
			out = append(out, d)
		}
	}
	return out
}

// OnlineLogDirs are the registered log directories not offline.
func (b *Broker) OnlineLogDirs() []UUID {
	out := make([]UUID, 0, len(b.LogDirs))
	for _, d := range b.LogDirs {
		if !slices.Contains(b.OfflineLogDirs, d) {
			out = append(out, d)
		}
	}
	return out
}

// DirOnline reports whether the broker's log directory dir is online. An
// unassigned directory (the zero id: a partition created before
// directories were recorded, or a broker that registered none) is on the
// broker's only directory: it is online unless every registered
// directory is offline. So is a directory the broker did not register.
func (b *Broker) DirOnline(dir UUID) bool {
	if len(b.OfflineLogDirs) == 0 {
		return true
	}
	if dir.IsZero() || !slices.Contains(b.LogDirs, dir) {
		return !b.AllDirsOffline()
	}
	return !slices.Contains(b.OfflineLogDirs, dir)
}

// AllDirsOffline reports whether the broker registered log directories
// and every one is offline: it can host no replica.
func (b *Broker) AllDirsOffline() bool {
	return len(b.LogDirs) > 0 && len(b.OfflineLogDirs) >= len(b.LogDirs)
}

// DirectoryOf is the log directory of replica r of p (zero: unassigned,
// or r is not a replica).
func (p *Partition) DirectoryOf(r int32) UUID {
	i := slices.Index(p.Replicas, r)
	if i < 0 || i >= len(p.Directories) {
		return UUID{}
	}
	return p.Directories[i]
}
