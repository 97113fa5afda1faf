package storage

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Files in a partition directory besides segments and snapshots.
//
// Checkpoint formats (text, like Kafka's checkpoint files):
//
//	leader-epoch-checkpoint            "0\n<count>\n" then "<epoch> <startOffset>\n" per entry (Kafka's format)
//	log-start-offset-checkpoint        "0\n<offset>\n"
//	recovery-point-offset-checkpoint   "0\n<offset>\n": every segment wholly below it is fsynced with its indexes
//	replication-offset-checkpoint      "0\n<offset>\n": the high watermark (follower.go; not fsynced)
//	partition.metadata                 "version: 0\ntopic_id: <base64url topic id, no padding>\n" (Kafka's format)
//	.clean-shutdown                    "strata-clean-shutdown 1\n" then the log's summary (deferred.go); present only between Close and the next Open
//
// and in the data dir, clean-shutdown-summary: every log's marker, written
// at a broker's shutdown in place of theirs (dirsummary.go).
//
// All are replaced atomically: written to <name>.tmp, fsynced, renamed over
// the old file, and the directory fsynced (replication-offset-checkpoint
// only renamed).
const (
	epochCheckpointFile = "leader-epoch-checkpoint"
	// epochTailFile holds the whole leader epoch cache while it has new
	// epochs the checkpoint does not (Log.epochsChanged), written in place
	// without fsync.
	epochTailFile             = "leader-epoch-checkpoint.tail"
	logStartCheckpointFile    = "log-start-offset-checkpoint"
	recoveryCheckpointFile    = "recovery-point-offset-checkpoint"
	replicationCheckpointFile = "replication-offset-checkpoint"
	partitionMetadataFile     = "partition.metadata"
	cleanShutdownFile         = ".clean-shutdown"
)

// ErrInconsistentTopicID is returned by Open when partition.metadata names
// another topic id than Options.TopicID.
var ErrInconsistentTopicID = errors.New("storage: partition.metadata holds a different topic id")

// writeFileAtomic replaces dir/name with data durably.
// A failure is wrapped in ErrIO, and the temporary file is removed (on a
// full disk it would hold on to space).
func writeFileAtomic(dir, name string, data []byte, fsync bool) error {
	return writeFileAtomicIO(nil, dir, name, data, fsync)
}

// writeFileAtomicIO is writeFileAtomic with its fsyncs through io
// (FileIO.SyncPath).
func writeFileAtomicIO(io *FileIO, dir, name string, data []byte, fsync bool) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	if err := writeFileAtomicTmp(io, dir, name, tmp, data, fsync); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return nil
}

