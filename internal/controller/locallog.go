package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/internal/storage"
)

// LocalLog is a single-node metadata.Log: each Append is one record batch in
// a local partition log, fsynced before Append returns.
type LocalLog struct {
	mu  sync.Mutex
	log *storage.Log
}

var _ metadata.Log = (*LocalLog)(nil)

// OpenLocalLog opens (creating if needed) the metadata log in dir.
func OpenLocalLog(dir string, logger *slog.Logger) (*LocalLog, error) {
	cfg := storage.DefaultConfig()
	cfg.RetentionMs = -1
	cfg.SegmentBytes = 64 << 20
	l, err := storage.Open(dir, cfg, storage.Options{Logger: logger, FsyncAlways: true, TopicID: metadata.UUID{15: 1}})
	if err != nil {
		return nil, fmt.Errorf("open metadata log %s: %w", dir, err)
	}
	return &LocalLog{log: l}, nil
}

// Append commits recs as one batch and returns the offset of the last record.
func (l *LocalLog) Append(recs []metadata.Record) (int64, error) {
	if len(recs) == 0 {
		return -1, fmt.Errorf("metadata: empty append")
	}
	rs := make([]record.Record, len(recs))
	for i, r := range recs {
		k, v, err := metadata.Encode(r)
		if err != nil {
			return -1, err
		}
		rs[i] = record.Record{OffsetDelta: int32(i), Key: k, Value: v}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A fresh buffer each time: the log takes ownership of what it appends.
	batch, err := record.Build(nil, record.BatchOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, nowMillis(), rs)
	if err != nil {
		return -1, fmt.Errorf("metadata: build batch: %w", err)
	}
	res, err := l.log.Append(batch, 0)
	if err != nil {
		return -1, fmt.Errorf("metadata: append: %w", err)
	}
	if err := l.log.Sync(res.LastOffset); err != nil {
		return -1, fmt.Errorf("metadata: fsync: %w", err)
	}
	return res.LastOffset, nil
}

// Replay calls fn with every committed batch of records, in order.
func (l *LocalLog) Replay(fn func(offset int64, recs []metadata.Record) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.ForEachBatch(l.log.LogStartOffset(), func(batch []byte) error {
		h, err := record.ParseHeader(batch)
		if err != nil {
			return err
		}
		var recs []metadata.Record
		err = record.ForEach(batch, func(r *record.Record) error {
			m, err := metadata.Decode(r.Key, r.Value)
			if err != nil {
				return fmt.Errorf("offset %d: %w", h.BaseOffset+int64(r.OffsetDelta), err)
			}
			recs = append(recs, m)
			return nil
		})
		if err != nil {
			return err
		}
		return fn(h.LastOffset(), recs)
	})
}

// Close closes the log.
func (l *LocalLog) Close() error { return l.log.Close() }

// localQuorum is the Quorum of a node that is its own quorum without Raft:
// a proposal is appended to the local log (fsynced) and applied at once.
type localQuorum struct {
	log  metadata.Log
	sm   StateMachine
	node int32
}

func (q *localQuorum) Propose(_ context.Context, data []byte) (uint64, error) {
	recs, err := metadata.DecodeEntry(data)
	if err != nil {
		return 0, err
	}
	off, err := q.log.Append(recs)
	if err != nil {
		return 0, err
	}
	if err := q.sm.Apply(uint64(off), data); err != nil {
		return 0, err
	}
	return uint64(off), nil
}

func (q *localQuorum) Leader() int32 { return q.node }

func (q *localQuorum) State() QuorumState {
	off := q.sm.Image().Offset
	return QuorumState{LeaderID: q.node, HighWatermark: off + 1,
		Voters: []QuorumReplica{{ID: q.node, LogEndOffset: off + 1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}}}
}
