package storage

import (
	"errors"
	"log/slog"
	"os"
	"time"
)

// Config is the per-log configuration, resolved from topic configs and broker
// defaults by the caller. Zero values are not defaults: callers pass every field
// (see DefaultConfig).
type Config struct {
	SegmentBytes       int64 // segment.bytes: roll when the active segment would exceed this
	SegmentMs          int64 // segment.ms: roll when the active segment's first batch is older than this
	SegmentIndexBytes  int32 // segment.index.bytes: roll when the offset index would exceed this
	IndexIntervalBytes int32 // index.interval.bytes: bytes between sparse index entries
	RetentionBytes     int64 // retention.bytes: -1 for unlimited
	RetentionMs        int64 // retention.ms: -1 for unlimited
	FlushMessages      int64 // flush.messages: fsync after this many messages; math.MaxInt64 for never
	FlushMs            int64 // flush.ms: fsync when unflushed data is older than this; math.MaxInt64 for never
	LogAppendTime      bool  // message.timestamp.type=LogAppendTime
	FileDeleteDelayMs  int64 // file.delete.delay.ms
	ProducerIDExpiryMs int64 // producer.id.expiration.ms

	// Compaction (see cleaner.go). Compact is set when cleanup.policy
	// contains compact; retention above still applies when it also
	// contains delete (the caller sets RetentionMs/RetentionBytes to -1
	// otherwise).
	Compact                bool
	DeleteRetentionMs      int64   // delete.retention.ms: how long cleaned tombstones stay
	MinCleanableDirtyRatio float64 // min.cleanable.dirty.ratio
	MinCompactionLagMs     int64   // min.compaction.lag.ms: younger segments are not cleaned
	MaxCompactionLagMs     int64   // max.compaction.lag.ms: older dirty data forces a clean; also caps segment.ms
}

// DefaultConfig is Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * 3600 * 1000,
		SegmentIndexBytes:  10 << 20,
		IndexIntervalBytes: 4096,
		RetentionBytes:     -1,
		RetentionMs:        7 * 24 * 3600 * 1000,
		FlushMessages:      1<<63 - 1,
		FlushMs:            1<<63 - 1,
		FileDeleteDelayMs:  60000,
		ProducerIDExpiryMs: 24 * 3600 * 1000,

		DeleteRetentionMs:      24 * 3600 * 1000,
		MinCleanableDirtyRatio: 0.5,
		MaxCompactionLagMs:     1<<63 - 1,
	}
}

// Options are the process-level dependencies of a Log.
type Options struct {
	Logger      *slog.Logger
	Now         func() time.Time // clock; time.Now if nil
	FsyncAlways bool             // Sync makes data durable before acks; see Log.Sync
	TopicID     [16]byte         // written to partition.metadata
	// IO, if set, replaces the writes and fsyncs of segment files
	// (faults.go: tests inject storage faults through it).
	IO *FileIO
	// ColdReadBytes (log.cold.read.bytes): a Read that starts in a closed
	// segment more than this many bytes below the log end is cold, and
	// the pages of the log it has passed are dropped from the page cache
	// (coldread.go). 0: never.
	ColdReadBytes int64
	// Lazy defers disk work a log does not need yet (lazy.go): a log whose
	// directory does not exist is opened in memory only (empty, no
	// directory, no file descriptor) and created on disk by its first
	// write; a cleanly shut down log keeps its clean shutdown marker until
	// its first write, and closing a log nothing was written to since it
	// opened writes nothing.
	Lazy bool
	// FDCache, if set, is the descriptor cache (log.fd.cache.size) the
	// log's segment files share with other logs (fdcache.go); nil keeps
	// every segment's file open while the segment exists.
	FDCache *FDCache
	// ScanBuffers, if set, lends the buffer Open scans segments through
	// (scanbuf.go); nil allocates one per log.
	ScanBuffers *ScanBuffers
	// DeferRecoverySync: Open of a log that needs recovery (no clean
	// shutdown marker, or a rebuilt index) writes what it rebuilt without
	// fsyncs and leaves the recovery point where it was
	// (RecoveryUnsynced then reports true). The caller must make the
	// files durable before the log is used: one SyncFS of the file system
	// for all the logs it opened, or SyncRecovered per log (recover.go).
	DeferRecoverySync bool
	// DeferLoad (with Lazy): Open of a log whose clean shutdown marker
	// carries its summary (log start, log end, size) reads only that and
	// the high watermark checkpoint; the first use that needs more loads
	// the log (deferred.go).
	DeferLoad bool
	// HighWatermark, with HighWatermarkGiven, is the high watermark the
	// caller has from its data dir's checkpoint: the log's own
	// replication-offset-checkpoint is not read (replication's
	// hwcheckpoint.go).
	HighWatermark      int64
	HighWatermarkGiven bool
	// Journal, if set (log.journal.enable), is the data dir's shared
	// journal: AppendJournaled writes a batch there and leaves its
	// segment write for later (journal.go, pending.go). With FsyncAlways
	// only a durable journal takes batches (JournalOptions.Durable).
	Journal *Journal
	// Summary, if set, is the data dir's clean shutdown summary
	// (dirsummary.go): a live entry for the log stands for its clean
	// shutdown marker, and a deferred close (CloseDeferSync) stages the
	// log's entry in it instead of writing a marker.
	Summary *DirSummary
}

