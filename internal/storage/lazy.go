package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Lazy logs (Options.Lazy), for brokers with many partitions: most of a
// new partition's cost on disk (a directory, partition.metadata, an empty
// segment, their fsyncs, an open file descriptor) and most of a clean
// restart's (removing each log's clean shutdown marker and fsyncing its
// directory, then writing it again at shutdown) buys nothing until the
// partition is written. So:
//
//   - Open of a log whose directory does not exist creates nothing: the log
//     is empty at offset 0 with one in-memory segment that has no file
//     (noDir). The first write creates the directory, partition.metadata
//     and the segment file (ensureAppendable) before the write, without
//     fsyncs: the next flush that fsyncs data fsyncs them first
//     (syncCreated). A crash before the first write loses nothing: there
//     was nothing, and the next Open is again of a log without a
//     directory.
//   - Open of a cleanly shut down log leaves the marker in place
//     (cleanMarker) and the first write removes it durably before
//     writing. A crash before the first write finds the files exactly as
//     the clean shutdown left them, marker included, which is the truth.
//   - Close of a log with noDir or cleanMarker still set writes nothing.
//   - A live entry in the data dir's clean shutdown summary (dirsummary.go)
//     stands for the marker (cleanMarker covers both; sumIdx names it),
//     and is voided where the marker is removed, as durably.
//
// Every path that changes a file under the log's directory calls
// ensureWritable first, with mu held for writing.

// openInMemory sets up an empty log with no directory; mu not needed (the
// log is not shared yet).
func (l *Log) openInMemory() {
	now := l.now()
	s := &segment{dir: l.dir, base: 0, next: 0, maxTs: -1, maxTsOffset: -1, firstBatchTs: -1, created: now, mem: true}
	s.refs.Store(1)
	s.onClose = l.reportCloseError
	l.segs = []*segment{s}
	l.noDir = true
	l.lastFlushMs = now.UnixMilli()
}

// ensureWritable makes the log ready to be written: it creates the
// directory of a log that has none yet, and removes the clean shutdown
// marker of a log that still has it, durably in both cases (and makes
// durable whatever an earlier append left to the next flush: syncCreated).
// For every path but the appends: truncations, retention, cleaning and
// repairs at load fsync what they change, and what they change must not
// come back after a machine crash without the directory it is in. mu held
// for writing.
func (l *Log) ensureWritable() error {
	if err := l.ensureAppendable(); err != nil {
		return err
	}
	if err := l.syncCreated(); err != nil {
		return fmt.Errorf("storage: %w: %w", ErrIO, err)
	}
	return nil
}

// ensureAppendable is ensureWritable for the append paths (leader and
// follower): a new log's directory, partition.metadata and segment file
// are created without fsyncs, and their durability follows the data's: the
// next flush that fsyncs data (a roll's, flush.messages, flush.ms,
// log.fsync=always, a clean shutdown) fsyncs them first (syncCreated), as
// Kafka's LocalLog.flush fsyncs the directory of segments created since
// the recovery point rather than at creation. A process crash (kill -9)
// loses nothing of them: they are in the page cache. A machine crash before
// that flush may lose the directory, as it may lose the unflushed records
// in it: the log then opens empty, lazily, as it was before its first
// write. The clean shutdown marker is removed without an fsync too when
// its summary lets load check it (markerLazy), durably otherwise. mu held
// for writing.
func (l *Log) ensureAppendable() error {
	if l.noDir {
		if err := l.createOnDisk(); err != nil {
			if !errors.Is(err, ErrIO) {
				err = fmt.Errorf("%w: %w", ErrIO, err)
			}
			return fmt.Errorf("create log %s: %w", l.dir, err)
		}
	}
	if l.cleanMarker {
		if l.markerLazy {
			// Durable with the next flush, or the next roll (rollAt),
			// whichever comes first. Until then a crash may bring the
			// marker back (a machine crash) or keep the summary's entry
			// live (any crash) over an active segment this append made
			// longer, which load tells by its size (activeMatches) and
			// recovers.
			removed, err := removeMarker(l.dir)
			if err != nil {
				return err
			}
			if removed {
				l.dirUnsynced.Store(true)
			}
			if l.sumIdx > 0 {
				l.voidPending.Store(true)
			}
		} else if err := l.dropClean(); err != nil {
			return err
		}
		l.cleanMarker, l.markerLazy = false, false
	}
	return nil
}

