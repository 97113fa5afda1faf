package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"
)

// The lagging-reader probe (--lag): the tail is produced as usual but not
// read during the phase, as by a consumer some minutes behind. Its pages
// are then touched once (written) and sit on the page cache's inactive
// list, where a cold reader's pages compete with them. At the end of the
// phase the probe reports how much of what the tail wrote in the phase is
// still resident (mincore over that byte range of the tail's segment
// file), then times a consumer catching up on it from the phase's first
// offset: from memory if it stayed, from the disk if the cold reader
// pushed it out.

// tailSegment is the tail partition's active segment file (one segment:
// the tail never reaches the default segment size in a run).
func tailSegment(o options) (string, error) {
	m, err := filepath.Glob(filepath.Join(o.dir, "data", "tail-0", "*.log"))
	if err != nil || len(m) == 0 {
		return "", fmt.Errorf("tail segment not found (%v)", err)
	}
	return m[len(m)-1], nil
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// resident returns the fraction of [from, to) of path that is in the page
// cache.
func resident(path string, from, to int64) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	page := int64(os.Getpagesize())
	from = from / page * page
	if to <= from {
		return 0, fmt.Errorf("empty range %d-%d", from, to)
	}
	m, err := unix.Mmap(int(f.Fd()), from, int(to-from), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, fmt.Errorf("mmap %s: %w", path, err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (int64(len(m))+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, fmt.Errorf("mincore %s: %w", path, e)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}

// catchUp reads the tail partition from offset from up to (not including)
// offset to, and returns the bytes read and the time it took.
func catchUp(addr string, from, to int64) (int64, time.Duration, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"tail": {0: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var n int64
	next := from
	for next < to {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return n, time.Since(start), fmt.Errorf("catch-up read at %d: %w", next, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < to {
				n += int64(len(r.Value))
			}
			next = r.Offset + 1
		})
	}
	return n, time.Since(start), nil
}

// lagProbe follows one phase's tail writes: the segment's size when the
// measured window opens and closes, and the offsets produced inside it.
type lagProbe struct {
	o              options
	seg            string
	fromPos, toPos int64
	first, last    atomic.Int64
}

func (p *lagProbe) start(o options) {
	p.o = o
	p.fromPos, p.toPos = -1, -1
	p.first.Store(-1)
	p.last.Store(-1)
}

// mark notes the segment's size once the window opens and once it closes
// (the tail's log exists from its first write: logs are created lazily).
func (p *lagProbe) mark(from, to time.Time) {
	now := time.Now()
	if now.Before(from) {
		return
	}
	if p.seg == "" {
		seg, err := tailSegment(p.o)
		if err != nil {
			return
		}
		p.seg = seg
	}
	if p.fromPos < 0 {
		p.fromPos = fileSize(p.seg)
	}
	if p.toPos < 0 && !now.Before(to) {
		p.toPos = fileSize(p.seg)
	}
}

// promise records the offsets of records sent inside the window.
func (p *lagProbe) promise(inWindow bool) func(*kgo.Record, error) {
	if !inWindow {
		return nil
	}
	return func(r *kgo.Record, err error) {
		if err != nil {
			return
		}
		for {
			f := p.first.Load()
			if (f >= 0 && f <= r.Offset) || p.first.CompareAndSwap(f, r.Offset) {
				break
			}
		}
		for {
			l := p.last.Load()
			if l >= r.Offset || p.last.CompareAndSwap(l, r.Offset) {
				break
			}
		}
	}
}

func (p *lagProbe) finish(g *cgroup, addr string, coldMBps float64) (result, error) {
	r := result{coldMBps: coldMBps, stat: g.stat()}
	if p.fromPos < 0 || p.toPos <= p.fromPos || p.first.Load() < 0 {
		return r, fmt.Errorf("lag probe: window not seen (segment %d-%d, first offset %d)", p.fromPos, p.toPos, p.first.Load())
	}
	r.tailBytes = p.toPos - p.fromPos
	var err error
	if r.resident, err = resident(p.seg, p.fromPos, p.toPos); err != nil {
		return r, err
	}
	r.catchBytes, r.catchUp, err = catchUp(addr, p.first.Load(), p.last.Load()+1)
	return r, err
}
