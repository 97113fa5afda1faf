package storage

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The data dir's clean shutdown summary (Options.Summary), for a broker
// that closes and opens many logs at once. Each log's clean shutdown
// marker (deferred.go) is one file created at every shutdown and read at
// every start: at 100,000 partitions the markers were a third of a clean
// shutdown (issue 14). Kafka keeps one clean shutdown file per data dir;
// this summary is that, with each log's marker in it:
//
//   - A shutdown (replication.Manager.Close) closes every log with
//     CloseDeferSync, runs one syncfs, lets each log's finish stage its
//     entry (what its marker would say), runs another syncfs, and writes
//     the summary (Commit: a temporary file, fsync, rename, directory
//     fsync). A crash before the rename finds the previous summary, whose
//     entries still tell the truth (below).
//   - A start opens the summary (OpenDirSummary) before any log and
//     voids, with one write and one fdatasync, the entries of the logs
//     changed since it was written: an active segment of another size or
//     gone, or batches of the log in the journal (voidChanged). Open of a
//     log with a live entry then takes the entry as its marker and reads
//     nothing of the log.
//   - An entry stays true as long as it is live: a change that would remove
//     a log's marker durably voids its entry first, durably (Log.dropClean,
//     DirSummary.void: one byte of the file overwritten in place, then
//     fdatasync, group committed), and a change that removes a marker
//     lazily (an append, which the active segment's size tells) voids the
//     entry with the next syncCreated, as the marker's removal is made
//     durable there. A log opened without its directory voids a live entry
//     of its name before anything is created (the directory was deleted,
//     and one created under that name must not inherit the entry).
//
// The file:
//
//	strata-clean-shutdown-summary 1
//	<entries> <crc32c of the entry lines, hex>
//	<dir name> [<the marker's fields>]      one line per entry
//	<one byte per entry: '.' live, 'v' void>
//
// An entry without fields is a log shut down cleanly without a summary (a
// transaction was open): loaded in full at Open, not recovered. A summary
// that fails its checksum, or whose voids cannot be written, is logged and
// removed: every log without a marker of its own is then recovered.
const (
	dirSummaryFile    = "clean-shutdown-summary"
	dirSummaryVersion = "strata-clean-shutdown-summary 1"
	summaryLive       = '.'
	summaryVoid       = 'v'
)

// DirSummary is the data dir's clean shutdown summary: the entries of the
// previous shutdown, which logs consult at Open and void as they change,
// and those of the next, staged by the deferred closes' finish.
type DirSummary struct {
	dir    string
	io     *FileIO
	logger *slog.Logger

	index  map[string]int // dir name -> entry
	sums   []cleanSummary
	hasSum []bool
	voided []atomic.Bool
	voidAt int64 // file offset of the void bytes

	mu      sync.Mutex // the file, written; staged
	f       *os.File
	written uint64 // void writes made
	syncMu  sync.Mutex
	synced  uint64 // void writes made durable

	staged    []stagedEntry
	committed bool // Commit ran: the entries above are the old file's
}

type stagedEntry struct {
	name   string
	sum    cleanSummary
	hasSum bool
}

// OpenDirSummary reads the summary of dataDir and voids the entries of
// the logs changed since (voidChanged). journal, if set, is the data dir's
// journal, opened already: a log it replays batches into was appended to
// since. A missing file is an empty summary. One that cannot be used (it
// fails its checksum, or the voids cannot be written) is logged and
// removed, durably, so that no later start trusts it either: every log
// without a marker of its own is then recovered, as after a crash. Only if
// it cannot even be removed is the error returned: the logs must not open
// then (nothing would stop the next start from trusting entries of logs
// this run changes).
func OpenDirSummary(dataDir string, io *FileIO, logger *slog.Logger, journal *Journal) (*DirSummary, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := readDirSummary(dataDir, io, logger)
	if err == nil && len(s.sums) > 0 {
		err = s.voidChanged(journal)
	}
	if err == nil {
		return s, nil
	}
	path := filepath.Join(dataDir, dirSummaryFile)
	logger.Warn("ignoring the data dir's clean shutdown summary: logs without a marker of their own are recovered",
		"file", path, "err", err)
	empty := &DirSummary{dir: dataDir, io: io, logger: logger, index: map[string]int{}}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return empty, fmt.Errorf("storage: %w: remove the unusable clean shutdown summary %s (%w): %w", ErrIO, path, err, rerr)
	}
	if serr := io.syncPath(dataDir); serr != nil {
		return empty, fmt.Errorf("storage: %w: remove the unusable clean shutdown summary %s (%w): %w", ErrIO, path, err, serr)
	}
	return empty, nil
}

