package network

import (
	"math/bits"
	"sync"
)

// Request bodies come from size-classed pools (powers of two from 4 KiB to
// 16 MiB) so that a busy producer connection does not allocate and zero a
// fresh megabyte per request. A buffer goes back to its pool only when the
// handler says it is done with it (Request.Recycle); otherwise the garbage
// collector takes it as usual. Larger requests are allocated exactly.
const (
	minPoolShift = 12 // 4 KiB
	maxPoolShift = 24 // 16 MiB
)

type bufPool struct {
	classes [maxPoolShift - minPoolShift + 1]sync.Pool
}

// get returns a slice of length size and, when it came from a pool, the
// handle to give back to put.
func (p *bufPool) get(size int) ([]byte, *[]byte) {
	shift := max(bits.Len(uint(size-1)), minPoolShift)
	if shift > maxPoolShift {
		return make([]byte, size), nil
	}
	c := &p.classes[shift-minPoolShift]
	if v := c.Get(); v != nil {
		ref := v.(*[]byte)
		return (*ref)[:size], ref
	}
	b := make([]byte, 1<<shift)
	return b[:size], &b
}

func (p *bufPool) put(ref *[]byte) {
	if ref == nil {
		return
	}
	shift := bits.Len(uint(cap(*ref) - 1))
	p.classes[shift-minPoolShift].Put(ref)
}
