package replication

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/storage"
)

// Counters for metrics. The hot paths (produce, fetch) add to atomics in
// the partition and in the manager's env; a metrics collector reads them
// at scrape time with Counters, so nothing here allocates or locks per
// request.

// partitionStats counts one hosted replica's traffic.
type partitionStats struct {
	bytesIn, messagesIn, bytesOut  atomic.Int64
	produceFailures, fetchFailures atomic.Int64
}

// brokerStats counts across every partition the manager ever hosted, so
// the totals never go down when a partition goes away.
type brokerStats struct {
	bytesIn, messagesIn, bytesOut, replicationBytesOut atomic.Int64
	produceFailures, fetchFailures                     atomic.Int64
	isrShrinks, isrExpands                             atomic.Int64
	storageErrors                                      atomic.Int64
	fsyncObs                                           atomic.Pointer[func(time.Duration)]
}

// PartitionCounters are a replica's counters since it was opened on this
// broker.
type PartitionCounters struct {
	// BytesIn and MessagesIn count batches appended as leader from
	// produce requests; BytesOut counts record bytes sent to consumers.
	BytesIn, MessagesIn, BytesOut int64
	// ProduceFailures and FetchFailures count partition-level errors
	// (not leader, invalid records, out of range, storage errors...).
	ProduceFailures, FetchFailures int64
}

// Counters returns the replica's counters.
func (p *Partition) Counters() PartitionCounters {
	s := &p.stats
	return PartitionCounters{BytesIn: s.bytesIn.Load(), MessagesIn: s.messagesIn.Load(), BytesOut: s.bytesOut.Load(),
		ProduceFailures: s.produceFailures.Load(), FetchFailures: s.fetchFailures.Load()}
}

// Replicas returns the partition's replicas as this replica knows them.
func (p *Partition) Replicas() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.st.replicas)
}

// BrokerCounters are the manager's totals since it started.
type BrokerCounters struct {
	BytesIn, MessagesIn, BytesOut int64
	// ReplicationBytesOut counts record bytes sent to followers.
	ReplicationBytesOut            int64
	ProduceFailures, FetchFailures int64
	// ISRShrinks and ISRExpands count ISR changes of partitions this
	// broker leads that the controller accepted.
	ISRShrinks, ISRExpands int64
	// StorageErrors counts appends and syncs the log failed with an I/O
	// error (not a validation error).
	StorageErrors int64
}

// Counters returns the broker-wide totals.
func (m *Manager) Counters() BrokerCounters {
	s := &m.env.stats
	return BrokerCounters{BytesIn: s.bytesIn.Load(), MessagesIn: s.messagesIn.Load(), BytesOut: s.bytesOut.Load(),
		ReplicationBytesOut: s.replicationBytesOut.Load(),
		ProduceFailures:     s.produceFailures.Load(), FetchFailures: s.fetchFailures.Load(),
		ISRShrinks: s.isrShrinks.Load(), ISRExpands: s.isrExpands.Load(), StorageErrors: s.storageErrors.Load()}
}

// Failed returns the partitions whose logs could not be opened, with why.
func (m *Manager) Failed() map[TopicPartition]error {
	return maps.Clone(*m.failed.Load())
}

// SetFsyncObserver makes f see the duration of every fsync of a partition
// log opened afterwards (set it before Start). f must be cheap and safe for
// concurrent use.
func (m *Manager) SetFsyncObserver(f func(time.Duration)) {
	m.env.stats.fsyncObs.Store(&f)
}

// observeFsync hands a log's fsync durations to the manager's observer.
func (e *env) observeFsync(log *storage.Log) {
	if e.stats.fsyncObs.Load() == nil {
		return
	}
	log.SetFsyncObserver(func(d time.Duration) {
		if f := e.stats.fsyncObs.Load(); f != nil {
			(*f)(d)
		}
	})
}

// countAppend records a produce append's outcome.
func (p *Partition) countAppend(size int, res AppendResult, err error) {
	b := &p.env.stats
	if err != nil {
		p.stats.produceFailures.Add(1)
		b.produceFailures.Add(1)
		return
	}
	if res.Duplicate {
		return
	}
	n := res.LastOffset - res.BaseOffset + 1
	p.stats.bytesIn.Add(int64(size))
	p.stats.messagesIn.Add(n)
	b.bytesIn.Add(int64(size))
	b.messagesIn.Add(n)
}

// countISRChange records an accepted ISR change of a partition this
// replica leads.
func (e *env) countISRChange(from, to int) {
	switch {
	case to < from:
		e.stats.isrShrinks.Add(1)
	case to > from:
		e.stats.isrExpands.Add(1)
	}
}
