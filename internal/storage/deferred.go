package storage

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Deferred loading (Options.DeferLoad, with Lazy), for a broker restarting
// with many partitions: most of a clean start's cost is loading every log
// (its checkpoints, indexes, the headers after the last index entry, the
// producer snapshot: some 30 system calls a log), yet what the broker
// needs of a log before its first use is its log start and end offsets,
// its size and its high watermark. A clean shutdown writes those into the
// log's clean shutdown marker (cleanSummary); Open of a log whose marker
// has them reads the marker and the high watermark checkpoint only, and
// the log is pending: loaded in full (load, under both locks) by the
// first call that needs more (ensureLoaded). Until then the files are as
// the clean shutdown left them, marker included, and LogStartOffset,
// LogEndOffset, DurableOffset, Size, HighWatermarkCheckpoint,
// OnHighWatermark, SaveHighWatermark, MaybeFlush, Flush, SetConfig and
// Close answer without loading.
//
// The marker is trustworthy for as long as it exists: every path that
// changes a file of the log removes it first (ensureWritable), durably, and
// a marker without a summary (an older broker's, or a log never loaded
// since) just means a full load at Open, as before. A summary that does
// not match what the load then finds is logged and the load's values win.

// cleanSummaryVersion heads the marker's content.
const cleanSummaryVersion = "strata-clean-shutdown 1"

// cleanSummary is what a clean shutdown marker records: the log start
// and end offsets and the total size of its segment files, (hasActive)
// the base offset and size of the active segment, which a broker uses to
// check that nothing was appended since (activeMatches), and then
// (hasTopicID) the topic id, so that Open checks it without reading
// partition.metadata. A marker of an earlier broker has only the first
// three or five; one with more is read by such a broker as one without a
// summary (a full load at Open).
type cleanSummary struct {
	logStart, logEnd, size int64
	hasActive              bool
	activeBase, activeSize int64
	hasTopicID             bool
	topicID                [16]byte
}

func (s cleanSummary) encode() []byte {
	return []byte(cleanSummaryVersion + "\n" + s.fields() + "\n")
}

// fields is the summary's line: three, five or six fields (the type's
// comment).
func (s cleanSummary) fields() string {
	if s.hasActive && s.hasTopicID {
		return fmt.Sprintf("%d %d %d %d %d %s", s.logStart, s.logEnd, s.size, s.activeBase, s.activeSize,
			base64.RawURLEncoding.EncodeToString(s.topicID[:]))
	}
	if s.hasActive {
		return fmt.Sprintf("%d %d %d %d %d", s.logStart, s.logEnd, s.size, s.activeBase, s.activeSize)
	}
	return fmt.Sprintf("%d %d %d", s.logStart, s.logEnd, s.size)
}

// sameOffsets reports whether s and o agree on the log's offsets and size.
func (s cleanSummary) sameOffsets(o cleanSummary) bool {
	return s.logStart == o.logStart && s.logEnd == o.logEnd && s.size == o.size
}

// readCleanSummary reads the clean shutdown marker of dir; ok is false if
// there is none or it has no (valid) summary.
func readCleanSummary(dir string) (cleanSummary, bool) {
	b, err := ReadSmallFile(filepath.Join(dir, cleanShutdownFile))
	if err != nil {
		return cleanSummary{}, false
	}
	head, rest, found := strings.Cut(string(b), "\n")
	if !found || head != cleanSummaryVersion {
		return cleanSummary{}, false
	}
	return parseCleanFields(strings.Fields(rest))
}

// parseCleanFields parses the fields of a summary (cleanSummary.encode's
// second line, or an entry of the data dir's summary after its name).
func parseCleanFields(f []string) (cleanSummary, bool) {
	if len(f) != 3 && len(f) != 5 && len(f) != 6 {
		return cleanSummary{}, false
	}
	var id [16]byte
	if len(f) == 6 {
		b, err := base64.RawURLEncoding.DecodeString(f[5])
		if err != nil || len(b) != len(id) {
			return cleanSummary{}, false
		}
		copy(id[:], b)
		f = f[:5]
	}
	var v [5]int64
	for i := range f {
		var err error
		if v[i], err = strconv.ParseInt(f[i], 10, 64); err != nil || v[i] < 0 {
			return cleanSummary{}, false
		}
	}
	s := cleanSummary{logStart: v[0], logEnd: v[1], size: v[2], hasActive: len(f) == 5, activeBase: v[3], activeSize: v[4],
		hasTopicID: id != [16]byte{}, topicID: id}
	if s.logStart > s.logEnd || (s.hasActive && (s.activeBase > s.logEnd || s.activeSize > s.size)) {
		return cleanSummary{}, false
	}
	return s, true
}

