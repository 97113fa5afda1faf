package quorum

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/sys/unix"
)

const (
	snapMagic    = "SQSNAP01"
	snapFileName = "snapshot"
	metaFileName = "meta.json"
	lockFileName = "LOCK"
	walDirName   = "wal"
	metaVersion  = 1
)

func writeSnapshotFile(dir string, snap raftpb.Snapshot) error {
	body, err := snap.Marshal()
	if err != nil {
		return fmt.Errorf("quorum: encode snapshot: %w", err)
	}
	buf := make([]byte, 0, len(snapMagic)+4+len(body))
	buf = append(buf, snapMagic...)
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(body, castagnoli))
	buf = append(buf, body...)
	if err := writeFileAtomic(dir, snapFileName, buf); err != nil {
		return fmt.Errorf("quorum: write snapshot at %d: %w", snap.Metadata.Index, err)
	}
	return nil
}

// readSnapshotFile returns the snapshot in dir, and false if there is none.
func readSnapshotFile(dir string) (raftpb.Snapshot, bool, error) {
	var snap raftpb.Snapshot
	if err := os.Remove(filepath.Join(dir, snapFileName+tmpExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return snap, false, fmt.Errorf("quorum: remove leftover snapshot: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, snapFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return snap, false, nil
	}
	if err != nil {
		return snap, false, fmt.Errorf("quorum: read snapshot: %w", err)
	}
	h := len(snapMagic) + 4
	if len(data) < h || string(data[:len(snapMagic)]) != snapMagic {
		return snap, false, fmt.Errorf("%w: snapshot file has no header", ErrCorrupt)
	}
	if crc32.Checksum(data[h:], castagnoli) != binary.BigEndian.Uint32(data[len(snapMagic):]) {
		return snap, false, fmt.Errorf("%w: snapshot file CRC mismatch", ErrCorrupt)
	}
	if err := snap.Unmarshal(data[h:]); err != nil {
		return snap, false, fmt.Errorf("%w: decode snapshot: %v", ErrCorrupt, err)
	}
	if snap.Metadata.Index == 0 {
		return snap, false, fmt.Errorf("%w: snapshot at index 0", ErrCorrupt)
	}
	return snap, true, nil
}

type meta struct {
	Version   int    `json:"version"`
	ClusterID string `json:"cluster_id"`
	NodeID    uint64 `json:"node_id"`
}

// checkMeta makes sure dir belongs to this cluster and node, recording both
// on first use. fresh says whether the directory holds no raft state yet.
func checkMeta(dir, clusterID string, nodeID uint64, fresh bool) error {
	path := filepath.Join(dir, metaFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !fresh {
			return fmt.Errorf("%w: %s holds raft data but no %s", ErrCorrupt, dir, metaFileName)
		}
		b, err := json.Marshal(meta{Version: metaVersion, ClusterID: clusterID, NodeID: nodeID})
		if err != nil {
			return fmt.Errorf("quorum: encode %s: %w", metaFileName, err)
		}
		return writeFileAtomic(dir, metaFileName, append(b, '\n'))
	}
	if err != nil {
		return fmt.Errorf("quorum: read %s: %w", metaFileName, err)
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%w: decode %s: %v", ErrCorrupt, path, err)
	}
	if m.Version != metaVersion {
		return fmt.Errorf("quorum: %s has unknown version %d", path, m.Version)
	}
	if m.ClusterID != clusterID {
		return fmt.Errorf("%w: raft directory %s belongs to cluster %q, but this node is configured for cluster %q", ErrClusterIDMismatch, dir, m.ClusterID, clusterID)
	}
	if m.NodeID != nodeID {
		return fmt.Errorf("quorum: raft directory %s belongs to node %d, but this node is configured as node %d", dir, m.NodeID, nodeID)
	}
	return nil
}

// lockDir takes an exclusive flock on dir/LOCK, so two nodes never share a
// directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFileName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("quorum: open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("quorum: raft directory %s is in use by another node: %w", dir, err)
	}
	return f, nil
}
