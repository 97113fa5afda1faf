package quorum

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// The WAL format is described in doc.go.
const (
	walMagic       = "SQWAL001"
	walExt         = ".wal"
	tmpExt         = ".tmp"
	recHeaderLen   = 8
	maxRecordBytes = 64 << 20

	recEntry     byte = 1
	recHardState byte = 2
	recSnapshot  byte = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errShortRecord = errors.New("incomplete record")
	errBadLength   = errors.New("bad record length")
	errBadCRC      = errors.New("record CRC mismatch")
)

type walSegment struct {
	seq, first uint64
	path       string
}

func segmentName(seq, first uint64) string {
	return fmt.Sprintf("%016x-%016x%s", seq, first, walExt)
}

func parseSegmentName(name string) (seq, first uint64, ok bool) {
	base, found := strings.CutSuffix(name, walExt)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(base, "-")
	if !found || len(a) != 16 || len(b) != 16 {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(a, 16, 64)
	first, err2 := strconv.ParseUint(b, 16, 64)
	return seq, first, err1 == nil && err2 == nil
}

// walFile is the open last segment: an *os.File, or in tests one that
// fails its writes or fsyncs.
type walFile interface {
	Write(b []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// wal is the write-ahead log of raft entries and HardStates. It is used
// by one goroutine.
type wal struct {
	dir      string
	log      *slog.Logger
	segBytes int64
	segs     []walSegment
	f        walFile // the last segment, open for appending
	size     int64   // of f
	// synced is how much of f the last fsync that succeeded covers (all
	// of it at open, or a segment's header when roll created it).
	synced int64
	last   uint64 // index of the last entry in the log
	hs     raftpb.HardState
	buf    []byte
}

// walReplay is what the segments hold, in log order.
type walReplay struct {
	ents []raftpb.Entry
	hs   raftpb.HardState
	// base is set by a snapshot marker: the log was reset to it.
	base    uint64
	hasBase bool
}

func (r *walReplay) addEntry(e raftpb.Entry) error {
	if len(r.ents) == 0 {
		if r.hasBase && e.Index != r.base+1 {
			return fmt.Errorf("entry %d after snapshot marker %d", e.Index, r.base)
		}
		r.ents = append(r.ents, e)
		return nil
	}
	first := r.ents[0].Index
	last := r.ents[len(r.ents)-1].Index
	switch {
	case e.Index == last+1:
		r.ents = append(r.ents, e)
	case e.Index > last+1:
		return fmt.Errorf("entry %d follows entry %d", e.Index, last)
	case e.Index <= first:
		// Replaces everything we have; recovery checks that the log
		// still reaches back to the snapshot.
		r.ents = append(r.ents[:0], e)
	default:
		r.ents = append(r.ents[:e.Index-first], e)
	}
	return nil
}

// openWAL replays the segments in dir, truncating a torn tail in the last
// one. With no segments it returns a wal without an open file: the caller
// sets last and hs and calls roll.
func openWAL(dir string, segBytes int64, log *slog.Logger) (*wal, walReplay, error) {
	var rp walReplay
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, rp, fmt.Errorf("quorum: create wal dir: %w", err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, rp, fmt.Errorf("quorum: read wal dir: %w", err)
	}
	w := &wal{dir: dir, log: log, segBytes: segBytes}
	for _, de := range des {
		name := de.Name()
		if strings.HasSuffix(name, tmpExt) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				return nil, rp, fmt.Errorf("quorum: remove %s: %w", name, err)
			}
			continue
		}
		seq, first, ok := parseSegmentName(name)
		if !ok {
			log.Warn("ignoring unknown file in wal directory", "file", name)
			continue
		}
		w.segs = append(w.segs, walSegment{seq: seq, first: first, path: filepath.Join(dir, name)})
	}
	sort.Slice(w.segs, func(i, j int) bool { return w.segs[i].seq < w.segs[j].seq })
	for i := 1; i < len(w.segs); i++ {
		if w.segs[i].seq != w.segs[i-1].seq+1 {
			return nil, rp, fmt.Errorf("%w: wal segment %d missing before %s", ErrCorrupt, w.segs[i-1].seq+1, filepath.Base(w.segs[i].path))
		}
	}
	for i, seg := range w.segs {
		size, err := w.replaySegment(seg, i == len(w.segs)-1, &rp)
		if err != nil {
			return nil, rp, err
		}
		w.size = size
	}
	if n := len(w.segs); n > 0 {
		f, err := os.OpenFile(w.segs[n-1].path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, rp, fmt.Errorf("quorum: open wal segment: %w", err)
		}
		w.f = f
	}
	w.synced = w.size
	w.hs = rp.hs
	return w, rp, nil
}

// replaySegment reads one segment into rp and returns its valid length.
func (w *wal) replaySegment(seg walSegment, last bool, rp *walReplay) (int64, error) {
	name := filepath.Base(seg.path)
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return 0, fmt.Errorf("quorum: read wal segment %s: %w", name, err)
	}
	if len(data) < len(walMagic) || string(data[:len(walMagic)]) != walMagic {
		return 0, fmt.Errorf("%w: wal segment %s has no header", ErrCorrupt, name)
	}
	off := len(walMagic)
	for off < len(data) {
		typ, payload, n, err := decodeRecord(data[off:])
		if err != nil {
			if last && tornTail(data[off:], err) {
				w.log.Warn("truncating torn write at the end of the wal", "segment", name, "offset", off, "dropped_bytes", len(data)-off, "reason", err.Error())
				if err := truncateFile(seg.path, int64(off)); err != nil {
					return 0, err
				}
				return int64(off), nil
			}
			return 0, fmt.Errorf("%w: wal segment %s offset %d: %v", ErrCorrupt, name, off, err)
		}
		if err := rp.apply(typ, payload); err != nil {
			return 0, fmt.Errorf("%w: wal segment %s offset %d: %v", ErrCorrupt, name, off, err)
		}
		off += n
	}
	return int64(off), nil
}

