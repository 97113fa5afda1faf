package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/record"
	"golang.org/x/sys/unix"
)

// The shared journal (log.journal.enable, issue 14): one append-only file
// sequence per data dir that takes the batches produced to every
// partition, so that a produce request costs one write(2) of all its
// batches instead of one pwrite per partition. A log in journal mode
// (Options.Journal) keeps what was journaled but not yet written to its
// active segment in memory (its pending tail, pending.go) and writes it
// with one pwrite once it is journalWriteBytes long, once it is older than
// the journal's write age, or before anything else needs the segment file
// to hold it (a fetch reaching it, a flush, a roll, a truncation, a
// follower append, a close). The guarantee of an acknowledged write is
// the direct path's: its bytes reached the kernel (the journal's file)
// before the answer; a kill -9 loses nothing, the journal is replayed into
// the logs at the next start (Replay). With log.fsync=always the journal
// is durable (JournalOptions.Durable): its fsync stands for the segments'
// until a syncfs made their tails durable.
//
// Frames: length (uint32, of what follows the CRC), CRC-32C, kind, topic
// id (16 bytes), name length (uint16), the log's directory name, payload
// (a batch, with its offsets assigned, or nothing for a barrier). A
// barrier says that the log was truncated or deleted: its frames before
// the barrier must not be replayed. The CRC of a barrier covers all that
// follows it; that of a batch frame (frameKindBatchHead) covers what
// follows it up to the batch's own CRC, inclusive: the batch's CRC covers
// the rest, so each byte is checksummed once when it is journaled, and
// replay checks both. Frames of kind frameKindBatch (an earlier version,
// the CRC over the whole frame) are still read. An older binary reads a
// batch frame of this kind as torn: stop the broker cleanly before going
// back to one (a clean shutdown leaves the journal empty).
//
// Files are named by the journal position of their first byte
// (%020d.journal) under <data dir>/__journal, and a new one starts once
// the current one holds journalFileBytes. A file is removed once it is not
// the current one and no log's pending tail starts in it (every frame in
// it is in its segment, or was truncated or deleted away), oldest first,
// so that a barrier never outlives the frames it cancels. Positions
// continue across restarts: the files a crash left behind keep their
// names until their frames are replayed.

// JournalDirName is the journal's directory inside a data dir.
const JournalDirName = "__journal"

const (
	journalSuffix     = ".journal"
	journalFileBytes  = 64 << 20
	journalWriteBytes = 16 << 10 // a pending tail this long is written at once
	// journalDirectBytes: a batch this large goes to its segment
	// directly, bypassing the journal (AppendJournaled).
	journalDirectBytes = 8 << 10
	// journalChunkBytes is a chunk of the journal's buffer (one pwrite
	// to the journal file; the pending tails point into it).
	journalChunkBytes = 1 << 20
	journalSlabBytes  = 32 << 20 // a mapping chunks are cut from (carveChunk)
	// keepChunkRoom: a write leaves its last chunk in the buffer for
	// the next frames if this much of it is free.
	keepChunkRoom    = 16 << 10
	frameKindBatch   = 1 // a batch, the frame's CRC over all of it (read only)
	frameKindBarrier = 2
	// frameKindBatchHead: a batch, the frame's CRC up to the batch's CRC.
	frameKindBatchHead = 3
	frameFixed         = 4 + 4 + 1 + 16 + 2 // length, CRC, kind, topic id, name length
)

// JournalOptions configure OpenJournal.
type JournalOptions struct {
	Logger *slog.Logger
	Now    func() time.Time // clock; time.Now if nil
	// WriteAge: a pending tail is written to its segment once its first
	// batch is this old (log.journal.write.ms); 0: one second.
	WriteAge time.Duration
	// Tick is how often the background writer looks (0: WriteAge/4); it
	// also writes frames nobody waited for (acks=0).
	Tick time.Duration
	// NoBackground: no background goroutine (tests drive Tick).
	NoBackground bool
	// FileBytes: a new file starts once the current one holds this many
	// bytes (0: 64 MiB).
	FileBytes int64
	// IO, if set, replaces the journal's writes (tests inject a full
	// disk through it, as Options.IO for segments).
	IO *FileIO
	// ReplayOnly: the journal replays what an earlier process left and
	// takes no new frame (log.journal.enable is off, after a start with
	// it on).
	ReplayOnly bool
	// MemoryBytes bounds the journal's buffer, which the logs' pending
	// tails point into (log.journal.memory.bytes; 0: 256 MiB): a log
	// that has no tail while the chunks in use hold that much writes its
	// batches to its segment directly.
	MemoryBytes int64
	// Durable is for log.fsync=always: Sync fsyncs what it wrote (one
	// fdatasync per write, shared by every request waiting for it), so a
	// journaled batch is durable once Sync returns, without an fsync of
	// its partition's segment (Log.Sync); and a file is removed only
	// after a syncfs of the data dir made the segment writes of its
	// frames durable.
	Durable bool
}

