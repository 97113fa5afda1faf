package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/quorum"
)

// The quorum's node ids are the node ids (node.id is at least 1, as Raft
// reserves 0 for "none").
func raftID(node int32) uint64 { return uint64(node) }
func nodeOf(raft uint64) int32 { return int32(raft) }

// roles is what process.roles asks this node to be.
type roles struct{ broker, controller bool }

func parseRoles(s string) (roles, error) {
	var r roles
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "broker":
			r.broker = true
		case "controller":
			r.controller = true
		default:
			return r, fmt.Errorf("process.roles=%q: roles are broker and controller", s)
		}
	}
	return r, nil
}

// parseVoters parses controller.quorum.voters: "id@host:port,..." as
// Kafka writes it. Empty means this node alone (a one-voter quorum needing
// no controller listener), which must then be both broker and controller.
// A controller must be one of the voters, a broker-only node must not.
func parseVoters(s string, self int32, r roles) (map[int32]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		if !r.broker || !r.controller {
			return nil, errors.New("a node without --controller-quorum is a cluster of its own and must be both broker and controller (process.roles=broker,controller)")
		}
		return map[int32]string{self: ""}, nil
	}
	out := map[int32]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		idText, addr, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("controller quorum %q: %q is not id@host:port", s, part)
		}
		id, err := strconv.ParseInt(idText, 10, 32)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("controller quorum %q: bad node id %q", s, idText)
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return nil, fmt.Errorf("controller quorum %q: bad address %q for node %d", s, addr, id)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return nil, fmt.Errorf("controller quorum %q: bad port in %q", s, addr)
		}
		if _, dup := out[int32(id)]; dup {
			return nil, fmt.Errorf("controller quorum %q: node %d listed twice", s, id)
		}
		out[int32(id)] = addr
	}
	_, voter := out[self]
	switch {
	case r.controller && !voter:
		return nil, fmt.Errorf("controller quorum %q does not include this node (node.id=%d), but its roles include controller", s, self)
	case !r.controller && voter:
		return nil, fmt.Errorf("controller quorum %q lists this node (node.id=%d) as a voter, but its roles do not include controller", s, self)
	}
	return out, nil
}