// activeMatches reports whether the active segment file the summary
// names has the size it records, with one stat. A first append after a
// clean restart removes the marker without an fsync (ensureAppendable), so
// after a machine crash the marker may still be there over an active
// segment that grew; a segment that did not grow holds nothing the marker
// does not describe (rolls and every other change make the removal
// durable first).
func (s cleanSummary) activeMatches(dir string) bool {
	if !s.hasActive {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, fileName(s.activeBase, logSuffix)))
	return err == nil && st.Size() == s.activeSize
}

// summary is what the clean shutdown marker of the log records now; mu
// held.
func (l *Log) summary() cleanSummary {
	s := cleanSummary{logStart: l.logStart, logEnd: l.leo.Load()}
	for _, seg := range l.segs {
		s.size += seg.size.Load()
	}
	if len(l.segs) > 0 && !l.active().mem {
		s.hasActive, s.activeBase, s.activeSize = true, l.active().base, l.active().size.Load()
	}
	s.topicID = l.opts.TopicID
	s.hasTopicID = s.topicID != [16]byte{}
	return s
}

// openPending sets the log up from its clean shutdown summary, without
// loading it; it reports false (having changed nothing) when the marker
// has no summary. A log of another topic id (the summary's, or for a
// summary without one partition.metadata's) is ErrInconsistentTopicID, as
// a load finds it. Not shared yet: no locks.
func (l *Log) openPending() (bool, error) {
	sum, ok, inSummary := l.summaryEntry()
	if !inSummary {
		sum, ok = readCleanSummary(l.dir)
	}
	// A live entry's active segment was checked when the summary was
	// opened (OpenDirSummary), and only this log changes it.
	if !ok || (!inSummary && sum.hasActive && !sum.activeMatches(l.dir)) {
		// No summary, or the active segment grew after the marker was
		// written: loaded (and checked) at Open.
		return false, nil
	}
	if id := l.opts.TopicID; id != ([16]byte{}) {
		if sum.hasTopicID && sum.topicID != id {
			return false, fmt.Errorf("%w: %s in the clean shutdown marker of %s", ErrInconsistentTopicID,
				base64.RawURLEncoding.EncodeToString(sum.topicID[:]), l.dir)
		}
		if !sum.hasTopicID {
			if _, err := checkPartitionMetadata(l.dir, id); err != nil {
				return false, err
			}
		}
	}
	l.loadHighWatermark()
	l.logStart = sum.logStart
	l.leo.Store(sum.logEnd)
	l.durable.Store(sum.logEnd)
	l.pendingSize = sum.size
	l.pendingSum = sum
	l.cleanMarker = true
	l.lastFlushMs = l.nowMs()
	l.pending.Store(true)
	return true, nil
}

// ensureLoaded loads a pending log in full; a no-op for a loaded one. A
// load that fails leaves the log failed (appends return the error) and
// empty to readers, and the error is logged.
func (l *Log) ensureLoaded() error {
	if !l.pending.Load() {
		return nil
	}
	l.flushMu.Lock()
	l.mu.Lock()
	if !l.pending.Load() {
		err := l.loadErr
		l.mu.Unlock()
		l.flushMu.Unlock()
		return err
	}
	if l.closed {
		l.mu.Unlock()
		l.flushMu.Unlock()
		return ErrClosed
	}
	needFlush, err := l.load()
	if err == nil {
		if got := l.summary(); !got.sameOffsets(l.pendingSum) {
			l.logger.Warn("the log differs from its clean shutdown summary; using what its files say",
				"summary_log_start", l.pendingSum.logStart, "log_start", got.logStart,
				"summary_log_end", l.pendingSum.logEnd, "log_end", got.logEnd,
				"summary_size", l.pendingSum.size, "size", got.size)
		}
		l.opts.ScanBuffers.put(l.scratch)
		l.scratch = nil
	} else {
		for _, s := range l.segs {
			s.release()
		}
		l.segs = nil
		l.logger.Error("loading the log failed; it stays offline", "err", err)
		err = fmt.Errorf("storage: open %s: %w", l.dir, err)
		if !errors.Is(err, ErrIO) && !errors.Is(err, ErrCorruptSegment) {
			err = fmt.Errorf("%w: %w", ErrIO, err)
		}
		l.failed = err
		l.loadErr = err
		// An empty in-memory segment at the log end, so that readers
		// find nothing rather than no segment at all.
		leo := l.leo.Load()
		s := &segment{dir: l.dir, base: leo, next: leo, maxTs: -1, maxTsOffset: -1, firstBatchTs: -1, created: l.now(), mem: true}
		s.refs.Store(1)
		l.segs = []*segment{s}
	}
	l.pending.Store(false)
	l.mu.Unlock()
	l.flushMu.Unlock()
	if err == nil && needFlush {
		return l.flush(true)
	}
	return err
}