// Journal is a data dir's shared journal; see above.
type Journal struct {
	dir     string
	logger  *slog.Logger
	now     func() time.Time
	age     time.Duration
	fileMax int64
	// chunkMax bounds the chunks in use before a log without a tail
	// writes directly (room; JournalOptions.MemoryBytes).
	chunkMax int64
	slabs    [][]byte // mapped slabs (carveChunk); guarded by mu
	slab     []byte   // the rest of the last slab; guarded by mu
	active   bool     // takes frames (not JournalOptions.ReplayOnly)
	durable  bool     // JournalOptions.Durable
	io       *FileIO

	mu sync.Mutex
	// buf holds the frames added and not yet written, in chunks of
	// journalChunkBytes (a request of tens of MB would otherwise grow one
	// slice by copying it again and again); buf[0].b[bufHead] is at
	// bufStart. The bytes of buf[0] before bufHead were written: a write
	// leaves its last chunk in buf while it has room (keepChunkRoom), so
	// that small requests fill a chunk together rather than one each.
	buf      []*jchunk
	bufHead  int
	bufLen   int64
	bufStart int64
	files    []*jfile // this process's files, oldest first; the last takes new frames
	dirty    []dirtyLog
	failed   error       // a write failed: no more frames are taken
	broken   atomic.Bool // failed is set
	retired  bool        // after failed: its files are removed (retire)
	replay   map[string][]replayFrame
	old      []string // files of an earlier process, removed once replay is empty
	closed   bool

	bufMu sync.Mutex // guards free
	free  []*jchunk  // chunks nothing uses any more, for reuse
	inUse atomic.Int64

	wmu     sync.Mutex // serializes writes; guards cur, curFile, spare, parts
	cur     *os.File
	curFile *jfile
	spare   []*jchunk
	parts   [][]byte
	dirSync bool // durable: a file was created since the directory's last fsync
	// written: every frame below this position is in a file (and, when
	// durable, fsynced).
	written atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// jfile is one journal file of this process.
type jfile struct {
	start int64 // journal position of its first byte
	// refs counts the logs whose pending tail starts in it; guarded by
	// Journal.mu.
	refs int
}

// A jchunk is one chunk of the journal's buffer. The pending tails of the
// logs point into it instead of copying their batches (a log writes its
// tail to its segment with one pwritev from the chunks), so it is reused
// only when both the journal file and every tail holding a batch in it
// have written it: refs counts one for the journal until its write and
// one per such batch.
type jchunk struct {
	b    []byte
	refs atomic.Int32
}

type dirtyLog struct {
	l     *Log
	since time.Time
}

// replayFrame is a batch an earlier process journaled.
type replayFrame struct {
	topicID [16]byte
	batch   []byte
}

// OpenJournal opens the journal of dataDir: it reads the files an earlier
// process left (their frames wait for Replay) and starts a new file after
// them.
func OpenJournal(dataDir string, opts JournalOptions) (*Journal, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WriteAge <= 0 {
		opts.WriteAge = time.Second
	}
	if opts.MemoryBytes <= 0 {
		opts.MemoryBytes = 256 << 20
	}
	if opts.FileBytes <= 0 {
		opts.FileBytes = journalFileBytes
	}
	if opts.Tick <= 0 {
		opts.Tick = max(opts.WriteAge/4, time.Millisecond)
	}
	dir := filepath.Join(dataDir, JournalDirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: journal: %w", err)
	}
	j := &Journal{dir: dir, logger: opts.Logger.With("component", "journal"), now: opts.Now, age: opts.WriteAge, fileMax: opts.FileBytes,
		chunkMax: max(opts.MemoryBytes/journalChunkBytes, 2), io: opts.IO, active: !opts.ReplayOnly, durable: opts.Durable,
		replay: map[string][]replayFrame{}}
	next, err := j.readOld()
	if err != nil {
		return nil, err
	}
	j.bufStart = next
	j.written.Store(next)
	j.files = []*jfile{{start: next}}
	if !opts.NoBackground {
		j.stop, j.done = make(chan struct{}), make(chan struct{})
		go j.background(opts.Tick)
	}
	return j, nil
}

// readOld reads the files of an earlier process into j.replay and returns
// the position after them.
func (j *Journal) readOld() (int64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return 0, fmt.Errorf("storage: journal: %w", err)
	}
	type old struct {
		start int64
		name  string
	}
	var files []old
	for _, e := range ents {
		name := e.Name()
		start, err := strconv.ParseInt(strings.TrimSuffix(name, journalSuffix), 10, 64)
		if !strings.HasSuffix(name, journalSuffix) || err != nil || start < 0 {
			continue
		}
		files = append(files, old{start, name})
	}
	slices.SortFunc(files, func(a, b old) int { return int(min(max(a.start-b.start, -1), 1)) })
	var next int64
	frames, barriers := 0, 0
	for _, f := range files {
		path := filepath.Join(j.dir, f.name)
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("storage: journal: %w", err)
		}
		n, err := j.parseOld(data, &frames, &barriers)
		if err != nil {
			// A torn last frame (a crash in the middle of a write): what
			// comes before it is whole, and nothing was acknowledged
			// after it.
			j.logger.Warn("journal file ends in a torn or damaged frame; replaying what precedes it", "file", path, "valid_bytes", n, "size", len(data), "err", err)
		}
		next = max(next, f.start+int64(len(data)))
		j.old = append(j.old, path)
	}
	if len(files) > 0 {
		j.logger.Info("journal of an earlier process read", "files", len(files), "batches", frames, "barriers", barriers, "logs", len(j.replay))
	}
	return next, nil
}