func writeFileAtomicTmp(io *FileIO, dir, name, tmp string, data []byte, fsync bool) error {
	if err := writeSmallFile(tmp, data, 0, unix.O_TRUNC, fsync && (io == nil || io.SyncPath == nil)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if fsync && io != nil && io.SyncPath != nil {
		if err := io.SyncPath(tmp); err != nil {
			return fmt.Errorf("fsync %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	if fsync {
		if err := io.syncPath(dir); err != nil {
			return fmt.Errorf("fsync dir %s: %w", dir, err)
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

func writeOffsetCheckpoint(dir, name string, off int64) error {
	return writeFileAtomic(dir, name, []byte("0\n"+strconv.FormatInt(off, 10)+"\n"), true)
}

// readOffsetCheckpoint returns the offset in the checkpoint, or def when the
// file does not exist.
func readOffsetCheckpoint(dir, name string, def int64) (int64, error) {
	b, err := ReadSmallFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("read %s: %w", name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || lines[0] != "0" {
		return def, fmt.Errorf("read %s: malformed checkpoint %q", name, b)
	}
	off, err := strconv.ParseInt(strings.TrimSpace(lines[1]), 10, 64)
	if err != nil {
		return def, fmt.Errorf("read %s: %w", name, err)
	}
	return off, nil
}

type epochEntry struct {
	epoch       int32
	startOffset int64
}

// epochCache is Kafka's LeaderEpochFileCache: the start offset of each
// leader epoch, increasing in both fields.
type epochCache struct {
	entries []epochEntry
}

func (c *epochCache) latest() (epochEntry, bool) {
	if len(c.entries) == 0 {
		return epochEntry{}, false
	}
	return c.entries[len(c.entries)-1], true
}

// first is the oldest epoch in the cache.
func (c *epochCache) first() (epochEntry, bool) {
	if len(c.entries) == 0 {
		return epochEntry{}, false
	}
	return c.entries[0], true
}

// known is the set of epochs the cache holds.
func (c *epochCache) known() map[int32]bool {
	out := make(map[int32]bool, len(c.entries))
	for _, e := range c.entries {
		out[e.epoch] = true
	}
	return out
}

// assign records that epoch starts at off, if epoch is newer than the latest
// one. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, off int64) bool {
	if epoch < 0 {
		return false
	}
	if l, ok := c.latest(); ok && epoch <= l.epoch {
		return false
	}
	// Drop entries that a new epoch starting at off contradicts.
	for len(c.entries) > 0 && c.entries[len(c.entries)-1].startOffset >= off {
		c.entries = c.entries[:len(c.entries)-1]
	}
	c.entries = append(c.entries, epochEntry{epoch, off})
	return true
}

// truncateFromEnd removes the epochs starting at or after end.
func (c *epochCache) truncateFromEnd(end int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].startOffset >= end {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart removes epochs that end before start, moving the start
// of the epoch that contains start up to it.
func (c *epochCache) truncateFromStart(start int64) bool {
	i := 0
	for i < len(c.entries) && c.entries[i].startOffset <= start {
		i++
	}
	if i == 0 {
		return false
	}
	// entries[i-1] is the epoch containing start.
	if i-1 == 0 && c.entries[0].startOffset == start {
		return false
	}
	c.entries[i-1].startOffset = start
	c.entries = append(c.entries[:0], c.entries[i-1:]...)
	return true
}

// endOffsetFor implements Kafka's LeaderEpochFileCache.endOffsetFor.
func (c *epochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	if epoch < 0 {
		return -1, -1
	}
	if l, ok := c.latest(); ok && l.epoch == epoch {
		return epoch, leo
	}
	// First entry with a larger epoch.
	hi := 0
	for hi < len(c.entries) && c.entries[hi].epoch <= epoch {
		hi++
	}
	if hi == len(c.entries) {
		return -1, -1 // larger than every known epoch, or no epochs
	}
	if hi == 0 {
		// Smaller than every known epoch: Kafka answers with the requested
		// epoch and the start of the first known one.
		return epoch, c.entries[0].startOffset
	}
	return c.entries[hi-1].epoch, c.entries[hi].startOffset
}

func (c *epochCache) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.startOffset)
	}
	return b.Bytes()
}

func readEpochCheckpoint(dir string) (epochCache, error) {
	return readEpochFile(dir, epochCheckpointFile)
}

// readEpochTail returns the leader epoch tail file's cache if it extends
// main (main's entries are its first entries, and it has more); ok is
// false otherwise (no file, an unreadable one, or one a durable write of
// the checkpoint has overtaken), and the caller keeps main. exists says
// whether there is a file at all.
func readEpochTail(dir string, main epochCache) (tail epochCache, ok, exists bool) {
	b, err := ReadSmallFile(filepath.Join(dir, epochTailFile))
	if errors.Is(err, os.ErrNotExist) {
		return epochCache{}, false, false
	}
	if err != nil {
		return epochCache{}, false, true
	}
	tail, err = parseEpochCheckpoint(b, epochTailFile)
	if err != nil || len(tail.entries) <= len(main.entries) || !slices.Equal(tail.entries[:len(main.entries)], main.entries) {
		return epochCache{}, false, true
	}
	for i := 1; i < len(tail.entries); i++ {
		if tail.entries[i].epoch <= tail.entries[i-1].epoch || tail.entries[i].startOffset <= tail.entries[i-1].startOffset {
			return epochCache{}, false, true
		}
	}
	return tail, true, true
}

func readEpochFile(dir, name string) (epochCache, error) {
	b, err := ReadSmallFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return epochCache{}, nil
	}
	if err != nil {
		return epochCache{}, fmt.Errorf("read %s: %w", name, err)
	}
	return parseEpochCheckpoint(b, name)
}

// parseEpochCheckpoint parses a leader epoch checkpoint's content.
func parseEpochCheckpoint(b []byte, name string) (epochCache, error) {
	var c epochCache
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	bad := func(why string) error {
		return fmt.Errorf("read %s: malformed checkpoint (%s)", name, why)
	}
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "0" {
		return c, bad("header")
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n != len(lines)-2 {
		return c, bad("count")
	}
	for _, ln := range lines[2:] {
		f := strings.Fields(ln)
		if len(f) != 2 {
			return c, bad("entry")
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return c, bad("entry")
		}
		c.entries = append(c.entries, epochEntry{int32(e), o})
	}
	return c, nil
}

// writePartitionMetadata writes partition.metadata, or checks that an
// existing one names the same topic id. Without fsync the new file is
// made durable later (Log.syncCreated); a file that a machine crash left
// empty or unreadable holds no "topic_id:" and is written again.
func writePartitionMetadata(dir string, id [16]byte, fsync bool) error {
	if id == ([16]byte{}) {
		return nil
	}
	same, err := checkPartitionMetadata(dir, id)
	if same || err != nil {
		return err
	}
	return writeFileAtomic(dir, partitionMetadataFile, []byte(partitionMetadata(id)), fsync)
}

func partitionMetadata(id [16]byte) string {
	return "version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(id[:]) + "\n"
}

// checkPartitionMetadata reads partition.metadata: same if it names id,
// ErrInconsistentTopicID if it names another, neither if it is missing or
// names none (it is written again). A topic id that does not decode is
// an error of its own: the log fails to open, and its files stay (the
// caller removes a log of another topic id, never one it cannot tell).
func checkPartitionMetadata(dir string, id [16]byte) (same bool, err error) {
	b, err := ReadSmallFile(filepath.Join(dir, partitionMetadataFile))
	if err != nil {
		return false, nil
	}
	if string(b) == partitionMetadata(id) {
		return true, nil
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(k) != "topic_id" {
			continue
		}
		have, derr := base64.RawURLEncoding.DecodeString(strings.TrimSpace(v))
		if derr != nil || len(have) != len(id) {
			return false, fmt.Errorf("storage: unreadable topic id %q in %s", strings.TrimSpace(v), filepath.Join(dir, partitionMetadataFile))
		}
		if [16]byte(have) == id {
			return true, nil // the same id, written differently
		}
		return false, fmt.Errorf("%w: %q in %s", ErrInconsistentTopicID, strings.TrimSpace(string(b)), dir)
	}
	return false, nil
}
