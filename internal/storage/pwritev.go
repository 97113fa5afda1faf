package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// iovMax is the most buffers one pwritev takes (Linux's IOV_MAX).
const iovMax = 1024

// pwritev writes bufs at off with pwritev(2), as many calls as it takes:
// a short write goes on from where it stopped (on a copy of bufs, which
// stays as it was).
func pwritev(f *os.File, bufs [][]byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("pwritev %s: %w", f.Name(), err)
	}
	total, copied := 0, false
	for len(bufs) > 0 {
		batch := bufs[:min(len(bufs), iovMax)]
		var n int
		var werr error
		if err := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), batch, off)
			return true
		}); err != nil {
			return total, fmt.Errorf("pwritev %s: %w", f.Name(), err)
		}
		if errors.Is(werr, unix.EINTR) {
			continue
		}
		if werr != nil {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: werr}
		}
		if n == 0 {
			return total, &os.PathError{Op: "pwritev", Path: f.Name(), Err: io.ErrShortWrite}
		}
		total += n
		off += int64(n)
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
				continue
			}
			if !copied {
				bufs, copied = slices.Clone(bufs), true
			}
			bufs[0] = bufs[0][n:]
			n = 0
		}
	}
	return total, nil
}