// parseOld adds the frames of one file to j.replay and returns how many
// bytes of it were whole frames.
func (j *Journal) parseOld(data []byte, frames, barriers *int) (int, error) {
	pos := 0
	for pos < len(data) {
		kind, id, name, payload, n, err := parseFrame(data[pos:])
		if err != nil {
			return pos, err
		}
		pos += n
		switch kind {
		case frameKindBarrier:
			*barriers++
			delete(j.replay, name)
		case frameKindBatch, frameKindBatchHead:
			*frames++
			j.replay[name] = append(j.replay[name], replayFrame{topicID: id, batch: payload})
		}
	}
	return pos, nil
}

var errFrame = errors.New("bad journal frame")

// parseFrame parses the frame at the start of b; n is its length. A batch
// frame of either kind comes back as frameKindBatch.
func parseFrame(b []byte) (kind byte, id [16]byte, name string, payload []byte, n int, err error) {
	if len(b) < frameFixed {
		return 0, id, "", nil, 0, fmt.Errorf("%w: %d bytes left, a frame needs %d", errFrame, len(b), frameFixed)
	}
	size := int(binary.BigEndian.Uint32(b))
	if size < frameFixed-8 || size > len(b)-8 {
		return 0, id, "", nil, 0, fmt.Errorf("%w: length %d, %d bytes left", errFrame, size, len(b)-8)
	}
	body := b[8 : 8+size]
	kind = body[0]
	nl := int(binary.BigEndian.Uint16(body[17:]))
	if 19+nl > len(body) {
		return 0, id, "", nil, 0, fmt.Errorf("%w: name length %d", errFrame, nl)
	}
	covered := body
	if kind == frameKindBatchHead {
		if 19+nl+record.CRCStart > len(body) {
			return 0, id, "", nil, 0, fmt.Errorf("%w: a batch frame of %d bytes", errFrame, len(body))
		}
		covered = body[:19+nl+record.CRCStart]
	}
	if crc32.Checksum(covered, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return 0, id, "", nil, 0, fmt.Errorf("%w: CRC mismatch", errFrame)
	}
	copy(id[:], body[1:17])
	name = string(body[19 : 19+nl])
	payload = body[19+nl:]
	switch kind {
	case frameKindBatch, frameKindBatchHead:
		h, err := record.ParseHeader(payload)
		if err != nil || h.Size() != len(payload) {
			return 0, id, "", nil, 0, fmt.Errorf("%w: a batch frame of %s does not hold one whole batch", errFrame, name)
		}
		if kind == frameKindBatchHead && record.ComputeCRC(payload) != h.CRC {
			return 0, id, "", nil, 0, fmt.Errorf("%w: batch CRC mismatch in a frame of %s", errFrame, name)
		}
		kind = frameKindBatch
	}
	return kind, id, name, payload, 8 + size, nil
}

