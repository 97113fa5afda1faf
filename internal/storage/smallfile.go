package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ReadSmallFile reads a whole file with open, read and close system calls
// alone. os.ReadFile also stats the file and sets its descriptor
// non-blocking (two fcntl) for the runtime's poller, which a regular file
// never uses: a start reads several such files (the clean shutdown
// marker, checkpoints, partition.metadata) for each of thousands of logs,
// and those extra calls were a fifth of a clean restart's CPU at 10,000
// partitions (issue 14). Errors are *os.PathError, so errors.Is(err,
// os.ErrNotExist) works as with os.ReadFile.
func ReadSmallFile(name string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 512)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: name, Err: err}
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
}

// writeSmallFile writes data at off of the file name, creating it if need
// be (with O_TRUNC in flags, emptied first), optionally fsyncs it, and
// closes it: open, pwrite, fsync and close system calls alone, for the
// reason ReadSmallFile gives. os.OpenFile also sets the descriptor
// non-blocking and tries to register it with the runtime's poller; at a
// shutdown that writes a clean shutdown marker, a recovery point, a
// producer snapshot and index tails for each of 20,000 logs, those calls
// were a fifth of its CPU (issue 14). Errors are *os.PathError.
func writeSmallFile(name string, data []byte, off int64, flags int, fsync bool) error {
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC|flags, 0o644)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	for len(data) > 0 {
		n, err := unix.Pwrite(fd, data, off)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: name, Err: err}
		case n == 0:
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: name, Err: unix.EIO}
		}
		data, off = data[n:], off+int64(n)
	}
	if fsync {
		if err := unix.Fsync(fd); err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "fsync", Path: name, Err: err}
		}
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: name, Err: err}
	}
	return nil
}

// writeFileNew writes data to the file name of dir, which should not
// exist yet, without writeFileAtomic's temporary file and rename and
// without fsync. It is for a deferred close (Log.CloseDeferSync), whose
// caller makes the files durable with a syncfs afterwards, and for files
// whose torn or empty form is harmless: a producer snapshot that fails its
// checksum is ignored, and a clean shutdown marker is only written once
// everything it vouches for is durable, so a torn one still tells the
// truth (its summary is then unreadable, which means a full load). At a
// shutdown of 20,000 logs the renames were a large part of the cost
// (issue 14). If name exists, it is replaced with writeFileAtomic, so that
// a good file is never torn.
func writeFileNew(dir, name string, data []byte) error {
	p := filepath.Join(dir, name)
	err := writeSmallFile(p, data, 0, unix.O_EXCL, false)
	if errors.Is(err, unix.EEXIST) {
		return writeFileAtomic(dir, name, data, false)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Op != "open" {
			os.Remove(p) // created here: no torn file left behind
		}
		return fmt.Errorf("%w: %w", ErrIO, err)
	}
	return nil
}
