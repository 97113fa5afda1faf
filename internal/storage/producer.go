package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
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
	// lastTimestamp is the max timestamp of the producer's last batch
	// (data or marker), -1 if none: what DescribeProducers shows.
	lastTimestamp int64
	// coordinatorEpoch is the coordinator epoch of the producer's last
	// marker, -1 if none: a marker from an older coordinator is fenced.
	coordinatorEpoch int32
	// txnFirst is the first offset of the producer's ongoing transaction
	// on this partition, -1 if none.
	txnFirst int64
	// lastMarker is what the producer's last batch was when this replica
	// appended or replayed it: markerUnknown (a data batch, or state
	// restored from a snapshot), markerCommit or markerAbort. Not in
	// snapshots: a resent marker checked against an unknown one is taken
	// for it, as Kafka takes any resend at the same epoch.
	lastMarker int8
}

// producerEntry.lastMarker values.
const (
	markerUnknown int8 = iota
	markerCommit
	markerAbort
)

// txnMeta is a transaction that holds the last stable offset back: ongoing
// (marker -1) or completed by a marker the high watermark has not passed.
type txnMeta struct {
	pid    int64
	first  int64
	marker int64
}

// completedTxn is what a marker ended.
type completedTxn struct {
	pid         int64
	first, last int64 // last: the marker's offset
	aborted     bool
}

// producerState is Kafka's ProducerStateManager: the epoch and recent
// batches of each idempotent or transactional producer, the transactions
// that hold the last stable offset back, and the verification guards of
// KIP-890.
type producerState struct {
	m    map[int64]*producerEntry
	txns []txnMeta // ascending first offset
	// guards are the pending transaction verifications by producer id
	// (not persisted: a restart makes the producer verify again).
	guards    map[int64]verification
	nextGuard uint64
}

func newProducerState() producerState {
	return producerState{m: make(map[int64]*producerEntry), guards: make(map[int64]verification)}
}

// verification is a pending verification guard and when it was made.
type verification struct {
	guard     uint64
	createdMs int64
}

// expired reports whether e has been idle for expiryMs; a producer with an
// ongoing transaction never expires (Kafka's isProducerExpired).
func expired(e *producerEntry, nowMs, expiryMs int64) bool {
	return e.txnFirst < 0 && expiryMs >= 0 && nowMs-e.lastWriteMs >= expiryMs
}

func (p *producerState) live(pid int64, nowMs, expiryMs int64) *producerEntry {
	e := p.m[pid]
	if e != nil && expired(e, nowMs, expiryMs) {
		p.remove(pid)
		return nil
	}
	return e
}

// remove forgets a producer and its transactions.
func (p *producerState) remove(pid int64) {
	delete(p.m, pid)
	delete(p.guards, pid)
	p.txns = slices.DeleteFunc(p.txns, func(t txnMeta) bool { return t.pid == pid })
}

func inSequence(last, next int32) bool {
	return next == last+1 || (next == 0 && last == math.MaxInt32)
}