// appendFrame appends one frame to dst: a barrier, or, for
// frameKindBatchHead, a batch whose own CRC is valid (every batch
// appended is: validated, or given a new CRC where the broker changed a
// covered field).
func appendFrame(dst []byte, kind byte, id [16]byte, name string, payload []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameFixed-8+len(name)+len(payload)))
	dst = append(dst, 0, 0, 0, 0, kind)
	dst = append(dst, id[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	covered := len(dst) + len(payload)
	if kind == frameKindBatchHead {
		covered = len(dst) + record.CRCStart
	}
	dst = append(dst, payload...)
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+8:covered], castagnoli))
	return dst
}

// added is what add did with a frame.
type added struct {
	file  *jfile    // the file it goes to
	since time.Time // with hold: the time l was queued at
	chunk *jchunk   // a batch frame's chunk, holding a reference for the log
	// payload is a batch frame's batch, inside the chunk.
	payload []byte
	end     int64 // the journal position after the frame
}

// add appends a frame to the buffer; with hold it also counts l as a log
// whose pending tail starts in the file the frame goes to, and queues l
// for the background writer with the time returned, which the log keeps
// as its tail's start (writePendingFromJournal matches them). A batch
// frame's payload is returned too, as the frame holds it in the chunk
// returned, with a reference the log gives back with unref once the
// batch is in its segment. l's mu is held.
func (j *Journal) add(kind byte, l *Log, payload []byte, hold bool) (added, error) {
	name := filepath.Base(l.dir)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.failed != nil {
		return added{}, fmt.Errorf("%w: journal write failed earlier: %w", ErrIO, j.failed)
	}
	if j.closed {
		return added{}, ErrClosed
	}
	n := int64(frameFixed + len(name) + len(payload))
	pos := j.bufStart + j.bufLen
	f := j.files[len(j.files)-1]
	if pos > f.start && pos+n-f.start > j.fileMax {
		f = &jfile{start: pos}
		j.files = append(j.files, f)
	}
	last := len(j.buf) - 1
	if last < 0 || int64(len(j.buf[last].b))+n > int64(cap(j.buf[last].b)) {
		j.buf = append(j.buf, j.getChunk(n))
		last++
	}
	c := j.buf[last]
	c.b = appendFrame(c.b, kind, l.opts.TopicID, name, payload)
	j.bufLen += n
	var since time.Time
	if hold {
		f.refs++
		since = j.now()
		j.dirty = append(j.dirty, dirtyLog{l, since})
	}
	a := added{file: f, since: since, end: j.bufStart + j.bufLen}
	if kind != frameKindBatchHead {
		return a, nil
	}
	c.refs.Add(1)
	// The payload is the frame's end; a full slice expression keeps an
	// append to it from running into the next frame.
	end := len(c.b)
	a.chunk, a.payload = c, c.b[end-len(payload):end:end]
	return a, nil
}

// dropKept gives up the journal's reference to a chunk a write left in
// the buffer, once nothing will be written from it (the journal failed,
// or closes); wmu held.
func (j *Journal) dropKept() {
	j.mu.Lock()
	var c *jchunk
	if len(j.buf) > 0 && j.bufHead > 0 {
		c = j.buf[0]
		j.buf = slices.Delete(j.buf, 0, 1)
		j.bufHead = 0
	}
	j.mu.Unlock()
	if c != nil {
		j.unref(c)
	}
}

// getChunk returns an empty chunk for frames of n bytes, reused if one is
// free, holding the journal's reference; j.mu held. Free chunks are kept
// (not in a sync.Pool, which every other garbage collection empties):
// memory given back came back as fresh memory, page faults and zeroing
// included, a moment later.
func (j *Journal) getChunk(n int64) *jchunk {
	var c *jchunk
	if n <= journalChunkBytes {
		j.bufMu.Lock()
		if k := len(j.free); k > 0 {
			c, j.free = j.free[k-1], j.free[:k-1]
		}
		j.bufMu.Unlock()
	}
	if c == nil && n <= journalChunkBytes {
		c = j.carveChunk()
	}
	if c == nil {
		c = &jchunk{b: make([]byte, 0, max(journalChunkBytes, n))}
	}
	c.b = c.b[:0]
	c.refs.Store(1)
	j.inUse.Add(1)
	return c
}

