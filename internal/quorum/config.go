package quorum

import (
	"fmt"
	"log/slog"
	"net"
	"time"
)

// StateMachine is the replicated state the caller keeps. The Node calls it
// from one goroutine only, never concurrently.
type StateMachine interface {
	// Apply applies a committed entry. It is called in index order, once
	// for every committed entry after the last Restore (on start, the
	// entries after the latest snapshot are applied again). An error stops
	// the node: its state would no longer match the log.
	Apply(index uint64, data []byte) error
	// Snapshot returns the state as of the last applied index, for log
	// compaction and for catching up followers.
	Snapshot() ([]byte, error)
	// Restore replaces the state with a snapshot taken at index: at start
	// when the directory holds one, and when the leader sends one.
	Restore(data []byte, index uint64) error
}

// MaxProposalBytes bounds one proposal's data.
const MaxProposalBytes = 16 << 20

// Config configures a Node.
type Config struct {
	// ID is this node's id, non-zero and a key of Peers.
	ID uint64
	// Peers maps every voter's id to the host:port of its controller
	// listener, including this node's own. A single voter may leave its
	// address empty: it then listens nowhere.
	Peers map[uint64]string
	// Dir holds the raft data (see the package comment).
	Dir string
	// ClusterID names the cluster; a directory or peer of another cluster
	// is refused.
	ClusterID string
	Logger    *slog.Logger

	// TickInterval is Raft's logical clock (default 100ms); elections
	// time out after ElectionTicks (default 10) and leaders heartbeat
	// every HeartbeatTicks (default 1).
	TickInterval   time.Duration
	ElectionTicks  int
	HeartbeatTicks int

	// SnapshotEvery is how many applied entries trigger a snapshot and
	// log compaction (default 10000). CatchUpEntries of the log are kept
	// below a snapshot so that a follower slightly behind catches up
	// without one (default min(5000, SnapshotEvery)).
	SnapshotEvery  uint64
	CatchUpEntries uint64

	// StateMachine receives the committed entries.
	StateMachine StateMachine

	// Listener, when set, is used instead of listening on Peers[ID]; the
	// Node owns it once New succeeds and closes it at Stop. (A TLS
	// listener, with Dial dialing TLS, secures the quorum's traffic.)
	Listener net.Listener
	// Dial connects to a peer voter; nil: plain TCP.
	Dial DialFunc
	// MaxMessageBytes bounds one frame on the wire (default 256 MiB); it
	// must exceed the largest snapshot.
	MaxMessageBytes int
	// SegmentBytes rolls WAL segments (default 64 MiB).
	SegmentBytes int64
}

const maxClusterIDLen = 255

// checkShared validates what voters and observers configure alike and
// defaults the logger.
func checkShared(clusterID string, sm StateMachine, logger **slog.Logger) error {
	if clusterID == "" || len(clusterID) > maxClusterIDLen {
		return fmt.Errorf("quorum: cluster id must be 1 to %d bytes, got %d", maxClusterIDLen, len(clusterID))
	}
	if sm == nil {
		return fmt.Errorf("quorum: no state machine")
	}
	if *logger == nil {
		*logger = slog.Default()
	}
	return nil
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.ID == 0 {
		return cfg, fmt.Errorf("quorum: node id must be non-zero")
	}
	if len(cfg.Peers) == 0 {
		return cfg, fmt.Errorf("quorum: no peers configured")
	}
	if _, ok := cfg.Peers[cfg.ID]; !ok {
		return cfg, fmt.Errorf("quorum: peers do not include this node (id %d)", cfg.ID)
	}
	for id, addr := range cfg.Peers {
		if id == 0 {
			return cfg, fmt.Errorf("quorum: peer id 0 is invalid")
		}
		// A single voter needs no address: it never talks to anyone.
		if addr == "" && len(cfg.Peers) > 1 && (id != cfg.ID || cfg.Listener == nil) {
			return cfg, fmt.Errorf("quorum: peer %d has no address", id)
		}
	}
	if cfg.Dir == "" {
		return cfg, fmt.Errorf("quorum: no data directory")
	}
	if err := checkShared(cfg.ClusterID, cfg.StateMachine, &cfg.Logger); err != nil {
		return cfg, err
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.ElectionTicks <= cfg.HeartbeatTicks {
		return cfg, fmt.Errorf("quorum: election ticks (%d) must exceed heartbeat ticks (%d)", cfg.ElectionTicks, cfg.HeartbeatTicks)
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 10000
	}
	if cfg.CatchUpEntries == 0 {
		cfg.CatchUpEntries = min(5000, cfg.SnapshotEvery)
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 256 << 20
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 64 << 20
	}
	return cfg, nil
}