// derivedClusterID names a multi-node cluster from its voter list when no
// cluster.id is configured: every node started with the same
// --controller-quorum agrees on it, and a node pointed at another quorum
// refuses to join.
func derivedClusterID(voters map[int32]string) string {
	ids := make([]int, 0, len(voters))
	for id := range voters {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%d@%s,", id, voters[int32(id)])
	}
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// quorumAdapter is the controller's view of the Raft node.
type quorumAdapter struct{ n *quorum.Node }

func (q quorumAdapter) Propose(ctx context.Context, data []byte) (uint64, error) {
	idx, err := q.n.Propose(ctx, data)
	if err != nil {
		var nl *quorum.NotLeaderError
		if errors.As(err, &nl) {
			return 0, fmt.Errorf("%w (the active controller is node %d)", controller.ErrNotController, nodeOf(nl.Leader))
		}
		if errors.Is(err, quorum.ErrNoQuorum) {
			return 0, fmt.Errorf("%w: %w", controller.ErrQuorumUnavailable, err)
		}
		return 0, fmt.Errorf("metadata quorum: %w", err)
	}
	return idx, nil
}

func (q quorumAdapter) Leader() int32 {
	if l := q.n.Leader(); l != 0 {
		return nodeOf(l)
	}
	return -1
}

func (q quorumAdapter) State() controller.QuorumState {
	st := q.n.Status()
	out := controller.QuorumState{LeaderID: -1, LeaderEpoch: int32(st.Term), HighWatermark: int64(st.Commit)}
	if st.Leader != 0 {
		out.LeaderID = nodeOf(st.Leader)
	}
	for _, v := range st.Voters {
		r := controller.QuorumReplica{ID: nodeOf(v), LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}
		if p, ok := st.Peers[v]; ok {
			r.LogEndOffset = int64(p.Match)
		} else if v == st.ID {
			r.LogEndOffset = int64(st.LastIndex)
		}
		out.Voters = append(out.Voters, r)
	}
	return out
}

// legacyMetadataBackup is where the pre-quorum metadata log goes while it
// is migrated into the quorum; legacyMetadataImported once it has been.
const (
	legacyMetadataBackup   = MetadataDir + ".local-backup"
	legacyMetadataImported = MetadataDir + ".imported"
)

// finishLegacyImport marks the migration done.
func finishLegacyImport(dir string) error {
	return os.Rename(filepath.Join(dir, legacyMetadataBackup), filepath.Join(dir, legacyMetadataImported))
}

// readLegacyMetadata moves a metadata log written before the quorum
// existed (a local partition log in MetadataDir) aside and returns the
// records that rebuild its image, to be imported as the quorum's first
// entry. A backup left by an import that did not finish is read again.
// It returns nil when there is nothing to migrate.
func readLegacyMetadata(dir string, logger *slog.Logger) ([]metadata.Record, error) {
	cur := filepath.Join(dir, MetadataDir)
	backup := filepath.Join(dir, legacyMetadataBackup)
	if isLegacyLog(cur) {
		if _, err := os.Stat(backup); err == nil {
			return nil, fmt.Errorf("both %s and %s hold a pre-quorum metadata log; keep one", cur, backup)
		}
		if err := os.Rename(cur, backup); err != nil {
			return nil, fmt.Errorf("move the pre-quorum metadata log aside: %w", err)
		}
		logger.Info("migrating the pre-quorum metadata log into the quorum", "backup", backup)
	}
	if !isLegacyLog(backup) {
		return nil, nil
	}
	l, err := controller.OpenLocalLog(backup, logger)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	img := metadata.Empty()
	err = l.Replay(func(off int64, recs []metadata.Record) error {
		next, err := img.Apply(off, recs)
		if err == nil {
			img = next
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the pre-quorum metadata log: %w", err)
	}
	return img.Records(), nil
}

// isLegacyLog reports whether dir holds partition-log segments.
func isLegacyLog(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".log") && !e.IsDir() {
			return true
		}
	}
	return false
}

// startObserver follows the metadata quorum without voting: a broker-only
// node. It runs no controller: its metadata loader applies what the
// observer fetches, and every write it needs goes to the active
// controller over the broker-to-controller channel.
func (s *Server) startObserver(logger *slog.Logger, voters map[int32]string, clusterID string) error {
	peers := make(map[uint64]string, len(voters))
	for id, addr := range voters {
		peers[raftID(id)] = addr
	}
	_, dial, err := s.quorumTLS(logger)
	if err != nil {
		return err
	}
	o, err := quorum.NewObserver(quorum.ObserverConfig{
		ID:           raftID(s.cfg.NodeID()),
		Voters:       peers,
		ClusterID:    clusterID,
		Logger:       logger,
		StateMachine: s.loader,
		Dial:         dial,
	})
	if err != nil {
		return fmt.Errorf("metadata quorum observer: %w", err)
	}
	s.observer = o
	s.quorumView = observerAdapter{o: o, voters: peers}
	if err := o.Start(); err != nil {
		return fmt.Errorf("metadata quorum observer: %w", err)
	}
	return nil
}

// observerAdapter is the broker-to-controller channel's view of a quorum
// this node only observes.
type observerAdapter struct {
	o      *quorum.Observer
	voters map[uint64]string
}

func (q observerAdapter) Leader() int32 {
	if l := q.o.Leader(); l != 0 {
		return nodeOf(l)
	}
	return -1
}

func (q observerAdapter) State() controller.QuorumState {
	st := q.o.Status()
	out := controller.QuorumState{LeaderID: q.Leader(), LeaderEpoch: -1, HighWatermark: int64(st.Commit)}
	ids := make([]uint64, 0, len(q.voters))
	for id := range q.voters {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		out.Voters = append(out.Voters, controller.QuorumReplica{ID: nodeOf(id), LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1})
	}
	return out
}
