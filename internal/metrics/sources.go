package metrics

// The Source interfaces are what a scrape reads. The server implements
// them over the partition manager, the group coordinator and the quorum;
// each call copies what it needs and returns.

// PartitionSource lists this broker's hosted replicas and its totals.
type PartitionSource interface {
	Partitions() []Partition
	Totals() Totals
}

// Partition is one hosted replica at scrape time.
type Partition struct {
	Topic     string
	Partition int32
	Leader    bool // this broker leads it
	// Offsets and size of the local log.
	LogStartOffset, LogEndOffset, HighWatermark, SizeBytes int64
	// Replicas and ISR are counts as this replica knows them; MinISR is
	// the topic's min.insync.replicas.
	Replicas, ISR, MinISR int
	// Counters since the replica was opened here.
	BytesIn, MessagesIn, BytesOut, ProduceErrors, FetchErrors int64
}

// Totals are the broker's counters since start (they never go down).
type Totals struct {
	BytesIn, MessagesIn, BytesOut, ReplicationBytesOut int64
	ProduceErrors, FetchErrors                         int64
	ISRShrinks, ISRExpands                             int64
	StorageErrors                                      int64
	// FailedPartitions are hosted partitions whose logs could not be
	// opened.
	FailedPartitions int
	// OfflineLogDirs are this broker's log directories reported offline
	// (KIP-858; replication.LogDir).
	OfflineLogDirs int
	// Replication throttle rates in bytes/s (0: none), KIP-73.
	LeaderThrottleRate, FollowerThrottleRate int64
}

// GroupSource lists the consumer groups this broker coordinates.
type GroupSource interface {
	Groups() []Group
}

// Group is one group at scrape time.
type Group struct {
	Group, Type, State string
	Members            int
	Offsets            []GroupOffset
}

// GroupOffset is a committed offset.
type GroupOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// ClusterSource reports the metadata quorum and controller as this node
// sees them.
type ClusterSource interface {
	Cluster() Cluster
}

// Cluster is the quorum and controller state at scrape time.
type Cluster struct {
	// ActiveController is set on the node that is the active controller
	// (the quorum leader).
	ActiveController bool
	// QuorumLeader is the leader's node id, -1 while unknown.
	QuorumLeader int32
	// QuorumEpoch is the Raft term (Kafka's leader epoch of the quorum),
	// -1 where unknown (a broker-only node observing the quorum).
	QuorumEpoch int64
	// Commit and Applied are this node's commit and applied indexes of
	// the metadata log.
	Commit, Applied int64
	// VoterLag is, on the leader, each voter's entries behind the leader.
	VoterLag map[int32]int64
	// OfflinePartitions counts partitions with no leader; reported by the
	// active controller only (as Kafka does), 0 elsewhere.
	OfflinePartitions int
	// Brokers and FencedBrokers count registered brokers in the image.
	Brokers, FencedBrokers int
}

// Health says whether the node is ready to serve, and if not, why.
type Health interface {
	Ready() (bool, string)
}

// BuildInfo describes the binary.
type BuildInfo struct {
	Version, Commit, Date, GoVersion string
}
