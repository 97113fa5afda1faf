package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
//     and the segment file (ensureWritable), durably, before the write.
//     A crash before that loses nothing: there was nothing, and the next
//     Open is again of a log without a directory.
//   - Open of a cleanly shut down log leaves the marker in place
//     (cleanMarker) and the first write removes it durably before
//     writing. A crash before the first write finds the files exactly as
//     the clean shutdown left them, marker included, which is the truth.
//   - Close of a log with noDir or cleanMarker still set writes nothing.
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
// marker of a log that still has it, durably in both cases. mu held for
// writing.
func (l *Log) ensureWritable() error {
	if l.noDir {
		if err := l.createOnDisk(); err != nil {
			if !errors.Is(err, ErrIO) {
				err = fmt.Errorf("%w: %w", ErrIO, err)
			}
			return fmt.Errorf("create log %s: %w", l.dir, err)
		}
	}
	if l.cleanMarker {
		if err := os.Remove(filepath.Join(l.dir, cleanShutdownFile)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("storage: %w: remove clean shutdown marker: %w", ErrIO, err)
		}
		if err := syncDir(l.dir); err != nil {
			return fmt.Errorf("storage: %w: %w", ErrIO, err)
		}
		l.cleanMarker = false
	}
	return nil
}

// createOnDisk creates the directory, partition.metadata and the segment
// file of a log opened without a directory, and fsyncs the parent so the
// directory survives a machine crash. The in-memory segment (empty) is
// replaced by the one with a file. mu held for writing.
func (l *Log) createOnDisk() error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	undo := func(err error) error {
		os.RemoveAll(l.dir)
		return err
	}
	if err := writePartitionMetadata(l.dir, l.opts.TopicID); err != nil {
		return undo(err)
	}
	old := l.active()
	s, err := openSegment(l.dir, old.base, old.created, true, l.opts.FDCache)
	if err != nil {
		return undo(err)
	}
	s.onClose = l.reportCloseError
	if err := syncDir(l.dir); err != nil {
		s.release()
		return undo(err)
	}
	if err := syncDir(filepath.Dir(filepath.Clean(l.dir))); err != nil {
		s.release()
		return undo(err)
	}
	l.segs[len(l.segs)-1] = s
	old.release()
	l.noDir = false
	return nil
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
