package storage

import (
	"errors"
	"os"

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