// removeMarker removes the clean shutdown marker of dir, without fsync,
// and reports whether there was one.
func removeMarker(dir string) (bool, error) {
	err := os.Remove(filepath.Join(dir, cleanShutdownFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: %w: remove clean shutdown marker: %w", ErrIO, err)
	}
	return true, nil
}

// dropClean removes the log's clean shutdown marker and voids its entry in
// the data dir's summary, both durably, before a change the marker would
// not describe; a failure is ErrIO. mu held for writing (or the log not
// shared yet).
func (l *Log) dropClean() error {
	removed, err := removeMarker(l.dir)
	if err != nil {
		return err
	}
	if removed {
		if err := l.io.syncPath(l.dir); err != nil {
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
	}
	if l.sumIdx > 0 {
		if err := l.opts.Summary.void(l.sumIdx - 1); err != nil {
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
		l.voidPending.Store(false)
	}
	return nil
}

// summaryEntry looks the log up in the data dir's clean shutdown summary
// and remembers its entry (sumIdx): ok says it has a live one, hasSum
// that the entry carries a summary. mu held for writing (or the log not
// shared yet).
func (l *Log) summaryEntry() (sum cleanSummary, hasSum, ok bool) {
	i, sum, hasSum := l.opts.Summary.live(filepath.Base(l.dir))
	if i < 0 {
		l.sumIdx = 0
		return cleanSummary{}, false, false
	}
	l.sumIdx = i + 1
	return sum, hasSum, true
}

// createOnDisk creates the directory, partition.metadata and the segment
// file of a log opened without a directory, without fsyncs: dirUnsynced
// tells the next flush to make them durable (syncCreated). The in-memory
// segment (empty) is replaced by the one with a file. mu held for
// writing.
func (l *Log) createOnDisk() error {
	// The fewest system calls that do it: with thousands of partitions
	// written for the first time on a busy core, each costs. The directory
	// is new, so nothing in it needs checking, replacing or removing.
	l.snaps = snapList{known: true} // a new directory has none
	if err := os.Mkdir(l.dir, 0o755); err != nil {
		// The data dir itself is missing, or something is there already:
		// the general path, which fails on a file in the way (and leaves
		// it alone).
		l.snaps.known = false
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return err
		}
	}
	undo := func(err error) error {
		os.RemoveAll(l.dir)
		return err
	}
	if err := l.writeNewPartitionMetadata(); err != nil {
		return undo(err)
	}
	old := l.active()
	s, err := newEmptySegment(l.dir, old.base, old.created, l.opts.FDCache)
	if err != nil {
		return undo(err)
	}
	s.onClose = l.reportCloseError
	l.segs[len(l.segs)-1] = s
	old.release()
	l.noDir = false
	l.dirUnsynced.Store(true)
	return nil
}

// writeNewPartitionMetadata writes partition.metadata into the directory
// createOnDisk just made, without a temporary file: a process crash
// between the create and the write leaves an empty file, and a machine
// crash before the next flush an empty or unreadable one, both of which
// hold no "topic_id:" and are written again at Open (writePartitionMetadata).
// A directory that existed already (made by someone else meanwhile) gets
// the usual check.
func (l *Log) writeNewPartitionMetadata() error {
	id := l.opts.TopicID
	if id == ([16]byte{}) {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(l.dir, partitionMetadataFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return writePartitionMetadata(l.dir, id, false)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", partitionMetadataFile, err)
	}
	_, werr := f.Write([]byte("version: 0\ntopic_id: " + base64.RawURLEncoding.EncodeToString(id[:]) + "\n"))
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", partitionMetadataFile, err)
	}
	return nil
}

// newEmptySegment creates the first segment file of a log directory just
// created: no earlier file by that name, so no truncation, no stale
// indexes to remove and no size to read.
func newEmptySegment(dir string, base int64, now time.Time, cache *FDCache) (*segment, error) {
	s := &segment{dir: dir, base: base, next: base, maxTs: -1, maxTsOffset: -1, firstBatchTs: -1, created: now}
	f, err := os.OpenFile(s.path(logSuffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return openSegment(dir, base, now, true, cache)
	}
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	s.f = f
	s.refs.Store(1)
	if cache != nil {
		s.cache = cache
		cache.add(s)
	}
	return s, nil
}

// syncCreated makes durable what the append paths left unsynced: a
// directory created by the first write (its entry in the data dir, its own
// entries, partition.metadata) and a leader epoch checkpoint written
// without fsync (writeEpochs). The caller holds mu, for reading at least,
// so that no append sets either flag while it runs; both are cleared only
// once their fsyncs succeeded.
func (l *Log) syncCreated() error {
	dir, epochs, void := l.dirUnsynced.Load(), l.epochsUnsynced.Load(), l.voidPending.Load()
	if !dir && !epochs && !void {
		return nil
	}
	if void {
		// First: what the caller makes durable next (a roll's new
		// segment, a flush's recovery point) must not be covered by the
		// entry.
		if err := l.opts.Summary.void(l.sumIdx - 1); err != nil {
			return err
		}
		l.voidPending.Store(false)
	}
	if epochs {
		if err := l.io.syncPath(filepath.Join(l.dir, epochCheckpointFile)); err != nil {
			return err
		}
	}
	if dir {
		if err := l.io.syncPath(filepath.Join(l.dir, partitionMetadataFile)); err != nil {
			return err
		}
	}
	if err := l.io.syncPath(l.dir); err != nil {
		return err
	}
	if dir {
		if err := l.io.syncPath(filepath.Dir(filepath.Clean(l.dir))); err != nil {
			return err
		}
	}
	l.dirUnsynced.Store(false)
	l.epochsUnsynced.Store(false)
	return nil
}

// raiseRecoveryFloor notes that a recovery point of off may be on disk
// from now on (recoveryFloor).
func (l *Log) raiseRecoveryFloor(off int64) {
	for {
		cur := l.recoveryFloor.Load()
		if off <= cur || l.recoveryFloor.CompareAndSwap(cur, off) {
			return
		}
	}
}

// ensureWritableLocked takes mu for writing around ensureWritable, for
// paths that do not hold it.
func (l *Log) ensureWritableLocked() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ensureWritable()
}

// SyncFS makes every file of the file system holding dir durable, with one
// syncfs(2): what a broker closing thousands of logs does instead of
// fsyncing each (Log.CloseDeferSync).
func SyncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage: %w: syncfs: %w", ErrIO, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("storage: %w: syncfs %s: %w", ErrIO, dir, err)
	}
	return nil
}
