package storage

import "sync"

// scanBufBytes is the size of the buffer Open's scan of a segment reads
// through (newBatchReader).
const scanBufBytes = 256 << 10

// ScanBuffers lends the scan buffers of Open (scanBufBytes each) to the
// logs opened by one owner, such as a partition manager. A start after a
// crash recovers the active segment of every log: with thousands of logs,
// a buffer allocated per log was fresh memory every time (page faults and
// zeroing, an eighth of the CPU of a restart of 10,000 logs). A log takes
// one for its load and gives it back when the load is done. The zero
// value is not usable; a nil *ScanBuffers allocates per log.
type ScanBuffers struct {
	mu   sync.Mutex
	free [][]byte
	max  int
}

// NewScanBuffers returns a lender that keeps up to keep buffers (the
// number of logs opened at once is enough).
func NewScanBuffers(keep int) *ScanBuffers { return &ScanBuffers{max: max(keep, 1)} }

// get returns a buffer, nil if p is nil (newBatchReader then allocates).
func (p *ScanBuffers) get() []byte {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, scanBufBytes)
}

// put gives b back; a buffer that grew for a large batch is dropped.
func (p *ScanBuffers) put(b []byte) {
	if p == nil || cap(b) != scanBufBytes {
		return
	}
	p.mu.Lock()
	if len(p.free) < p.max {
		p.free = append(p.free, b[:cap(b)])
	}
	p.mu.Unlock()
}
