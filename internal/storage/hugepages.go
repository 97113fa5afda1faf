package storage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mapHugeSlab maps n bytes of anonymous memory outside the Go heap and asks
// the kernel to back it with transparent huge pages. The advice may be
// refused (a kernel without them, or with them off): that changes only
// speed. The caller unmaps the slab with unix.Munmap once nothing points
// into it.
func mapHugeSlab(n int) ([]byte, error) {
	m, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes: %w", n, err)
	}
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	return m, nil
}