// carveChunk returns a new chunk cut from the current slab, mapping a new
// slab when it is used up, or nil if mapping fails; j.mu held. Slabs are
// anonymous mappings outside the Go heap, on which the kernel is asked
// for transparent huge pages (honoured in the "madvise" and "always"
// modes). With hundreds of MB of tails in flight, copying frames into
// chunks and writing tails out of them otherwise spends much of its time
// on TLB misses, and chunks in the heap double the heap the collector
// lets grow (measured: BENCHMARKS.md). Close unmaps the slabs once no
// chunk is in use.
func (j *Journal) carveChunk() *jchunk {
	if len(j.slab) < journalChunkBytes {
		m, err := mapHugeSlab(journalSlabBytes)
		if err != nil {
			j.logger.Warn("mapping a journal slab failed; using heap memory", "err", err)
			return nil
		}
		j.slabs = append(j.slabs, m)
		j.slab = m
	}
	c := &jchunk{b: j.slab[:0:journalChunkBytes]}
	j.slab = j.slab[journalChunkBytes:]
	return c
}

// unref drops one reference to c; the last one frees it for reuse. Every
// chunk is kept (slab memory is not returned before Close), so the chunks
// kept are at most the most ever in use.
func (j *Journal) unref(c *jchunk) {
	if c.refs.Add(-1) != 0 {
		return
	}
	j.inUse.Add(-1)
	if cap(c.b) != journalChunkBytes {
		return
	}
	j.bufMu.Lock()
	j.free = append(j.free, c)
	j.bufMu.Unlock()
}

// room reports whether another log may start a pending tail
// (JournalOptions.MemoryBytes).
func (j *Journal) room() bool { return j.inUse.Load() < j.chunkMax }

