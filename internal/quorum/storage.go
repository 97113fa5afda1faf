package quorum

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// diskStorage keeps raft's log in a MemoryStorage (what raft reads) backed
// by the WAL and snapshot file (what survives a restart). It is used by the
// node's goroutine only; the MemoryStorage locks itself.
type diskStorage struct {
	dir  string
	log  *slog.Logger
	lock *os.File
	wal  *wal
	ms   *raft.MemoryStorage
	snap raftpb.SnapshotMetadata // of the snapshot file
}

// openStorage opens (formatting if new) the raft state in cfg.Dir and
// returns it with the snapshot the state machine must be restored from.
func openStorage(cfg *Config, log *slog.Logger) (_ *diskStorage, _ raftpb.Snapshot, err error) {
	var snap raftpb.Snapshot
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, snap, fmt.Errorf("quorum: create raft directory: %w", err)
	}
	lock, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, snap, err
	}
	s := &diskStorage{dir: cfg.Dir, log: log, lock: lock, ms: raft.NewMemoryStorage()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	snap, haveSnap, err := readSnapshotFile(cfg.Dir)
	if err != nil {
		return nil, snap, err
	}
	walDir := filepath.Join(cfg.Dir, walDirName)
	haveWAL, err := dirHasFiles(walDir)
	if err != nil {
		return nil, snap, err
	}
	fresh := !haveSnap && !haveWAL
	if err := checkMeta(cfg.Dir, cfg.ClusterID, cfg.ID, fresh); err != nil {
		return nil, snap, err
	}
	w, rp, err := openWAL(walDir, cfg.SegmentBytes, log)
	if err != nil {
		return nil, snap, err
	}
	s.wal = w
	hs := rp.hs
	var ents []raftpb.Entry
	switch {
	case fresh:
		// Bootstrap: a snapshot at index 1 holding the voters, as raft
		// recommends over RawNode.Bootstrap. Every node writes the same.
		snap = raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
			Index:     1,
			Term:      1,
			ConfState: raftpb.ConfState{Voters: sortedIDs(cfg.Peers)},
		}}
		if err := writeSnapshotFile(cfg.Dir, snap); err != nil {
			return nil, snap, err
		}
		hs = raftpb.HardState{Term: 1, Commit: 1}
		log.Info("formatted new raft directory", "dir", cfg.Dir, "cluster_id", cfg.ClusterID, "voters", snap.Metadata.ConfState.Voters)
	case !haveSnap:
		return nil, snap, fmt.Errorf("%w: %s has a wal but no snapshot", ErrCorrupt, cfg.Dir)
	default:
		if ents, err = reconcile(snap.Metadata, rp.ents); err != nil {
			return nil, snap, err
		}
	}
	sm := snap.Metadata
	last := sm.Index
	if len(ents) > 0 {
		last = ents[len(ents)-1].Index
	}
	// A snapshot is committed; a term below it (crash between writing a
	// received snapshot and its wal record) is raised, with no vote cast
	// in the new term.
	hs.Commit = max(hs.Commit, sm.Index)
	if hs.Term < sm.Term {
		hs.Term, hs.Vote = sm.Term, 0
	}
	if hs.Commit > last {
		return nil, snap, fmt.Errorf("%w: commit index %d beyond the last log entry %d", ErrCorrupt, hs.Commit, last)
	}
	if got, want := votersOf(sm.ConfState, ents), sortedIDs(cfg.Peers); !slices.Equal(got, want) {
		return nil, snap, fmt.Errorf("quorum: configured voters %v differ from the voters %v in %s; membership changes are not supported", want, got, cfg.Dir)
	}
	if err := s.ms.ApplySnapshot(snap); err != nil {
		return nil, snap, fmt.Errorf("quorum: load snapshot: %w", err)
	}
	if err := s.ms.SetHardState(hs); err != nil {
		return nil, snap, err
	}
	if err := s.ms.Append(ents); err != nil {
		return nil, snap, err
	}
	s.snap = sm
	w.last = last
	w.hs = hs
	if len(w.segs) == 0 {
		if err := w.roll(); err != nil {
			return nil, snap, err
		}
	}
	log.Debug("opened raft storage", "snapshot_index", sm.Index, "snapshot_term", sm.Term,
		"last_index", last, "term", hs.Term, "commit", hs.Commit, "wal_segments", len(w.segs))
	return s, snap, nil
}

