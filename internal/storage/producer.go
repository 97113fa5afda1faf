package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/stratalog/strata/internal/record"
)

// batchesToRetain is how many batches per producer are remembered for
// duplicate detection (Kafka's NUM_BATCHES_TO_RETAIN, the max.in.flight limit
// for idempotent producers).
const batchesToRetain = 5

type batchMeta struct {
	firstSeq, lastSeq       int32
	firstOffset, lastOffset int64
	timestamp               int64 // the batch's MaxTimestamp as stored
}

type producerEntry struct {
	epoch       int16
	batches     []batchMeta // oldest first, at most batchesToRetain
	lastOffset  int64       // last offset of the producer's last batch (data or control)
	lastWriteMs int64       // broker clock at the last append (load time for replayed batches)
}

// producerState is Kafka's ProducerStateManager without transactions: the
// epoch and recent batches of each idempotent producer.
type producerState struct {
	m map[int64]*producerEntry
}

func newProducerState() producerState { return producerState{m: make(map[int64]*producerEntry)} }

func (p *producerState) live(pid int64, nowMs, expiryMs int64) *producerEntry {
	e := p.m[pid]
	if e != nil && expiryMs >= 0 && nowMs-e.lastWriteMs >= expiryMs {
		delete(p.m, pid)
		return nil
	}
	return e
}

func inSequence(last, next int32) bool {
	return next == last+1 || (next == 0 && last == math.MaxInt32)
}

// check applies the idempotence rules to a batch about to be appended. It
// returns the cached metadata when the batch is a duplicate.
func (p *producerState) check(h *record.Header, nowMs, expiryMs int64) (*batchMeta, error) {
	e := p.live(h.ProducerID, nowMs, expiryMs)
	if e == nil {
		return nil, nil // unknown producer: any sequence is accepted
	}
	if h.IsControl() {
		if h.ProducerEpoch < e.epoch {
			return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
		}
		return nil, nil
	}
	first, last := h.BaseSequence, h.LastSequence()
	if h.ProducerEpoch == e.epoch {
		for i := range e.batches {
			if b := &e.batches[i]; b.firstSeq == first && b.lastSeq == last {
				return b, nil
			}
		}
	}
	switch {
	case h.ProducerEpoch < e.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	case h.ProducerEpoch > e.epoch:
		if first != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d starts at sequence %d, not 0", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, first)
		}
	default:
		lastSeq := int32(-1)
		if n := len(e.batches); n > 0 {
			lastSeq = e.batches[n-1].lastSeq
		}
		if !inSequence(lastSeq, first) {
			return nil, fmt.Errorf("%w: producer %d epoch %d expected sequence %d, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, lastSeq+1, first)
		}
	}
	return nil, nil
}

// update records an appended (or replayed) batch whose base offset is set.
func (p *producerState) update(h *record.Header, nowMs, expiryMs int64) {
	e := p.live(h.ProducerID, nowMs, expiryMs)
	if e == nil {
		e = &producerEntry{epoch: h.ProducerEpoch}
		p.m[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.epoch {
		e.epoch = h.ProducerEpoch
		e.batches = e.batches[:0]
	}
	e.lastOffset = h.LastOffset()
	e.lastWriteMs = nowMs
	if h.IsControl() {
		return
	}
	if len(e.batches) == batchesToRetain {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:batchesToRetain-1]
	}
	e.batches = append(e.batches, batchMeta{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		firstOffset: h.BaseOffset, lastOffset: h.LastOffset(), timestamp: h.MaxTimestamp,
	})
}

// prune forgets expired producers and those whose last batch is below the
// log start offset.
func (p *producerState) prune(logStart, nowMs, expiryMs int64) {
	for pid, e := range p.m {
		if e.lastOffset < logStart || (expiryMs >= 0 && nowMs-e.lastWriteMs >= expiryMs) {
			delete(p.m, pid)
		}
	}
}

// Snapshot file format (<20-digit offset>.snapshot), big-endian:
//
//	magic   4 bytes "STPS"
//	version uint16 = 1
//	crc     uint32, CRC-32C of everything after this field
//	offset  int64, the log end offset the snapshot describes (also the file name)
//	count   uint32, number of producers, then per producer:
//	  producerID int64, epoch int16, lastOffset int64, lastWriteMs int64,
//	  nbatches uint8, then per batch (oldest first):
//	    firstSeq int32, lastSeq int32, firstOffset int64, lastOffset int64, timestamp int64
const (
	snapshotMagic   = "STPS"
	snapshotVersion = 1
	snapshotHdrLen  = 4 + 2 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (p *producerState) encode(offset int64) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, snapshotHdrLen+12+len(p.m)*(27+batchesToRetain*32))
	b = append(b, snapshotMagic...)
	b = be.AppendUint16(b, snapshotVersion)
	b = be.AppendUint32(b, 0)
	b = be.AppendUint64(b, uint64(offset))
	b = be.AppendUint32(b, uint32(len(p.m)))
	pids := make([]int64, 0, len(p.m))
	for pid := range p.m {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return pids[i] < pids[j] })
	for _, pid := range pids {
		e := p.m[pid]
		b = be.AppendUint64(b, uint64(pid))
		b = be.AppendUint16(b, uint16(e.epoch))
		b = be.AppendUint64(b, uint64(e.lastOffset))
		b = be.AppendUint64(b, uint64(e.lastWriteMs))
		b = append(b, byte(len(e.batches)))
		for _, m := range e.batches {
			b = be.AppendUint32(b, uint32(m.firstSeq))
			b = be.AppendUint32(b, uint32(m.lastSeq))
			b = be.AppendUint64(b, uint64(m.firstOffset))
			b = be.AppendUint64(b, uint64(m.lastOffset))
			b = be.AppendUint64(b, uint64(m.timestamp))
		}
	}
	be.PutUint32(b[6:], crc32.Checksum(b[snapshotHdrLen:], castagnoli))
	return b
}