// failedErr is the error of a failed journal write, nil if none failed
// (one atomic load on the append path until one did).
func (j *Journal) failedErr() error {
	if !j.broken.Load() {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// release says that a log's pending tail that started in f is written.
func (j *Journal) release(f *jfile) {
	j.mu.Lock()
	f.refs--
	j.mu.Unlock()
}

// Sync writes every frame added so far (waiting for a write under way):
// everything buffered goes in one pwrite per 1 MiB chunk, whoever waits
// for it. A produce request calls it once after appending all its
// batches, before it answers.
func (j *Journal) Sync() error {
	j.mu.Lock()
	target := j.bufStart + j.bufLen
	j.mu.Unlock()
	if j.written.Load() >= target {
		return nil
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.written.Load() >= target {
		return nil
	}
	j.mu.Lock()
	if j.failed != nil {
		err := j.failed
		j.mu.Unlock()
		return fmt.Errorf("%w: journal write failed earlier: %w", ErrIO, err)
	}
	buf, start, n := j.buf, j.bufStart, j.bufLen
	// What to write, taken under mu: frames added meanwhile go after it
	// in the last chunk, which stays in buf while it has room.
	parts := j.parts[:0]
	for i, c := range buf {
		b := c.b
		if i == 0 {
			b = b[j.bufHead:]
		}
		parts = append(parts, b)
	}
	last := buf[len(buf)-1]
	keep := cap(last.b)-len(last.b) >= keepChunkRoom
	if keep {
		j.buf, j.bufHead = append(j.spare[:0], last), len(last.b)
	} else {
		j.buf, j.bufHead = j.spare[:0], 0
	}
	j.spare = nil
	j.bufStart += n
	j.bufLen = 0
	files := slices.Clone(j.files)
	j.mu.Unlock()

	var err error
	pos := start
	for _, b := range parts {
		if err = j.write(b, pos, files); err != nil {
			break
		}
		pos += int64(len(b))
	}
	if err == nil && j.durable {
		err = j.syncCur()
	}
	// The tails still hold their batches' chunks, written or not: after
	// a failed write they go to their segments from there. A chunk kept
	// in buf keeps the journal's reference until a later write.
	if keep {
		buf = buf[:len(buf)-1]
	}
	for i, c := range buf {
		j.unref(c)
		buf[i] = nil
	}
	clear(parts)
	j.spare, j.parts = buf[:0], parts[:0]
	if err != nil {
		j.dropKept()
		j.mu.Lock()
		j.failed = err
		j.broken.Store(true)
		dirty := slices.Clone(j.dirty)
		j.mu.Unlock()
		j.logger.Error("journal write failed; produced batches go to their segments directly from now on (until a restart), and the requests whose batches were in the failed write are not acknowledged", "err", err)
		// The pending tails go to their segments now (off this lock: a
		// log's mu is taken before wmu elsewhere); a tail that cannot
		// be written stays pending and fails what needs it.
		go func() {
			for _, d := range dirty {
				if err := d.l.settle(); err != nil {
					d.l.logger.Warn("writing the pending tail after the journal failed", "err", err)
				}
			}
		}()
		return fmt.Errorf("%w: journal write: %w", ErrIO, err)
	}
	j.written.Store(start + n)
	return nil
}

// SyncTo is Sync for a caller that needs the frames before journal
// position pos only: it returns at once if they are written.
func (j *Journal) SyncTo(pos int64) error {
	if j.written.Load() >= pos {
		return nil
	}
	return j.Sync()
}

// syncCur makes what write wrote durable (JournalOptions.Durable): the
// directory once a file was created in it, then the current file; wmu
// held. A failure fails the journal as a failed write does: the pages may
// have been marked clean, and a later fsync would say nothing of them.
func (j *Journal) syncCur() error {
	if j.dirSync {
		if err := j.io.syncPath(j.dir); err != nil {
			return err
		}
		j.dirSync = false
	}
	if j.cur == nil {
		return nil
	}
	if err := j.io.sync(j.cur); err != nil {
		return fmt.Errorf("fsync %s: %w", j.cur.Name(), err)
	}
	return nil
}

// write writes buf, which starts at journal position start, into the files
// that hold it (a new file starts at each boundary in files); wmu held.
// When durable, a file is fsynced before it is left for the next.
func (j *Journal) write(buf []byte, start int64, files []*jfile) error {
	for len(buf) > 0 {
		// The file holding start: the last one starting at or before it.
		k := len(files) - 1
		for k > 0 && files[k].start > start {
			k--
		}
		f := files[k]
		end := int64(len(buf))
		if k+1 < len(files) {
			end = min(end, files[k+1].start-start)
		}
		if j.curFile != f {
			if j.cur != nil && j.durable {
				if err := j.io.sync(j.cur); err != nil {
					return fmt.Errorf("fsync %s: %w", j.cur.Name(), err)
				}
			}
			if j.cur != nil {
				if err := j.cur.Close(); err != nil {
					j.logger.Warn("closing a full journal file failed", "err", err)
				}
				j.cur = nil
			}
			fh, err := os.OpenFile(filepath.Join(j.dir, fileName(f.start, journalSuffix)), os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			j.cur, j.curFile = fh, f
			j.dirSync = true
		}
		if _, err := j.io.writeAt(j.cur, buf[:end], start-f.start); err != nil {
			return err
		}
		buf = buf[end:]
		start += end
	}
	return nil
}

// background writes what nobody waited for and the pending tails that are
// old enough, every tick.
func (j *Journal) background(tick time.Duration) {
	defer close(j.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			j.Tick()
		}
	}
}

// Tick writes the buffered frames, writes the pending tails older than the
// write age to their segments and removes the files no log needs.
func (j *Journal) Tick() {
	_ = j.Sync() // a failure is logged by Sync; the tails below still go

	cutoff := j.now().Add(-j.age)
	j.mu.Lock()
	n := 0
	for n < len(j.dirty) && !j.dirty[n].since.After(cutoff) {
		n++
	}
	due := slices.Clone(j.dirty[:n])
	j.dirty = slices.Delete(j.dirty, 0, n)
	j.mu.Unlock()
	for _, d := range due {
		d.l.writePendingFromJournal(d.since)
	}
	j.removeUnneeded()
}

// removeUnneeded removes the oldest files while no log needs them, and
// the files of an earlier process once all their frames were replayed.
// When durable, a syncfs of the data dir comes first: the tails and
// replayed batches written from those frames reached their segments
// through the page cache only, and the frames are what vouches for them
// until then. If it fails, the files stay for the next tick.
func (j *Journal) removeUnneeded() {
	// The files unneeded now: the oldest ones no tail starts in, and
	// those of an earlier process once nothing is left to replay. Only
	// the last file takes new tails and replay entries only go, so they
	// stay unneeded; one that becomes unneeded during the syncfs waits
	// for the next, as its tails' writes may have missed this one.
	j.mu.Lock()
	var drop []*jfile
	for k := 0; k+1 < len(j.files) && j.files[k].refs == 0 && j.written.Load() >= j.files[k+1].start; k++ {
		drop = append(drop, j.files[k])
	}
	oldDone := len(j.replay) == 0 && len(j.old) > 0
	j.mu.Unlock()
	if len(drop) == 0 && !oldDone {
		return
	}
	if j.durable {
		if err := j.io.syncFS(filepath.Dir(j.dir)); err != nil {
			j.logger.Warn("syncfs before removing journal files failed; they stay", "err", err)
			return
		}
	}
	var gone []string
	j.mu.Lock()
	for _, f := range drop {
		if len(j.files) < 2 || j.files[0] != f { // retired meanwhile
			break
		}
		gone = append(gone, filepath.Join(j.dir, fileName(f.start, journalSuffix)))
		j.files = j.files[1:]
	}
	if oldDone {
		gone = append(gone, j.old...)
		j.old = nil
	}
	j.mu.Unlock()
	for _, p := range gone {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.logger.Warn("removing a journal file failed", "file", p, "err", err)
		}
	}
}

// barrier journals that l was truncated or is deleted, and waits for the
// write: its earlier frames must not be replayed into what it becomes.
// l's mu is held and its pending tail written.
func (j *Journal) barrier(l *Log) error {
	j.mu.Lock()
	delete(j.replay, filepath.Base(l.dir))
	failed := j.failed
	j.mu.Unlock()
	if failed != nil {
		return j.retire()
	}
	if _, err := j.add(frameKindBarrier, l, nil, false); err != nil {
		return err
	}
	return j.Sync()
}

// retire is a barrier after a failed journal write, when no frame can be
// added: once no log's tail needs the journal and no earlier process's
// file is left to replay, its files go, and with them every frame a
// barrier would cancel. Until then it fails (the truncation is retried,
// and succeeds once the disk has room for the tails: the background
// writer keeps trying them).
func (j *Journal) retire() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.mu.Lock()
	retired := j.retired
	j.mu.Unlock()
	if retired {
		return nil
	}
	if j.durable {
		// The tails went to their segments through the page cache: they
		// are made durable before the frames vouching for them go (no
		// frame is added after the failure, so none is missed).
		if err := j.io.syncFS(filepath.Dir(j.dir)); err != nil {
			return fmt.Errorf("%w: syncfs before retiring the journal: %w", ErrIO, err)
		}
	}
	j.mu.Lock()
	busy := len(j.old) > 0
	for _, f := range j.files {
		busy = busy || f.refs > 0
	}
	if busy {
		err := j.failed
		j.mu.Unlock()
		return fmt.Errorf("%w: the journal failed (%w) and still holds tails not in their segments; retry once they are written", ErrIO, err)
	}
	gone := j.files
	j.files = []*jfile{{start: j.bufStart}}
	j.retired = true
	j.mu.Unlock()
	if j.cur != nil {
		j.cur.Close()
		j.cur, j.curFile = nil, nil
	}
	for _, f := range gone {
		p := filepath.Join(j.dir, fileName(f.start, journalSuffix))
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: remove %s: %w", ErrIO, p, err)
		}
	}
	j.logger.Info("journal retired after its failure: every tail is in its segment, its files are removed")
	return nil
}