// voidChanged voids, durably and all at once, the live entries whose log
// changed since the summary was written: the active segment is not the
// size the entry says, or is gone (after a crash, every log appended to
// since the last clean start; a directory deleted), or the journal holds
// batches of it that its segment does not (their replay loads the log
// anyway, and recovering a small log costs less than a clean load, which
// reads its index files and walks the headers after them). Each log would
// otherwise void its own entry at Open, before recovering, with one
// fdatasync each. A live entry afterwards describes its log, and Open
// trusts it without a stat of its own (openPending).
func (s *DirSummary) voidChanged(journal *Journal) error {
	changed := make([]atomic.Bool, len(s.sums))
	var n atomic.Int64
	names := make([]string, len(s.sums))
	for name, i := range s.index {
		names[i] = name
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(8, len(names)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(names) {
					return
				}
				sum := s.sums[i]
				if s.voided[i].Load() || !s.hasSum[i] || !sum.hasActive {
					continue // nothing to check it against: its log decides at load
				}
				if (journal != nil && journal.HasReplay(names[i])) || !sum.activeMatches(filepath.Join(s.dir, names[i])) {
					changed[i].Store(true)
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n.Load() == 0 {
		return nil
	}
	region := make([]byte, len(s.sums))
	for i := range region {
		region[i] = summaryLive
		if s.voided[i].Load() || changed[i].Load() {
			region[i] = summaryVoid
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, dirSummaryFile), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("void the entries of changed logs: %w", err)
	}
	defer f.Close()
	if _, err := s.io.writeAt(f, region, s.voidAt); err != nil {
		return fmt.Errorf("void the entries of changed logs: %w", err)
	}
	if err := s.io.sync(f); err != nil {
		return fmt.Errorf("void the entries of changed logs: fsync: %w", err)
	}
	for i := range changed {
		if changed[i].Load() {
			s.voided[i].Store(true)
		}
	}
	s.logger.Info(fmt.Sprintf("%d of %d logs in the clean shutdown summary changed since; they are recovered", n.Load(), len(s.sums)))
	return nil
}

// readDirSummary reads the summary of dataDir and checks nothing
// against the logs.
func readDirSummary(dataDir string, io *FileIO, logger *slog.Logger) (*DirSummary, error) {
	s := &DirSummary{dir: dataDir, io: io, logger: logger, index: map[string]int{}}
	b, err := ReadSmallFile(filepath.Join(dataDir, dirSummaryFile))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err == nil {
		err = s.parse(b)
	}
	return s, err
}

func (s *DirSummary) parse(b []byte) error {
	head, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok || string(head) != dirSummaryVersion {
		return fmt.Errorf("not a summary (first line %.40q)", head)
	}
	counts, rest, ok := bytes.Cut(rest, []byte("\n"))
	f := strings.Fields(string(counts))
	if !ok || len(f) != 2 {
		return errors.New("bad second line")
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return fmt.Errorf("bad entry count %q", f[0])
	}
	want, err := strconv.ParseUint(f[1], 16, 32)
	if err != nil {
		return fmt.Errorf("bad checksum %q", f[1])
	}
	// The entry lines end where the void bytes start: n bytes from the end.
	if len(rest) < n {
		return fmt.Errorf("%d entries but %d bytes", n, len(rest))
	}
	body, voids := rest[:len(rest)-n], rest[len(rest)-n:]
	if got := crc32.Checksum(body, castagnoli); uint64(got) != want {
		return fmt.Errorf("checksum %08x, want %08x", got, want)
	}
	s.voidAt = int64(len(b) - n)
	s.sums = make([]cleanSummary, 0, n)
	s.hasSum = make([]bool, 0, n)
	s.voided = make([]atomic.Bool, n)
	for i := range n {
		line, next, ok := bytes.Cut(body, []byte("\n"))
		if !ok {
			return fmt.Errorf("%d entry lines, want %d", i, n)
		}
		body = next
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			return fmt.Errorf("entry %d is empty", i)
		}
		var sum cleanSummary
		has := len(fields) > 1
		if has {
			if sum, ok = parseCleanFields(fields[1:]); !ok {
				return fmt.Errorf("entry %d (%s) is malformed", i, fields[0])
			}
		}
		if _, dup := s.index[fields[0]]; dup {
			return fmt.Errorf("entry %d (%s) repeats a name", i, fields[0])
		}
		s.index[fields[0]] = i
		s.sums = append(s.sums, sum)
		s.hasSum = append(s.hasSum, has)
		// Anything but the live byte (a torn write of 'v') is void.
		s.voided[i].Store(voids[i] != summaryLive)
	}
	if len(body) != 0 {
		return fmt.Errorf("%d bytes after the entries", len(body))
	}
	return nil
}

// live returns the live entry of the log in directory name: i is -1 if
// there is none.
func (s *DirSummary) live(name string) (i int, sum cleanSummary, hasSum bool) {
	if s == nil {
		return -1, cleanSummary{}, false
	}
	i, ok := s.index[name]
	if !ok || s.voided[i].Load() {
		return -1, cleanSummary{}, false
	}
	return i, s.sums[i], s.hasSum[i]
}

// void marks entry i void, durably: its byte overwritten in place (the
// file's blocks exist, so a full disk does not stop it), then one
// fdatasync for every void written meanwhile (group commit).
func (s *DirSummary) void(i int) error {
	if s.voided[i].Load() {
		return nil
	}
	path := filepath.Join(s.dir, dirSummaryFile)
	s.mu.Lock()
	if s.committed {
		s.mu.Unlock()
		return fmt.Errorf("void entry %d of %s: the next summary is written already", i, path)
	}
	if s.f == nil {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("void entry %d of %s: %w", i, path, err)
		}
		s.f = f
	}
	f := s.f
	if _, err := s.io.writeAt(f, []byte{summaryVoid}, s.voidAt+int64(i)); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("void entry %d of %s: %w", i, path, err)
	}
	s.written++
	mine := s.written
	s.mu.Unlock()

	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced < mine {
		s.mu.Lock()
		upTo := s.written
		s.mu.Unlock()
		if err := s.io.sync(f); err != nil {
			return fmt.Errorf("void entry %d of %s: fsync: %w", i, path, err)
		}
		s.synced = upTo
	}
	s.voided[i].Store(true)
	return nil
}

// stage records a log's entry for the next summary (a deferred close's
// finish).
func (s *DirSummary) stage(name string, sum cleanSummary, hasSum bool) {
	s.mu.Lock()
	s.staged = append(s.staged, stagedEntry{name: name, sum: sum, hasSum: hasSum})
	s.mu.Unlock()
}

// Commit writes the staged entries as the data dir's summary, replacing the
// previous one durably, and closes the summary. Call it once every log it
// vouches for is durable (after the deferred closes' finish and a
// SyncFS). The summary takes no voids afterwards.
func (s *DirSummary) Commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.committed = true
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	var body bytes.Buffer
	for _, e := range s.staged {
		body.WriteString(e.name)
		if e.hasSum {
			body.WriteByte(' ')
			body.WriteString(e.sum.fields())
		}
		body.WriteByte('\n')
	}
	n := len(s.staged)
	s.staged = nil
	out := make([]byte, 0, body.Len()+n+64)
	out = fmt.Appendf(out, "%s\n%d %08x\n", dirSummaryVersion, n, crc32.Checksum(body.Bytes(), castagnoli))
	out = append(out, body.Bytes()...)
	out = append(out, bytes.Repeat([]byte{summaryLive}, n)...)
	if err := writeFileAtomicIO(s.io, s.dir, dirSummaryFile, out, true); err != nil {
		return fmt.Errorf("storage: write the data dir's clean shutdown summary: %w", err)
	}
	return nil
}

// Close closes the file voids are written through.
func (s *DirSummary) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
