package storage

import (
	"encoding/binary"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// Index entry sizes, as in Kafka.
const (
	offsetEntrySize = 8  // relative offset int32, position int32
	timeEntrySize   = 12 // timestamp int64, relative offset int32
)

// offsetIndex is a segment's sparse offset index. Like Kafka's, each entry
// maps the last offset of a batch (relative to the segment base) to the file
// position where that batch starts. The entries live in memory in their file
// encoding; the file is brought up to date by flush. Entries are only ever
// appended at run time, so a slice of buf taken under the log lock stays
// valid without it.
type offsetIndex struct {
	buf     []byte
	written int // bytes of buf already written to the file (guarded by Log.flushMu)
}

func (x *offsetIndex) entries() int { return len(x.buf) / offsetEntrySize }

func (x *offsetIndex) entry(i int) (rel, pos int32) {
	b := x.buf[i*offsetEntrySize:]
	return int32(binary.BigEndian.Uint32(b)), int32(binary.BigEndian.Uint32(b[4:]))
}

func (x *offsetIndex) append(rel, pos int32) {
	x.buf = binary.BigEndian.AppendUint32(x.buf, uint32(rel))
	x.buf = binary.BigEndian.AppendUint32(x.buf, uint32(pos))
}

// lookup returns the position of the indexed batch with the largest last
// offset <= rel, or 0 when there is none: scanning forward from there finds
// the batch holding rel.
func (x *offsetIndex) lookup(rel int64) int64 {
	n := x.entries()
	i := sort.Search(n, func(i int) bool {
		r, _ := x.entry(i)
		return int64(r) > rel
	})
	if i == 0 {
		return 0
	}
	_, pos := x.entry(i - 1)
	return int64(pos)
}

func (x *offsetIndex) reset() { x.buf = x.buf[:0]; x.written = 0 }

// check reports whether the entries are increasing and point inside a log
// of logSize bytes.
func (x *offsetIndex) check(logSize int64) error {
	if len(x.buf)%offsetEntrySize != 0 {
		return fmt.Errorf("offset index size %d is not a multiple of %d", len(x.buf), offsetEntrySize)
	}
	prevRel, prevPos := int32(-1), int32(-1)
	for i := range x.entries() {
		rel, pos := x.entry(i)
		if rel <= prevRel || pos <= prevPos || int64(pos) >= logSize {
			return fmt.Errorf("offset index entry %d (%d, %d) out of order or past the log end %d", i, rel, pos, logSize)
		}
		prevRel, prevPos = rel, pos
	}
	return nil
}

// timeIndex is a segment's sparse time index: entries (max timestamp so far,
// relative last offset of the batch that set it), with strictly increasing
// timestamps, as in Kafka.
type timeIndex struct {
	buf     []byte
	written int // guarded by Log.flushMu
}

func (x *timeIndex) entries() int { return len(x.buf) / timeEntrySize }

func (x *timeIndex) entry(i int) (ts int64, rel int32) {
	b := x.buf[i*timeEntrySize:]
	return int64(binary.BigEndian.Uint64(b)), int32(binary.BigEndian.Uint32(b[8:]))
}

// maybeAppend adds an entry if ts is larger than the last entry's.
func (x *timeIndex) maybeAppend(ts int64, rel int32) {
	if n := x.entries(); n > 0 {
		if last, _ := x.entry(n - 1); ts <= last {
			return
		}
	}
	x.buf = binary.BigEndian.AppendUint64(x.buf, uint64(ts))
	x.buf = binary.BigEndian.AppendUint32(x.buf, uint32(rel))
}

// lookup returns the relative offset of the entry with the largest
// timestamp <= ts, or -1 when there is none.
func (x *timeIndex) lookup(ts int64) int64 {
	n := x.entries()
	i := sort.Search(n, func(i int) bool {
		t, _ := x.entry(i)
		return t > ts
	})
	if i == 0 {
		return -1
	}
	_, rel := x.entry(i - 1)
	return int64(rel)
}

func (x *timeIndex) reset() { x.buf = x.buf[:0]; x.written = 0 }

func (x *timeIndex) check(maxRel int64) error {
	if len(x.buf)%timeEntrySize != 0 {
		return fmt.Errorf("time index size %d is not a multiple of %d", len(x.buf), timeEntrySize)
	}
	prevTs, prevRel := int64(-1<<63), int32(-1)
	for i := range x.entries() {
		ts, rel := x.entry(i)
		if ts <= prevTs || rel < prevRel || int64(rel) > maxRel {
			return fmt.Errorf("time index entry %d (%d, %d) out of order or past the last offset", i, ts, rel)
		}
		prevTs, prevRel = ts, rel
	}
	return nil
}

// writeIndexTailSync appends buf[written:] to the index file at path and,
// with fsync, fsyncs it. It returns the new written count.
func writeIndexTailSync(path string, buf []byte, written int, fsync bool) (int, error) {
	if written >= len(buf) {
		return written, nil
	}
	flags := 0
	if written == 0 {
		flags = unix.O_TRUNC
	}
	if err := writeSmallFile(path, buf[written:], int64(written), flags, fsync); err != nil {
		return written, fmt.Errorf("write index tail: %w", err)
	}
	return len(buf), nil
}
