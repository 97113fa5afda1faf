package storage

import (
	"errors"
	"fmt"
	"os"
)

// Storage faults. A write that fails (ENOSPC, EIO) is cut back to the last
// whole batch, so the log never holds a torn batch for the next append to
// land behind, and the append returns ErrIO; the log stays usable, and the
// next append succeeds once the disk has room again. A write that cannot
// be cut back, or a failed fsync of a segment file, fails the log for good
// (see ErrIO).

// FileIO is the seam under the two calls through which appended (and
// cleaned) data reaches the disk: the positional write to a segment file
// and the fsync of a segment file. Tests set it (Options.IO) to inject a full
// disk, a short write or a failing fsync deterministically, as pebble's
// errorfs does; a nil field calls the operating system.
type FileIO struct {
	WriteAt func(f *os.File, b []byte, off int64) (int, error)
	Sync    func(f *os.File) error
	// SyncPath is the fsync, by name, of a log's directory, its parent,
	// or one of its small files (the leader epoch checkpoint,
	// partition.metadata) on the paths that create a log and assign
	// leader epochs (lazy.go); tests count and fail them.
	SyncPath func(path string) error
	// SyncFS is the syncfs(2) of the data dir's file system that a
	// durable journal runs before it removes a file (Journal.removeUnneeded).
	SyncFS func(dir string) error
}

func (io *FileIO) syncFS(dir string) error {
	if io != nil && io.SyncFS != nil {
		return io.SyncFS(dir)
	}
	return SyncFS(dir)
}

func (io *FileIO) writeAt(f *os.File, b []byte, off int64) (int, error) {
	if io != nil && io.WriteAt != nil {
		return io.WriteAt(f, b, off)
	}
	return f.WriteAt(b, off)
}

// writevAt writes bufs, one after the other, at off: one pwritev (per
// 1024 buffers), or WriteAt per buffer when that is replaced. It does not
// change bufs, so that a failed write can be tried again from them.
func (io *FileIO) writevAt(f *os.File, bufs [][]byte, off int64) (int, error) {
	if io != nil && io.WriteAt != nil {
		total := 0
		for _, b := range bufs {
			n, err := io.WriteAt(f, b, off+int64(total))
			total += n
			if err != nil {
				return total, err
			}
		}
		return total, nil
	}
	return pwritev(f, bufs, off)
}

func (io *FileIO) sync(f *os.File) error {
	if io != nil && io.Sync != nil {
		return io.Sync(f)
	}
	return f.Sync()
}

// syncPath fsyncs the file or directory at path; a file that does not
// exist is not an error (there is nothing to make durable).
func (io *FileIO) syncPath(path string) error {
	if io != nil && io.SyncPath != nil {
		return io.SyncPath(path)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s for fsync: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// cutBack truncates s's log file back to pos after a failed write (werr)
// and reports whether it could. If it could not, whatever part of the batch
// reached the file stays there, and the log fails: a later append would
// land behind the torn bytes. mu held.
func (l *Log) cutBack(s *segment, pos int64, werr error) bool {
	if terr := s.withFile(func(f *os.File) error { return f.Truncate(pos) }); terr != nil {
		l.failed = fmt.Errorf("%w: write at %d of %s failed (%v), and so did truncating it back: %w", ErrIO, pos, s.path(logSuffix), werr, terr)
		return false
	}
	return true
}

// failFsync fails the log after an fsync of s's log file failed: the
// kernel may have marked the unwritten pages clean, so a later fsync that
// succeeds says nothing about them, and the durable offset must not move
// past the last good fsync again until the log is reopened (and
// recovered).
func (l *Log) failFsync(s *segment, err error) error {
	err = fmt.Errorf("%w: fsync %s: %w", ErrIO, s.path(logSuffix), err)
	l.mu.Lock()
	if l.failed == nil {
		l.failed = err
	}
	l.mu.Unlock()
	return err
}

// Failed returns the error that failed the log for good (a failed fsync,
// a torn write that could not be cut back), or nil.
func (l *Log) Failed() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.failed
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }
