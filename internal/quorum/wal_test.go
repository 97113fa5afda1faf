package quorum

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func testEntries(from, to, term uint64) []raftpb.Entry {
	var ents []raftpb.Entry
	for i := from; i <= to; i++ {
		ents = append(ents, raftpb.Entry{Index: i, Term: term, Data: fmt.Appendf(nil, "data-%d-%d", term, i)})
	}
	return ents
}

// newTestWAL opens an empty WAL whose log starts after index 1.
func newTestWAL(t *testing.T, dir string, sink *logSink) *wal {
	t.Helper()
	w, rp, err := openWAL(dir, 1<<20, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.ents) != 0 || len(w.segs) != 0 {
		t.Fatalf("fresh wal replayed %d entries, %d segments", len(rp.ents), len(w.segs))
	}
	w.last = 1
	if err := w.roll(); err != nil {
		t.Fatal(err)
	}
	return w
}

func reopenWAL(t *testing.T, dir string, sink *logSink) (*wal, walReplay) {
	t.Helper()
	w, rp, err := openWAL(dir, 1<<20, sink.logger())
	if err != nil {
		t.Fatalf("reopen wal: %v", err)
	}
	t.Cleanup(func() { w.close() })
	return w, rp
}

func checkEntries(t *testing.T, got, want []raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Index != want[i].Index || got[i].Term != want[i].Term || string(got[i].Data) != string(want[i].Data) {
			t.Fatalf("entry %d: got %d/%d %q, want %d/%d %q", i, got[i].Index, got[i].Term, got[i].Data, want[i].Index, want[i].Term, want[i].Data)
		}
	}
}

func TestWALRoundTrip(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	w := newTestWAL(t, dir, sink)
	if err := w.save(nil, raftpb.HardState{Term: 1, Vote: 2, Commit: 5}, testEntries(2, 10, 1), true); err != nil {
		t.Fatal(err)
	}
	// A new leader's entries from 8 replace 8..10.
	hs := raftpb.HardState{Term: 2, Vote: 3, Commit: 7}
	if err := w.save(nil, hs, testEntries(8, 9, 2), true); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	_, rp := reopenWAL(t, dir, sink)
	checkEntries(t, rp.ents, append(testEntries(2, 7, 1), testEntries(8, 9, 2)...))
	if rp.hs != hs {
		t.Fatalf("hard state %+v, want %+v", rp.hs, hs)
	}
}

// writeTestWAL writes entries 2..11 in one segment and returns its path.
func writeTestWAL(t *testing.T, dir string, sink *logSink) string {
	t.Helper()
	w := newTestWAL(t, dir, sink)
	for i := uint64(2); i <= 11; i++ {
		if err := w.save(nil, raftpb.HardState{Term: 1, Commit: i}, testEntries(i, i, 1), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	return w.segs[0].path
}

func TestWALTornTailTruncated(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
	}{
		{"cut mid-record", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-5); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut mid-header", func(t *testing.T, path string, size int64) {
			appendBytes(t, path, []byte{0, 0, 0})
		}},
		{"zeros appended", func(t *testing.T, path string, size int64) {
			appendBytes(t, path, make([]byte, 4096))
		}},
		{"last record garbled", func(t *testing.T, path string, size int64) {
			flipByte(t, path, size-2)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, sink := t.TempDir(), newLogSink(t)
			path := writeTestWAL(t, dir, sink)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, path, fi.Size())
			w, rp := reopenWAL(t, dir, sink)
			if sink.count("truncating torn write") != 1 {
				t.Fatal("torn tail not logged")
			}
			// The damage is the last record (a hard state or entry 11).
			if n := len(rp.ents); n < 9 || n > 10 || rp.ents[0].Index != 2 {
				t.Fatalf("replayed %d entries from %d", n, rp.ents[0].Index)
			}
			// Appending after the truncation point survives a reopen.
			w.last = rp.ents[len(rp.ents)-1].Index
			next := testEntries(w.last+1, w.last+1, 1)
			if err := w.save(nil, raftpb.HardState{Term: 1, Commit: 3}, next, true); err != nil {
				t.Fatal(err)
			}
			w.close()
			_, rp2 := reopenWAL(t, dir, sink)
			checkEntries(t, rp2.ents, append(slices.Clone(rp.ents), next...))
			if sink.count("truncating torn write") != 1 {
				t.Fatal("truncated tail found torn again")
			}
		})
	}
}

func TestWALCorruptionInTheMiddleIsAnError(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	path := writeTestWAL(t, dir, sink)
	flipByte(t, path, int64(len(walMagic))+40)
	if _, _, err := openWAL(dir, 1<<20, sink.logger()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open wal with a corrupt record in the middle: %v, want ErrCorrupt", err)
	}

	// A bad tail in a segment that is not the last is corruption too.
	dir = t.TempDir()
	path = writeTestWAL(t, dir, sink)
	w, _ := reopenWAL(t, dir, sink)
	w.last = 11
	if err := w.roll(); err != nil {
		t.Fatal(err)
	}
	w.close()
	fi, _ := os.Stat(path)
	flipByte(t, path, fi.Size()-2)
	if _, _, err := openWAL(dir, 1<<20, sink.logger()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open wal with a torn older segment: %v, want ErrCorrupt", err)
	}
}