// reconcile returns the WAL entries that continue the snapshot.
func reconcile(sm raftpb.SnapshotMetadata, ents []raftpb.Entry) ([]raftpb.Entry, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	switch {
	case first > sm.Index+1:
		return nil, fmt.Errorf("%w: wal starts at entry %d, after the snapshot at %d", ErrCorrupt, first, sm.Index)
	case last < sm.Index:
		return nil, nil // the snapshot is newer than the whole log
	case first <= sm.Index && ents[sm.Index-first].Term != sm.Term:
		// A snapshot from the leader replaced a log that disagreed with
		// it; the crash came before its wal marker.
		return nil, nil
	case first <= sm.Index:
		return ents[sm.Index-first+1:], nil
	default:
		return ents, nil
	}
}

// save persists a Ready's snapshot, entries and hard state, in that order,
// then hands them to the MemoryStorage.
func (s *diskStorage) save(rd *raft.Ready) error {
	var marker *raftpb.SnapshotMetadata
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := writeSnapshotFile(s.dir, rd.Snapshot); err != nil {
			return s.ioErr(err)
		}
		marker = &rd.Snapshot.Metadata
	}
	if err := s.wal.save(marker, rd.HardState, rd.Entries, rd.MustSync || marker != nil); err != nil {
		return s.ioErr(err)
	}
	if marker != nil {
		if err := s.ms.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("quorum: apply snapshot at %d: %w", marker.Index, err)
		}
		s.snap = *marker
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := s.ms.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if err := s.ms.Append(rd.Entries); err != nil {
		return err
	}
	if marker != nil {
		// Everything before the snapshot is void: start a segment after
		// it and drop the old ones.
		if err := s.wal.roll(); err != nil {
			return s.ioErr(err)
		}
		if err := s.wal.release(marker.Index); err != nil {
			return s.ioErr(err)
		}
	}
	return nil
}

// saveSnapshot makes a snapshot the state machine took durable, compacts the
// in-memory log up to compactTo and deletes the WAL segments it covers.
func (s *diskStorage) saveSnapshot(snap raftpb.Snapshot, compactTo uint64) error {
	if err := writeSnapshotFile(s.dir, snap); err != nil {
		return s.ioErr(err)
	}
	s.snap = snap.Metadata
	if compactTo > 0 {
		if err := s.ms.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("quorum: compact log to %d: %w", compactTo, err)
		}
	}
	if err := s.wal.roll(); err != nil {
		return s.ioErr(err)
	}
	if err := s.wal.release(snap.Metadata.Index); err != nil {
		return s.ioErr(err)
	}
	return nil
}

// ioErr marks a failed write of the metadata log's files.
func (s *diskStorage) ioErr(err error) error {
	return &StorageError{Dir: s.dir, Err: err}
}

func (s *diskStorage) lastIndex() uint64 {
	i, _ := s.ms.LastIndex()
	return i
}

func (s *diskStorage) close() error {
	var err error
	if s.wal != nil {
		err = s.wal.close()
		s.wal = nil
	}
	if s.lock != nil {
		if cerr := s.lock.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("quorum: release lock: %w", cerr)
		}
		s.lock = nil
	}
	return err
}

func dirHasFiles(dir string) (bool, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("quorum: read %s: %w", dir, err)
	}
	for _, de := range des {
		if _, _, ok := parseSegmentName(de.Name()); ok {
			return true, nil
		}
	}
	return false, nil
}

func sortedIDs(peers map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// votersOf returns the voters after the snapshot's configuration and the
// configuration changes in ents.
func votersOf(cs raftpb.ConfState, ents []raftpb.Entry) []uint64 {
	set := map[uint64]bool{}
	for _, id := range cs.Voters {
		set[id] = true
	}
	for _, e := range ents {
		var changes []raftpb.ConfChangeSingle
		switch e.Type {
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if cc.Unmarshal(e.Data) == nil {
				changes = cc.AsV2().Changes
			}
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if cc.Unmarshal(e.Data) == nil {
				changes = cc.Changes
			}
		}
		for _, c := range changes {
			switch c.Type {
			case raftpb.ConfChangeAddNode:
				set[c.NodeID] = true
			case raftpb.ConfChangeRemoveNode, raftpb.ConfChangeAddLearnerNode:
				delete(set, c.NodeID)
			}
		}
	}
	ids := make([]uint64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
