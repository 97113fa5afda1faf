package replication

import (
	"sync"
	"sync/atomic"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// Partition is a hosted partition: its log and its leader state.
type Partition struct {
	Topic   string
	TopicID metadata.UUID
	Index   int32
	Log     *storage.Log

	fsyncAlways bool
	leaderEpoch atomic.Int32
	hw          atomic.Int64
	cfg         atomic.Pointer[config.Topic]

	mu     sync.Mutex
	waitCh chan struct{} // closed when the high watermark moves; nil if nobody waits
}

func newPartition(topic string, id metadata.UUID, idx int32, log *storage.Log, fsyncAlways bool, epoch int32, cfg *config.Topic) *Partition {
	p := &Partition{Topic: topic, TopicID: id, Index: idx, Log: log, fsyncAlways: fsyncAlways}
	p.leaderEpoch.Store(epoch)
	p.cfg.Store(cfg)
	if fsyncAlways {
		p.hw.Store(log.DurableOffset())
	} else {
		p.hw.Store(log.LogEndOffset())
	}
	return p
}

// Config is the partition's effective topic configuration.
func (p *Partition) Config() *config.Topic { return p.cfg.Load() }

// LeaderEpoch is the current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// HighWatermark is the offset below which records are visible to consumers.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// Append appends one validated batch. Unless the broker fsyncs before
// acknowledging, the high watermark moves at once (one replica: the ISR is
// this broker).
func (p *Partition) Append(batch []byte) (storage.AppendResult, error) {
	res, err := p.Log.Append(batch, p.leaderEpoch.Load())
	if err != nil || res.Duplicate {
		return res, err
	}
	if !p.fsyncAlways {
		p.advance(res.LastOffset + 1)
	}
	return res, nil
}

// Sync returns once offset is durable per the fsync policy, moving the high
// watermark to what is durable.
func (p *Partition) Sync(offset int64) error {
	if !p.fsyncAlways {
		return nil
	}
	if err := p.Log.Sync(offset); err != nil {
		return err
	}
	p.advance(p.Log.DurableOffset())
	return nil
}

func (p *Partition) advance(hw int64) {
	for {
		cur := p.hw.Load()
		if hw <= cur {
			return
		}
		if p.hw.CompareAndSwap(cur, hw) {
			break
		}
	}
	p.mu.Lock()
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	p.mu.Unlock()
}

// Wait returns a channel closed the next time the high watermark moves.
func (p *Partition) Wait() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitCh == nil {
		p.waitCh = make(chan struct{})
	}
	return p.waitCh
}

// wakeAll releases waiters, used when the partition goes away.
func (p *Partition) wakeAll() {
	p.mu.Lock()
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	p.mu.Unlock()
}