// Replay appends to l the batches an earlier process journaled for it and
// did not write to its segment (a kill -9), in order: a batch whose last
// offset is below l's end is already there; one that starts at l's end is
// appended with its offsets and epoch, as a follower appends; one past the
// end (a log that lost data under the journal, or another incarnation) is
// skipped with a warning. Frames of another topic id are skipped. It
// returns how many batches it appended.
func (j *Journal) Replay(l *Log) (int, error) {
	name := filepath.Base(l.dir)
	j.mu.Lock()
	frames := j.replay[name]
	delete(j.replay, name)
	j.mu.Unlock()
	if len(frames) == 0 {
		return 0, nil
	}
	n, skipped := 0, 0
	for i, f := range frames {
		if f.topicID != l.opts.TopicID {
			skipped++
			continue
		}
		h, err := record.ParseHeader(f.batch)
		if err != nil {
			return n, fmt.Errorf("storage: journal replay into %s: %w", name, err)
		}
		leo := l.LogEndOffset()
		switch {
		case h.LastOffset() < leo:
			continue
		case h.BaseOffset != leo:
			skipped++
			l.logger.Warn("journal replay: a batch does not start at the log end; skipped", "base_offset", h.BaseOffset, "log_end", leo)
			continue
		}
		if _, err := l.AppendAsFollower(f.batch); err != nil {
			// The frames stay for the next attempt (the next start).
			j.mu.Lock()
			j.replay[name] = frames[i:]
			j.mu.Unlock()
			return n, fmt.Errorf("storage: journal replay into %s at offset %d: %w", name, h.BaseOffset, err)
		}
		n++
	}
	l.logger.Info("journal replayed", "batches", n, "skipped", skipped, "log_end", l.LogEndOffset())
	if n > 0 && l.opts.FsyncAlways && !l.RecoveryUnsynced() {
		// The replayed batches count as durable (the high watermark
		// waits for that) once fsynced; a deferred recovery's sync
		// (RecoverySynced, SyncRecovered) covers them instead.
		if err := l.Sync(l.LogEndOffset() - 1); err != nil {
			return n, fmt.Errorf("storage: journal replay into %s: %w", name, err)
		}
	}
	return n, nil
}