func (rp *walReplay) apply(typ byte, payload []byte) error {
	switch typ {
	case recEntry:
		var e raftpb.Entry
		if err := e.Unmarshal(payload); err != nil {
			return fmt.Errorf("decode entry: %w", err)
		}
		return rp.addEntry(e)
	case recHardState:
		var hs raftpb.HardState
		if err := hs.Unmarshal(payload); err != nil {
			return fmt.Errorf("decode hard state: %w", err)
		}
		rp.hs = hs
	case recSnapshot:
		if len(payload) != 16 {
			return fmt.Errorf("snapshot marker of %d bytes", len(payload))
		}
		rp.ents = rp.ents[:0]
		rp.base = binary.BigEndian.Uint64(payload)
		rp.hasBase = true
	default:
		return fmt.Errorf("unknown record type %d", typ)
	}
	return nil
}

// decodeRecord parses the record at the start of b and returns its size.
func decodeRecord(b []byte) (typ byte, payload []byte, n int, err error) {
	if len(b) < recHeaderLen {
		return 0, nil, 0, errShortRecord
	}
	l := binary.BigEndian.Uint32(b)
	if l == 0 || l > maxRecordBytes {
		return 0, nil, 0, fmt.Errorf("%w %d", errBadLength, l)
	}
	end := recHeaderLen + int(l)
	if end > len(b) {
		return 0, nil, 0, errShortRecord
	}
	body := b[recHeaderLen:end]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, nil, 0, errBadCRC
	}
	return body[0], body[1:], end, nil
}

// tornTail reports whether a bad record at the start of rest, the end of
// the last segment, is what a crash in the middle of a write leaves: a
// record cut short, a last record whose bytes did not all reach the disk,
// or zeros to the end of the file.
func tornTail(rest []byte, err error) bool {
	if errors.Is(err, errShortRecord) {
		return true
	}
	zeros := true
	for _, c := range rest {
		if c != 0 {
			zeros = false
			break
		}
	}
	if zeros {
		return true
	}
	if errors.Is(err, errBadCRC) {
		return recHeaderLen+int(binary.BigEndian.Uint32(rest)) == len(rest)
	}
	return false
}

func appendRecord(buf []byte, typ byte, payload []byte) []byte {
	var h [recHeaderLen + 1]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(payload)+1))
	h[recHeaderLen] = typ
	crc := crc32.Update(crc32.Checksum(h[recHeaderLen:], castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(h[4:], crc)
	buf = append(buf, h[:]...)
	return append(buf, payload...)
}

func appendEntryRecord(buf []byte, e *raftpb.Entry) ([]byte, error) {
	b, err := e.Marshal()
	if err != nil {
		return buf, fmt.Errorf("quorum: encode entry %d: %w", e.Index, err)
	}
	if len(b)+1 > maxRecordBytes {
		return buf, fmt.Errorf("quorum: entry %d of %d bytes is too large for the wal", e.Index, len(b))
	}
	return appendRecord(buf, recEntry, b), nil
}

func appendHardStateRecord(buf []byte, hs raftpb.HardState) ([]byte, error) {
	b, err := hs.Marshal()
	if err != nil {
		return buf, fmt.Errorf("quorum: encode hard state: %w", err)
	}
	return appendRecord(buf, recHardState, b), nil
}

// save appends a snapshot marker (when marker is non-nil: the log was reset
// to a snapshot), entries and the hard state (unless empty) in one write,
// fsynced when sync is set.
func (w *wal) save(marker *raftpb.SnapshotMetadata, hs raftpb.HardState, ents []raftpb.Entry, sync bool) error {
	buf := w.buf[:0]
	var err error
	if marker != nil {
		var p [16]byte
		binary.BigEndian.PutUint64(p[:], marker.Index)
		binary.BigEndian.PutUint64(p[8:], marker.Term)
		buf = appendRecord(buf, recSnapshot, p[:])
	}
	for i := range ents {
		if buf, err = appendEntryRecord(buf, &ents[i]); err != nil {
			return err
		}
	}
	if !raft.IsEmptyHardState(hs) {
		if buf, err = appendHardStateRecord(buf, hs); err != nil {
			return err
		}
	}
	w.buf = buf
	if len(buf) > 0 {
		if _, err := w.f.Write(buf); err != nil {
			// A full disk writes part of buf: cut it off, so the
			// segment ends with the last whole save and a restart
			// replays nothing this save began.
			w.cutBack(w.size, err)
			return fmt.Errorf("quorum: write wal segment %s: %w", w.segPath(), pathCause(err))
		}
		w.size += int64(len(buf))
	}
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin a big Ready's buffer
	}
	if marker != nil {
		w.last = marker.Index
	}
	if len(ents) > 0 {
		w.last = ents[len(ents)-1].Index
	}
	if !raft.IsEmptyHardState(hs) {
		w.hs = hs
	}
	if sync && len(buf) > 0 {
		if err := w.f.Sync(); err != nil {
			w.cutBack(w.synced, err)
			return fmt.Errorf("quorum: fsync wal segment %s: %w", w.segPath(), pathCause(err))
		}
		w.synced = w.size
	}
	if w.size >= w.segBytes {
		return w.roll()
	}
	return nil
}