// check applies the idempotence and transaction rules to a batch about to
// be appended by the leader. ci is the control record of a control batch.
// With o.verify, a transactional batch that would start a transaction must
// carry the guard of a verification still pending (KIP-890). It returns
// the cached metadata when the batch is a duplicate.
func (p *producerState) check(h *record.Header, ci *controlInfo, o appendOpts, nowMs, expiryMs int64) (*batchMeta, error) {
	e := p.live(h.ProducerID, nowMs, expiryMs)
	if h.IsControl() {
		if e == nil {
			return nil, nil
		}
		if h.ProducerEpoch < e.epoch {
			return nil, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
		}
		if ci != nil && ci.coordinatorEpoch < e.coordinatorEpoch {
			return nil, fmt.Errorf("%w: marker for producer %d has coordinator epoch %d, older than %d", ErrCoordinatorFenced, h.ProducerID, ci.coordinatorEpoch, e.coordinatorEpoch)
		}
		if o.strictEpoch && h.ProducerEpoch == e.epoch {
			if e.txnFirst < 0 && (ci == nil || e.lastMarker == markerUnknown || (e.lastMarker == markerCommit) == ci.commit) {
				// A resent marker (KIP-890 part 2, Kafka's KAFKA-19999):
				// the marker that bumped the producer to this epoch is
				// the producer's last batch here (of the same kind, when
				// this replica saw it) and no transaction started
				// since. The coordinator resends when it did not hear
				// that the first one was replicated (or after a
				// failover); nothing is written, and the caller waits
				// for the first one to be durable before answering.
				return &batchMeta{firstOffset: e.lastOffset, lastOffset: e.lastOffset, timestamp: e.lastTimestamp}, nil
			}
			return nil, fmt.Errorf("%w: transaction version 2 marker for producer %d has epoch %d, not newer than the producer's", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch)
		}
		return nil, nil
	}
	if h.IsTransactional() && o.verify && (e == nil || e.txnFirst < 0 || e.epoch != h.ProducerEpoch) {
		if g, ok := p.guards[h.ProducerID]; !ok || g.guard != o.guard {
			return nil, fmt.Errorf("%w: producer %d epoch %d has no verified transaction on this partition", ErrInvalidTxnState, h.ProducerID, h.ProducerEpoch)
		}
	}
	if e == nil {
		return nil, nil // unknown producer: any sequence is accepted
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
	if !h.IsTransactional() && e.txnFirst >= 0 {
		return nil, fmt.Errorf("%w: non-transactional batch from producer %d, which has a transaction ongoing since offset %d", ErrInvalidTxnState, h.ProducerID, e.txnFirst)
	}
	return nil, nil
}

// update records an appended (or replayed, or replicated) batch whose base
// offset is set; ci is the control record of a control batch (nil for
// another control type). It returns the transaction a marker completed.
func (p *producerState) update(h *record.Header, ci *controlInfo, nowMs, expiryMs int64) *completedTxn {
	e := p.live(h.ProducerID, nowMs, expiryMs)
	if e == nil {
		e = &producerEntry{epoch: h.ProducerEpoch, lastTimestamp: -1, coordinatorEpoch: -1, txnFirst: -1}
		p.m[h.ProducerID] = e
	}
	if h.ProducerEpoch > e.epoch {
		// A new epoch: from InitProducerId, or a marker written with the
		// epoch the coordinator bumped at its end (KIP-890 part 2).
		e.epoch = h.ProducerEpoch
		e.batches = e.batches[:0]
	}
	e.lastOffset = h.LastOffset()
	e.lastWriteMs = nowMs
	e.lastTimestamp = h.MaxTimestamp
	if h.IsControl() {
		if ci == nil {
			return nil
		}
		e.coordinatorEpoch = ci.coordinatorEpoch
		e.lastMarker = markerAbort
		if ci.commit {
			e.lastMarker = markerCommit
		}
		delete(p.guards, h.ProducerID)
		if e.txnFirst < 0 {
			return nil
		}
		c := &completedTxn{pid: h.ProducerID, first: e.txnFirst, last: h.BaseOffset, aborted: !ci.commit}
		for i := range p.txns {
			if t := &p.txns[i]; t.pid == c.pid && t.marker < 0 {
				t.marker = c.last
			}
		}
		e.txnFirst = -1
		return c
	}
	e.lastMarker = markerUnknown
	if h.IsTransactional() && e.txnFirst < 0 {
		e.txnFirst = h.BaseOffset
		p.txns = append(p.txns, txnMeta{pid: h.ProducerID, first: h.BaseOffset, marker: -1})
		delete(p.guards, h.ProducerID)
	}
	if len(e.batches) == batchesToRetain {
		copy(e.batches, e.batches[1:])
		e.batches = e.batches[:batchesToRetain-1]
	}
	e.batches = append(e.batches, batchMeta{
		firstSeq: h.BaseSequence, lastSeq: h.LastSequence(),
		firstOffset: h.BaseOffset, lastOffset: h.LastOffset(), timestamp: h.MaxTimestamp,
	})
	return nil
}

// firstUnstable is the first offset of the earliest transaction that is
// ongoing or whose marker is at or above hw (-1 if none), and whether
// completed transactions below hw can be forgotten.
func (p *producerState) firstUnstable(hw int64) (int64, bool) {
	prune := false
	for _, t := range p.txns {
		if t.marker < 0 || t.marker >= hw {
			return t.first, prune
		}
		prune = true
	}
	return -1, prune
}

// pruneReplicated forgets the completed transactions whose marker is below
// hw.
func (p *producerState) pruneReplicated(hw int64) {
	p.txns = slices.DeleteFunc(p.txns, func(t txnMeta) bool { return t.marker >= 0 && t.marker < hw })
}

// lastStableFor is the last stable offset Kafka records with an aborted
// transaction: the first offset of the earliest ongoing transaction of
// another producer, else the offset after the marker.
func (p *producerState) lastStableFor(c *completedTxn) int64 {
	for _, t := range p.txns {
		if t.marker < 0 && t.pid != c.pid {
			return t.first
		}
	}
	return c.last + 1
}

// ongoingFirst is the first offset of the earliest ongoing transaction, -1
// if none.
func (p *producerState) ongoingFirst() int64 {
	for _, t := range p.txns {
		if t.marker < 0 {
			return t.first
		}
	}
	return -1
}

// newGuard returns the producer's pending verification guard, or a new one
// (Kafka's maybeCreateVerificationStateEntry: requests that verify
// concurrently share it).
func (p *producerState) newGuard(pid int64, nowMs int64) uint64 {
	if g, ok := p.guards[pid]; ok {
		return g.guard
	}
	p.nextGuard++
	p.guards[pid] = verification{guard: p.nextGuard, createdMs: nowMs}
	return p.nextGuard
}

func (p *producerState) list() []ProducerInfo {
	out := make([]ProducerInfo, 0, len(p.m))
	for pid, e := range p.m {
		pi := ProducerInfo{ProducerID: pid, ProducerEpoch: e.epoch, LastSequence: -1, LastTimestamp: e.lastTimestamp,
			CoordinatorEpoch: e.coordinatorEpoch, CurrentTxnStartOffset: e.txnFirst}
		if n := len(e.batches); n > 0 {
			pi.LastSequence = e.batches[n-1].lastSeq
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProducerID < out[j].ProducerID })
	return out
}

// rebuildTxns recomputes the ongoing transactions from the producers
// (after loading a snapshot).
func (p *producerState) rebuildTxns() {
	p.txns = p.txns[:0]
	for pid, e := range p.m {
		if e.txnFirst >= 0 {
			p.txns = append(p.txns, txnMeta{pid: pid, first: e.txnFirst, marker: -1})
		}
	}
	sort.Slice(p.txns, func(i, j int) bool { return p.txns[i].first < p.txns[j].first })
}

// prune forgets expired producers and those whose last batch is below the
// log start offset (with their transactions: nothing of them is left).
func (p *producerState) prune(logStart, nowMs, expiryMs int64) {
	for pid, e := range p.m {
		if e.lastOffset < logStart || expired(e, nowMs, expiryMs) {
			p.remove(pid)
		}
	}
	// Verifications whose batch never came (the producer went away).
	for pid, g := range p.guards {
		if expiryMs >= 0 && nowMs-g.createdMs >= expiryMs {
			delete(p.guards, pid)
		}
	}
}

// Snapshot file format (<20-digit offset>.snapshot), big-endian:
//
//	magic   4 bytes "STPS"
//	version uint16 = 2 (1 is read too: no transaction fields)
//	crc     uint32, CRC-32C of everything after this field
//	offset  int64, the log end offset the snapshot describes (also the file name)
//	count   uint32, number of producers, then per producer:
//	  producerID int64, epoch int16, lastOffset int64, lastWriteMs int64,
//	  (v2) coordinatorEpoch int32, txnFirstOffset int64 (-1: none), lastTimestamp int64,
//	  nbatches uint8, then per batch (oldest first):
//	    firstSeq int32, lastSeq int32, firstOffset int64, lastOffset int64, timestamp int64
//
// The ongoing transactions are the producers' txnFirstOffsets, so a log
// recovered from a snapshot has the last stable offset it had (Kafka's
// snapshots carry currentTxnFirstOffset the same way).
const (
	snapshotMagic   = "STPS"
	snapshotVersion = 2
	snapshotHdrLen  = 4 + 2 + 4
	entryLenV1      = 27
	entryLenV2      = entryLenV1 + 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (p *producerState) encode(offset int64) []byte {
	be := binary.BigEndian
	b := make([]byte, 0, snapshotHdrLen+12+len(p.m)*(entryLenV2+batchesToRetain*32))
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
		b = be.AppendUint32(b, uint32(e.coordinatorEpoch))
		b = be.AppendUint64(b, uint64(e.txnFirst))
		b = be.AppendUint64(b, uint64(e.lastTimestamp))
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
	if len(b) < snapshotHdrLen+12 || string(b[:4]) != snapshotMagic {
		return p, fmt.Errorf("%w: header", errBadSnapshot)
	}
	version := be.Uint16(b[4:])
	if version != 1 && version != snapshotVersion {
		return p, fmt.Errorf("%w: version %d", errBadSnapshot, version)
	}
	entryLen := entryLenV1
	if version >= 2 {
		entryLen = entryLenV2
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
		if len(b) < entryLen {
			return p, fmt.Errorf("%w: short entry", errBadSnapshot)
		}
		pid := int64(be.Uint64(b))
		e := &producerEntry{
			epoch:            int16(be.Uint16(b[8:])),
			lastOffset:       int64(be.Uint64(b[10:])),
			lastWriteMs:      int64(be.Uint64(b[18:])),
			coordinatorEpoch: -1, txnFirst: -1, lastTimestamp: -1,
		}
		if version >= 2 {
			e.coordinatorEpoch = int32(be.Uint32(b[26:]))
			e.txnFirst = int64(be.Uint64(b[30:]))
			e.lastTimestamp = int64(be.Uint64(b[38:]))
		}
		nb := int(b[entryLen-1])
		b = b[entryLen:]
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
		if version < 2 && nb > 0 {
			e.lastTimestamp = e.batches[nb-1].timestamp
		}
		p.m[pid] = e
	}
	if len(b) != 0 {
		return p, fmt.Errorf("%w: trailing bytes", errBadSnapshot)
	}
	p.rebuildTxns()
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

// snapshotWrite is how writeSnapshot writes the file.
type snapshotWrite int

const (
	// snapshotRenamed: a temporary file renamed into place, not fsynced.
	snapshotRenamed snapshotWrite = iota
	// snapshotSynced: the same, fsynced with its directory.
	snapshotSynced
	// snapshotDeferred: written in place if new (writeFileNew), for a
	// deferred close whose caller makes it durable with a syncfs.
	snapshotDeferred
)

// snapList is what a log knows of its producer snapshot files: their
// offsets, ascending, while known is set. A load sets it from its listing
// of the directory and a new log starts with none; writeSnapshot keeps it
// up to date, and a path that removes snapshots by listing the directory
// itself updates it or clears known. It spares writeSnapshot a listing of
// the directory: at a shutdown of 20,000 logs that listing was a ninth of
// the broker's CPU (issue 14). mu held for writing.
type snapList struct {
	offs  []int64
	known bool
}

// set records the offsets a listing found (sorted here).
func (sl *snapList) set(offs []int64) {
	sl.offs = slices.Clone(offs)
	slices.Sort(sl.offs)
	sl.known = true
}

// removedAbove drops the offsets above off, after removeSnapshotsAbove;
// err is its error, which leaves what is on disk unknown.
func (sl *snapList) removedAbove(off int64, err error) {
	if err != nil {
		sl.known = false
		return
	}
	i, _ := slices.BinarySearch(sl.offs, off+1)
	sl.offs = sl.offs[:i]
}

// writeSnapshot writes the producer state at offset and keeps only the two
// newest snapshots and the newest at or below activeBase, the active
// segment's base: recovery after a crash rescans the active segment and
// rebuilds its transaction index with a replay that must start at or below
// its base, which that snapshot keeps short. Unless synced, a torn
// snapshot (a crash before the data reached the disk) fails its checksum
// on load and an older one (or a replay of the log) takes over. snaps is
// the log's list of its snapshots; the directory is listed only when it is
// not known.
func (p *producerState) writeSnapshot(dir string, offset, activeBase int64, how snapshotWrite, snaps *snapList) error {
	name, data := fileName(offset, snapshotSuffix), p.encode(offset)
	var err error
	if how == snapshotDeferred {
		err = writeFileNew(dir, name, data)
	} else {
		err = writeFileAtomic(dir, name, data, how == snapshotSynced)
	}
	if err != nil {
		return fmt.Errorf("producer snapshot: %w", err)
	}
	offs := snaps.offs
	if !snaps.known {
		if offs, err = listSnapshots(dir); err != nil {
			return err
		}
	} else if i, found := slices.BinarySearch(offs, offset); !found {
		offs = slices.Insert(offs, i, offset)
	}
	keep := -1 // the newest at or below activeBase
	for i, o := range offs {
		if o <= activeBase {
			keep = i
		}
	}
	kept := offs[:0]
	for i, o := range offs {
		if i+2 < len(offs) && i != keep {
			err := os.Remove(filepath.Join(dir, fileName(o, snapshotSuffix)))
			if err == nil || errors.Is(err, os.ErrNotExist) {
				continue
			}
			// Still there: the next write tries again.
		}
		kept = append(kept, o)
	}
	snaps.offs, snaps.known = kept, true
	return nil
}