// HasReplay reports whether the earlier process journaled batches for the
// log in directory name that its replay will append (Replay).
func (j *Journal) HasReplay(name string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.replay[name]) > 0
}

// ForgetReplay drops the earlier process's frames of the logs for which
// keep is false (logs this broker no longer hosts), so that the old files
// can go.
func (j *Journal) ForgetReplay(keep func(name string) bool) {
	j.mu.Lock()
	for name := range j.replay {
		if !keep(name) {
			delete(j.replay, name)
		}
	}
	j.mu.Unlock()
}

// Close stops the background writer and writes what is buffered. Close
// the logs first: their pending tails are then written, no file is needed
// and the journal is left empty (a clean shutdown replays nothing).
func (j *Journal) Close() error {
	if j.stop != nil {
		close(j.stop)
		<-j.done
		j.stop = nil
	}
	err := j.Sync()
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	// Frames added before closed was set, then the chunk the last write
	// kept: nothing is added any more.
	if e := j.Sync(); err == nil {
		err = e
	}
	j.wmu.Lock()
	j.dropKept()
	j.wmu.Unlock()
	j.mu.Lock()
	if j.inUse.Load() == 0 {
		// No tail and no unwritten frame points into a slab, and no
		// chunk is taken from now on.
		j.bufMu.Lock()
		j.free = nil
		j.bufMu.Unlock()
		for _, m := range j.slabs {
			if e := unix.Munmap(m); e != nil {
				j.logger.Warn("unmapping a journal slab failed", "err", e)
			}
		}
		j.slabs, j.slab = nil, nil
	}
	j.mu.Unlock()
	j.wmu.Lock()
	if j.cur != nil {
		if e := j.cur.Close(); e != nil && err == nil {
			err = e
		}
		j.cur, j.curFile = nil, nil
	}
	j.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("storage: close journal: %w", err)
	}
	var gone []string
	j.mu.Lock()
	needed := false
	for _, f := range j.files {
		needed = needed || f.refs > 0
	}
	if !needed {
		for _, f := range j.files {
			gone = append(gone, filepath.Join(j.dir, fileName(f.start, journalSuffix)))
		}
		j.files = j.files[len(j.files)-1:]
	}
	if len(j.replay) == 0 {
		gone = append(gone, j.old...)
		j.old = nil
	}
	j.mu.Unlock()
	for _, p := range gone {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("storage: close journal: %w", err)
		}
	}
	return nil
}

// HasJournal reports whether dataDir holds journal files an earlier
// process left: they must be replayed even if the journal is off now.
func HasJournal(dataDir string) bool {
	ents, err := os.ReadDir(filepath.Join(dataDir, JournalDirName))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), journalSuffix) {
			return true
		}
	}
	return false
}

// Files lists the journal's files (tests and tools).
func (j *Journal) Files() ([]string, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), journalSuffix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