// roll makes the previous segment durable and starts a new one, created
// atomically with the header and current hard state, for entries from
// w.last+1.
func (w *wal) roll() error {
	if w.f != nil {
		if err := w.f.Sync(); err != nil {
			w.cutBack(w.synced, err)
			return fmt.Errorf("quorum: fsync wal segment %s: %w", w.segPath(), pathCause(err))
		}
		w.synced = w.size
	}
	var seq uint64
	if n := len(w.segs); n > 0 {
		seq = w.segs[n-1].seq + 1
	}
	seg := walSegment{seq: seq, first: w.last + 1, path: filepath.Join(w.dir, segmentName(seq, w.last+1))}
	buf := []byte(walMagic)
	if !raft.IsEmptyHardState(w.hs) {
		var err error
		if buf, err = appendHardStateRecord(buf, w.hs); err != nil {
			return err
		}
	}
	tmp := seg.path + tmpExt
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("quorum: create wal segment: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("quorum: write wal segment header: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("quorum: fsync wal segment: %w", err)
	}
	if err := os.Rename(tmp, seg.path); err != nil {
		f.Close()
		return fmt.Errorf("quorum: rename wal segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			f.Close()
			return fmt.Errorf("quorum: close wal segment: %w", err)
		}
	}
	w.f = f
	w.size = int64(len(buf))
	w.synced = w.size
	w.segs = append(w.segs, seg)
	return nil
}

// segPath is the path of the last segment. The file was created under a
// temporary name, which its errors would show.
func (w *wal) segPath() string {
	if len(w.segs) == 0 {
		return w.dir
	}
	return w.segs[len(w.segs)-1].path
}

// pathCause is err without the path of an *fs.PathError (the caller names
// the file).
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// cutBack truncates the last segment to size after a failed write or
// fsync (cause), best effort: the node stops on the error, and the next
// start must not replay what no fsync covered. After a failed fsync the
// kernel may have dropped the dirty pages and still serve them from its
// cache, so a restart would trust records that never reached the disk
// (the PostgreSQL "fsyncgate" lesson); nothing after the last good fsync
// was acknowledged, since raft sends a Ready's messages only once it is
// saved. If the truncation fails too, a restart still truncates a torn
// tail (replaySegment).
func (w *wal) cutBack(size int64, cause error) {
	if err := w.f.Truncate(size); err != nil {
		w.log.Warn("could not cut the wal back to its last whole record after a failed write; the next start truncates the torn tail",
			"dir", w.dir, "size", size, "cause", cause, "err", err)
		return
	}
	_ = w.f.Sync() // best effort: the error that stops the node is cause
	w.size = size
}

// release deletes the segments that hold nothing after snapIndex, which a
// durable snapshot covers: those followed by a segment starting at or below
// snapIndex+1. Entries from that point on were all written to later
// segments, and each segment repeats the hard state.
func (w *wal) release(snapIndex uint64) error {
	k := 0
	for i := 1; i < len(w.segs); i++ {
		if w.segs[i].first <= snapIndex+1 {
			k = i
		}
	}
	if k == 0 {
		return nil
	}
	for _, seg := range w.segs[:k] {
		if err := os.Remove(seg.path); err != nil {
			return fmt.Errorf("quorum: remove wal segment: %w", err)
		}
		w.log.Debug("removed wal segment", "segment", filepath.Base(seg.path), "snapshot_index", snapIndex)
	}
	w.segs = append([]walSegment(nil), w.segs[k:]...)
	return syncDir(w.dir)
}

func (w *wal) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return fmt.Errorf("quorum: close wal: %w", err)
	}
	return nil
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("quorum: open %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("quorum: truncate %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("quorum: fsync %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("quorum: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("quorum: fsync dir %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data: temp file, fsync, rename,
// fsync dir.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpExt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("quorum: create %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("quorum: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("quorum: fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("quorum: close %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("quorum: rename %s: %w", name, err)
	}
	return syncDir(dir)
}