// Errors. The broker maps them to Kafka error codes.
var (
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("storage: invalid producer epoch")
	ErrClosed               = errors.New("storage: log closed")
	ErrCorruptSegment       = errors.New("storage: corrupt data in flushed segment")
	ErrRecordTooLarge       = errors.New("storage: batch larger than segment.bytes")
	ErrInvalidTimestamp     = errors.New("storage: invalid timestamp")
	// ErrIO wraps every failure of the file system under a log: a write,
	// fsync, truncation, file creation or checkpoint that failed (a full
	// disk, an I/O error). A failed write leaves nothing of the batch in
	// the log (it is cut back to the last whole batch) and the next append
	// may succeed; a failed fsync of a segment, or a write that could not
	// be cut back, fails the log for good (every later append returns
	// ErrIO until it is reopened, which recovers it): after a failed fsync
	// the kernel may have dropped the dirty pages, so nothing written since
	// the last good fsync can be trusted (Kafka takes the log directory
	// offline; PostgreSQL panics).
	ErrIO = errors.New("storage: I/O error")
	// ErrUnexpectedAppendOffset: AppendAsFollower got a batch whose base
	// offset is below the log end offset or not above the previous batch's
	// last offset (Kafka's UnexpectedAppendOffsetException and
	// OffsetsOutOfOrderException).
	ErrUnexpectedAppendOffset = errors.New("storage: batch offset below the log end or out of order")
)

// AppendResult describes an append.
type AppendResult struct {
	BaseOffset     int64 // offset assigned to the batch's first record
	LastOffset     int64
	LogAppendTime  int64 // broker time written into the batch, or -1 for CreateTime
	LogStartOffset int64
	// Duplicate is set when the batch repeated one of the producer's last
	// five batches: nothing was written and the offsets are the original ones.
	Duplicate bool
	// Journaled (AppendJournaled): the answer must wait for the journal's
	// Sync, because the batch, or for a duplicate possibly the original,
	// is in the journal's buffer only.
	Journaled bool
}

// Region is a piece of a segment file to send with sendfile.
type Region struct {
	File   *os.File
	Offset int64
	Len    int64
}

// ReadResult holds file regions covering whole batches. The files stay open
// until Release is called, even if retention deletes their segments meanwhile.
type ReadResult struct {
	Regions []Region
	Size    int64 // sum of region lengths
	// End is the offset after the last batch returned (the bound of the
	// aborted transactions a read_committed fetch reports).
	End     int64
	release func()
}

// Release returns the file references. Safe to call more than once.
func (r *ReadResult) Release() {
	if r.release != nil {
		r.release()
		r.release = nil
	}
}

// The methods of *Log (implemented in log.go and friends):
//
//   Open(dir string, cfg Config, opts Options) (*Log, error)
//   Append(batch []byte, leaderEpoch int32) (AppendResult, error)
//   AppendVerified(batch []byte, leaderEpoch int32, guard uint64) (AppendResult, error)   (txn.go: transactions)
//   AppendJournaled(batch []byte, leaderEpoch int32) (AppendResult, error)   (journal.go, pending.go: the shared journal)
//   AppendVerifiedJournaled(batch []byte, leaderEpoch int32, guard uint64) (AppendResult, error)
//   StartTxnVerification(pid int64, epoch int16) (guard uint64, needed bool)
//   LastStableOffset(hw int64) int64
//   OnHighWatermark(hw int64)
//   AbortedTxns(from, upper int64) []AbortedTxn
//   ActiveProducers() []ProducerInfo
//   AppendAsFollower(batches []byte) (AppendResult, error)   (follower.go)
//   TruncateTo(offset int64) error   (follower.go)
//   TruncateFullyAndStartAt(offset int64) error   (follower.go)
//   Sync(offset int64) error
//   DurableOffset() int64
//   Read(offset, maxOffset int64, maxBytes int, minOneBatch bool) (ReadResult, error)
//   ForEachBatch(from int64, fn func(batch []byte) error) error
//   LogStartOffset() int64
//   LogEndOffset() int64
//   OffsetForTimestamp(ts int64) (offset, timestamp int64, found bool, err error)
//   MaxTimestamp() (offset, timestamp int64, err error)
//   EndOffsetForEpoch(epoch, current int32) (foundEpoch int32, endOffset int64)
//   LatestEpoch() (epoch int32, ok bool)   (follower.go)
//   SaveHighWatermark(hw int64) error   (follower.go; the broker no longer calls it: replication keeps one checkpoint per data dir)
//   HighWatermarkCheckpoint() int64   (follower.go)
//   DeleteRecordsBefore(offset int64) (newStart int64, err error)
//   EnforceRetention(upTo int64) error
//   MaybeFlush() error
//   Flush() error
//   SetConfig(cfg Config)
//   Size() int64
//   Clean(now time.Time, opts CleanOptions) (CleanStats, error)   (cleaner.go)
//   Close() error
//   Delete() error