var errBadSnapshot = errors.New("bad producer snapshot")

func decodeSnapshot(b []byte, wantOffset int64) (producerState, error) {
	be := binary.BigEndian
	p := newProducerState()
	if len(b) < snapshotHdrLen+12 || string(b[:4]) != snapshotMagic || be.Uint16(b[4:]) != snapshotVersion {
		return p, fmt.Errorf("%w: header", errBadSnapshot)
	}
	if crc32.Checksum(b[snapshotHdrLen:], castagnoli) != be.Uint32(b[6:]) {
		return p, fmt.Errorf("%w: checksum", errBadSnapshot)
	}
	b = b[snapshotHdrLen:]
	if int64(be.Uint64(b)) != wantOffset {
		return p, fmt.Errorf("%w: offset does not match the file name", errBadSnapshot)
	}
	n := int(be.Uint32(b[8:]))
	b = b[12:]
	for range n {
		if len(b) < 27 {
			return p, fmt.Errorf("%w: short entry", errBadSnapshot)
		}
		pid := int64(be.Uint64(b))
		e := &producerEntry{
			epoch:       int16(be.Uint16(b[8:])),
			lastOffset:  int64(be.Uint64(b[10:])),
			lastWriteMs: int64(be.Uint64(b[18:])),
		}
		nb := int(b[26])
		b = b[27:]
		if nb > batchesToRetain || len(b) < nb*32 {
			return p, fmt.Errorf("%w: short entry", errBadSnapshot)
		}
		for range nb {
			e.batches = append(e.batches, batchMeta{
				firstSeq:    int32(be.Uint32(b)),
				lastSeq:     int32(be.Uint32(b[4:])),
				firstOffset: int64(be.Uint64(b[8:])),
				lastOffset:  int64(be.Uint64(b[16:])),
				timestamp:   int64(be.Uint64(b[24:])),
			})
			b = b[32:]
		}
		p.m[pid] = e
	}
	if len(b) != 0 {
		return p, fmt.Errorf("%w: trailing bytes", errBadSnapshot)
	}
	return p, nil
}

// listSnapshots returns the offsets of the snapshot files in dir, ascending.
func listSnapshots(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var offs []int64
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, snapshotSuffix) {
			continue
		}
		if off, err := strconv.ParseInt(strings.TrimSuffix(name, snapshotSuffix), 10, 64); err == nil {
			offs = append(offs, off)
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs, nil
}

// writeSnapshot writes the producer state at offset and keeps only the two
// newest snapshots. The file is renamed into place but not fsynced: a torn
// snapshot fails its checksum on load and an older one (or a replay of the
// log) takes over.
func (p *producerState) writeSnapshot(dir string, offset int64, fsync bool) error {
	if err := writeFileAtomic(dir, fileName(offset, snapshotSuffix), p.encode(offset), fsync); err != nil {
		return fmt.Errorf("producer snapshot: %w", err)
	}
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	for i := 0; i+2 < len(offs); i++ {
		os.Remove(filepath.Join(dir, fileName(offs[i], snapshotSuffix)))
	}
	return nil
}