func TestWALMissingSegmentIsAnError(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	w := newTestWAL(t, dir, sink)
	for i := uint64(2); i <= 4; i++ {
		if err := w.save(nil, raftpb.HardState{Term: 1, Commit: i}, testEntries(i, i, 1), true); err != nil {
			t.Fatal(err)
		}
		if err := w.roll(); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	if err := os.Remove(w.segs[1].path); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openWAL(dir, 1<<20, sink.logger()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open wal with a missing segment: %v, want ErrCorrupt", err)
	}
}

func testStorageConfig(dir string, sm StateMachine) *Config {
	cfg := Config{ID: 1, Peers: map[uint64]string{1: "a:1", 2: "b:1", 3: "c:1"}, Dir: dir, ClusterID: "c1", StateMachine: sm, SegmentBytes: 2048}
	c, err := cfg.withDefaults()
	if err != nil {
		panic(err)
	}
	return &c
}

// A snapshot compacts the log: older segments go, and a restart rebuilds
// the same log from the snapshot and the rest of the WAL.
func TestStorageCompactionAndRestart(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	cfg := testStorageConfig(dir, &testSM{})
	st, snap, err := openStorage(cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Metadata.Index != 1 || !slices.Equal(snap.Metadata.ConfState.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("bootstrap snapshot %+v", snap.Metadata)
	}
	ents := testEntries(2, 301, 2)
	for i := 0; i < len(ents); i += 10 {
		rd := raft.Ready{Entries: ents[i : i+10], HardState: raftpb.HardState{Term: 2, Commit: ents[i+9].Index}, MustSync: true}
		if err := st.save(&rd); err != nil {
			t.Fatal(err)
		}
	}
	before := len(st.wal.segs)
	if before < 4 {
		t.Fatalf("only %d segments of 2 KiB for 300 entries", before)
	}
	s, err := st.ms.CreateSnapshot(250, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, []byte("state@250"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.saveSnapshot(s, 240); err != nil {
		t.Fatal(err)
	}
	if after := len(st.wal.segs); after >= before {
		t.Fatalf("%d segments before the snapshot, %d after", before, after)
	}
	if first, _ := st.ms.FirstIndex(); first != 241 {
		t.Fatalf("memory log starts at %d after compacting to 240", first)
	}
	files, _ := filepath.Glob(filepath.Join(dir, walDirName, "*"+walExt))
	if len(files) != len(st.wal.segs) {
		t.Fatalf("%d segment files for %d segments", len(files), len(st.wal.segs))
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}

	st, snap, err = openStorage(cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if snap.Metadata.Index != 250 || string(snap.Data) != "state@250" {
		t.Fatalf("restored snapshot %+v %q", snap.Metadata, snap.Data)
	}
	first, _ := st.ms.FirstIndex()
	last, _ := st.ms.LastIndex()
	hs, _, _ := st.ms.InitialState()
	if first != 251 || last != 301 || hs.Commit != 301 || hs.Term != 2 {
		t.Fatalf("restored log [%d, %d] hard state %+v", first, last, hs)
	}
	got, err := st.ms.Entries(251, 302, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	checkEntries(t, got, ents[249:])
}

// A snapshot received from the leader voids the log it replaces, even
// entries past the snapshot index.
func TestStorageReceivedSnapshotResetsLog(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	cfg := testStorageConfig(dir, &testSM{})
	st, _, err := openStorage(cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	rd := raft.Ready{Entries: testEntries(2, 60, 2), HardState: raftpb.HardState{Term: 2, Commit: 10}, MustSync: true}
	if err := st.save(&rd); err != nil {
		t.Fatal(err)
	}
	snap := raftpb.Snapshot{Data: []byte("leader"), Metadata: raftpb.SnapshotMetadata{Index: 40, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	rd = raft.Ready{Snapshot: snap, HardState: raftpb.HardState{Term: 3, Commit: 40}, Entries: testEntries(41, 42, 3), MustSync: true}
	if err := st.save(&rd); err != nil {
		t.Fatal(err)
	}
	st.close()
	st, got, err := openStorage(cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	last, _ := st.ms.LastIndex()
	if got.Metadata.Index != 40 || last != 42 {
		t.Fatalf("after a received snapshot: snapshot %d, last index %d", got.Metadata.Index, last)
	}
	if term, _ := st.ms.Term(42); term != 3 {
		t.Fatalf("entry 42 has term %d", term)
	}
}

func TestReconcile(t *testing.T) {
	ents := testEntries(5, 10, 2)
	for _, tc := range []struct {
		name      string
		sm        raftpb.SnapshotMetadata
		wantFirst uint64 // 0: no entries
		wantErr   bool
	}{
		{"snapshot inside log", raftpb.SnapshotMetadata{Index: 7, Term: 2}, 8, false},
		{"snapshot just before log", raftpb.SnapshotMetadata{Index: 4, Term: 2}, 5, false},
		{"snapshot after log", raftpb.SnapshotMetadata{Index: 20, Term: 3}, 0, false},
		{"snapshot disagrees with log", raftpb.SnapshotMetadata{Index: 7, Term: 3}, 0, false},
		{"gap after snapshot", raftpb.SnapshotMetadata{Index: 2, Term: 1}, 0, true},
	} {
		got, err := reconcile(tc.sm, ents)
		if (err != nil) != tc.wantErr || (len(got) > 0 && got[0].Index != tc.wantFirst) || (len(got) == 0) != (tc.wantFirst == 0) {
			t.Errorf("%s: got %d entries, err %v", tc.name, len(got), err)
		}
	}
}

func TestDirectoryChecks(t *testing.T) {
	dir, sink := t.TempDir(), newLogSink(t)
	cfg := testStorageConfig(dir, &testSM{})
	st, _, err := openStorage(cfg, sink.logger())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStorage(cfg, sink.logger()); err == nil {
		t.Fatal("a second open of a locked directory succeeded")
	}
	st.close()

	other := *cfg
	other.ClusterID = "c2"
	if _, _, err := openStorage(&other, sink.logger()); !errors.Is(err, ErrClusterIDMismatch) {
		t.Fatalf("open with another cluster id: %v", err)
	}
	other = *cfg
	other.ID = 2
	if _, _, err := openStorage(&other, sink.logger()); err == nil {
		t.Fatal("open as another node id succeeded")
	}
	other = *cfg
	other.Peers = map[uint64]string{1: "a:1", 2: "b:1"}
	if _, _, err := openStorage(&other, sink.logger()); err == nil {
		t.Fatal("open with other voters succeeded")
	}
	if err := os.Remove(filepath.Join(dir, snapFileName)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openStorage(cfg, sink.logger()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open without the snapshot: %v", err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// faultyFile is a WAL segment on a disk that fills up or fails fsyncs:
// writeRoom bytes more fit (then a write is cut short with ENOSPC, as
// write(2) on a full file system), and Sync fails once failSync is set.
type faultyFile struct {
	walFile
	writeRoom int
	failSync  bool
}

var errNoSpace = errors.New("no space left on device")

func (f *faultyFile) Write(b []byte) (int, error) {
	if len(b) <= f.writeRoom {
		f.writeRoom -= len(b)
		return f.walFile.Write(b)
	}
	n, err := f.walFile.Write(b[:f.writeRoom])
	f.writeRoom -= n
	if err == nil {
		err = errNoSpace
	}
	return n, err
}

func (f *faultyFile) Sync() error {
	if f.failSync {
		return errors.New("input/output error")
	}
	return f.walFile.Sync()
}

// TestWALFailedWriteIsCutBack: a save that fails part-way (a full disk)
// leaves the segment as the last whole save left it, so a restart replays
// exactly the saves that succeeded, with no torn tail to truncate; a save
// whose fsync fails is cut back to the last fsync that succeeded.
func TestWALFailedWriteIsCutBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(f *faultyFile)
	}{
		{"short write", func(f *faultyFile) { f.writeRoom = 20 }},
		{"write fails at once", func(f *faultyFile) { f.writeRoom = 0 }},
		{"fsync fails", func(f *faultyFile) { f.writeRoom, f.failSync = 1<<20, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, sink := t.TempDir(), newLogSink(t)
			w := newTestWAL(t, dir, sink)
			hs := raftpb.HardState{Term: 1, Vote: 1, Commit: 4}
			if err := w.save(nil, hs, testEntries(2, 5, 1), true); err != nil {
				t.Fatal(err)
			}
			// Unsynced (only the commit index moved): cut off too
			// when the next fsync fails, and harmless to lose.
			if err := w.save(nil, raftpb.HardState{Term: 1, Vote: 1, Commit: 5}, nil, false); err != nil {
				t.Fatal(err)
			}
			synced, before := w.synced, w.size
			f := &faultyFile{walFile: w.f}
			tc.fault(f)
			w.f = f
			err := w.save(nil, raftpb.HardState{Term: 2, Vote: 2, Commit: 5}, testEntries(6, 9, 2), true)
			if err == nil {
				t.Fatal("save on a failing disk succeeded")
			}
			want := before
			if f.failSync {
				want = synced
			}
			fi, serr := os.Stat(w.segs[0].path)
			if serr != nil {
				t.Fatal(serr)
			}
			if fi.Size() != want || w.size != want {
				t.Fatalf("after %v: segment is %d bytes (wal says %d), want %d", err, fi.Size(), w.size, want)
			}
			w.close()
			_, rp := reopenWAL(t, dir, sink)
			if n := sink.count("truncating torn write"); n != 0 {
				t.Fatalf("the restart found a torn tail (%d lines): the failed save was not cut back", n)
			}
			checkEntries(t, rp.ents, testEntries(2, 5, 1))
			if rp.hs.Term != 1 || rp.hs.Vote != 1 {
				t.Fatalf("hard state %+v after the failed save, want term 1 vote 1", rp.hs)
			}
		})
	}
}
