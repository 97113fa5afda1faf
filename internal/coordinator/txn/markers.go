package txn

// The marker sender (Kafka's TransactionMarkerChannelManager): once a
// PrepareCommit or PrepareAbort is durable, every partition of the
// transaction gets its marker through the MarkerChannel (WriteTxnMarkers to
// the partition leaders, grouped per broker by the channel). Partitions
// that fail (leader moved, broker down, not enough replicas) are retried
// after MarkerBackoff until written; a partition whose topic is gone needs
// no marker; a marker the partition fences (a newer coordinator epoch)
// stops the job, since a newer coordinator owns it. A partition that
// refuses a transaction version 2 marker's producer epoch is retried like
// a failure: a marker counts as written only when a partition acknowledges
// it, which it does once the marker is replicated. When every partition
// has its marker, the CompleteCommit or CompleteAbort record is written
// (retried alone while the log refuses it).
// The jobs waiting when a round starts go out together (first sends apart
// from retries), so concurrent transactions share requests; rounds do not
// wait for each other, so a broker that does not answer delays only the
// jobs with a partition on it (and those sent in the same instant).

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/coordinator/runtime"
)

// Marker is the commit or abort marker of one transaction, for its
// partitions.
type Marker struct {
	TransactionalID  string
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
	// TransactionVersion is the client's (WriteTxnMarkers v2).
	TransactionVersion int8
	Partitions         []TopicPartition
}

// MarkerChannel writes markers on partitions.
type MarkerChannel interface {
	// Write writes each marker on its partitions and returns, per marker
	// and partition, nil (written and durable: replicated to the ISR as
	// an acks=all append), ErrPartitionGone (needs none), ErrMarkerFenced
	// (stop), ErrMarkerStaleEpoch (stop before transaction version 2,
	// else retry), or another error (retry).
	Write(ctx context.Context, markers []Marker) [][]error
}

type markerJob struct {
	p                int32
	coordinatorEpoch int32
	id               string
	pid              int64
	epoch            int16
	commit           bool
	tv               int16
	partitions       []TopicPartition
	completeTries    int  // failed attempts at the Complete record
	staleTries       int  // INVALID_PRODUCER_EPOCH answers to a version 2 marker (only its round touches it)
	inflight         bool // a round is sending it (guarded by markerSender.mu)
	retried          bool // a round sent it before (guarded by markerSender.mu)
}

type markerSender struct {
	c *Coordinator

	mu   sync.Mutex
	jobs []*markerJob
	// completes are jobs whose markers are all written but whose Complete
	// record could not be appended (the partition's ISR below
	// min.insync.replicas, say): the Complete alone is retried after
	// MarkerBackoff, as Kafka's TransactionMarkerChannelManager retries
	// its log appends, until written or the shard is unloaded.
	completes []markerJob
	// submitting counts the Complete records submitted to their shards
	// and not answered yet (for tests to await).
	submitting int
	wake       chan struct{}
}

func newMarkerSender(c *Coordinator) *markerSender {
	return &markerSender{c: c, wake: make(chan struct{}, 1)}
}

func (m *markerSender) add(jobs ...markerJob) {
	if len(jobs) == 0 {
		return
	}
	m.mu.Lock()
	for i := range jobs {
		j := jobs[i]
		m.jobs = append(m.jobs, &j)
	}
	m.mu.Unlock()
	m.poke()
}

// poke wakes the sender without waiting.
func (m *markerSender) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// drop forgets the jobs of partition p (unloaded, or loaded again: the
// load resends them).
func (m *markerSender) drop(p int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	kept := m.jobs[:0]
	for _, j := range m.jobs {
		if j.p != p {
			kept = append(kept, j)
		}
	}
	clear(m.jobs[len(kept):])
	m.jobs = kept
	keptC := m.completes[:0]
	for _, j := range m.completes {
		if j.p != p {
			keptC = append(keptC, j)
		}
	}
	m.completes = keptC
}

// run starts a round for the jobs not in flight at every wake-up. Rounds
// run concurrently, as Kafka's channel manager sends to each broker
// independently: a round waiting on a slow or unreachable broker (up to
// the channel's request timeout) does not hold back the markers of
// transactions that came after it. A round with jobs to retry wakes the
// sender again after MarkerBackoff.
func (m *markerSender) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		}
		fresh, retries, completes := m.take()
		// Retries (likely to wait on an unanswering broker again) and
		// first sends go in separate rounds.
		for _, jobs := range [][]*markerJob{fresh, retries} {
			if len(jobs) == 0 && len(completes) == 0 {
				continue
			}
			wg.Add(1)
			go func(completes []markerJob) {
				defer wg.Done()
				if m.round(ctx, jobs, completes) {
					time.AfterFunc(m.c.opts.MarkerBackoff, m.poke)
				}
			}(completes)
			completes = nil
		}
	}
}

// take claims the jobs no round is sending, first sends apart from
// retries, and the Completes to retry.
func (m *markerSender) take() (fresh, retries []*markerJob, completes []markerJob) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.jobs {
		if j.inflight {
			continue
		}
		j.inflight = true
		if j.retried {
			retries = append(retries, j)
		} else {
			fresh = append(fresh, j)
		}
	}
	completes = m.completes
	m.completes = nil
	m.submitting += len(completes)
	return fresh, retries, completes
}

// round sends the claimed jobs once and writes the Complete records of
// those done (and of retryComplete); it reports whether some must be
// retried.
func (m *markerSender) round(ctx context.Context, jobs []*markerJob, retryComplete []markerJob) (again bool) {
	var (
		send    []Marker
		sendFor []*markerJob
		done    []*markerJob
	)
	for _, j := range jobs {
		if len(j.partitions) == 0 {
			done = append(done, j)
			continue
		}
		send = append(send, Marker{TransactionalID: j.id, ProducerID: j.pid, ProducerEpoch: j.epoch, Commit: j.commit,
			CoordinatorEpoch: j.coordinatorEpoch, TransactionVersion: int8(j.tv), Partitions: j.partitions})
		sendFor = append(sendFor, j)
	}
	var fenced []*markerJob
	if len(send) > 0 {
		results := m.c.opts.Markers.Write(ctx, send)
		for i, j := range sendFor {
			var left []TopicPartition
			stop := false
			for k, tp := range j.partitions {
				var err error
				if i < len(results) && k < len(results[i]) {
					err = results[i][k]
				} else {
					err = errors.New("no result")
				}
				switch {
				case err == nil, errors.Is(err, ErrPartitionGone):
				case errors.Is(err, ErrMarkerFenced), errors.Is(err, ErrMarkerStaleEpoch) && j.tv < 2:
					stop = true
					m.c.log.Info("marker fenced: a newer coordinator or producer epoch owns the partition", "transactional_id", j.id, "partition", tp, "err", err)
				case errors.Is(err, ErrMarkerStaleEpoch):
					// Transaction version 2: the partition holds a newer
					// epoch of the producer than this prepared
					// transaction gave out, or a transaction of it at
					// this epoch. Never taken for written: the marker
					// may never have become durable there, and the
					// transaction completes only once every partition
					// acknowledges its marker.
					left = append(left, tp)
					j.staleTries++
					level := slog.LevelDebug
					if j.staleTries == 1 {
						level = slog.LevelWarn
					}
					m.c.log.Log(context.Background(), level, "partition refused a transaction version 2 marker for its producer epoch; retrying",
						"transactional_id", j.id, "topic", tp.Topic, "partition", tp.Partition, "producer_id", j.pid, "epoch", j.epoch, "tries", j.staleTries, "err", err)
				default:
					left = append(left, tp)
					m.c.log.Debug("marker not written yet; will retry", "transactional_id", j.id, "topic", tp.Topic, "partition", tp.Partition, "err", err)
				}
			}
			switch {
			case stop:
				fenced = append(fenced, j)
			case len(left) == 0:
				done = append(done, j)
			default:
				m.mu.Lock()
				j.partitions = left
				j.inflight = false
				j.retried = true
				m.mu.Unlock()
				again = true
			}
		}
	}
	finished := map[*markerJob]bool{}
	for _, j := range append(done, fenced...) {
		finished[j] = true
	}
	m.mu.Lock()
	kept := m.jobs[:0]
	for _, j := range m.jobs {
		if !finished[j] {
			kept = append(kept, j)
		}
	}
	clear(m.jobs[len(kept):])
	m.jobs = kept
	m.submitting += len(done)
	m.mu.Unlock()
	completes := make([]markerJob, 0, len(done)+len(retryComplete))
	for _, j := range done {
		completes = append(completes, *j)
	}
	for _, j := range append(completes, retryComplete...) {
		m.c.rt.Submit(j.p, func(s *shard) runtime.Result {
			if s.epoch != j.coordinatorEpoch {
				return runtime.Result{}
			}
			return s.complete(j)
		}, func(_ any, err error) {
			if err == nil || errors.Is(err, ErrNotCoordinator) {
				// Written, or the next leader completes it from its log.
				m.mu.Lock()
				m.submitting--
				m.mu.Unlock()
				return
			}
			// The Complete record was not appended (not enough
			// replicas) or not durable in time: the transaction stays
			// prepared here, and its producer gets
			// CONCURRENT_TRANSACTIONS, until the Complete is written.
			// Its markers are written: retry the Complete alone (a
			// retry of one that became durable meanwhile writes
			// nothing).
			j.completeTries++
			level := slog.LevelDebug
			if j.completeTries == 1 {
				level = slog.LevelWarn
			}
			m.c.log.Log(context.Background(), level, "write the completion of a transaction; retrying",
				"transactional_id", j.id, "tries", j.completeTries, "err", err)
			m.mu.Lock()
			m.completes = append(m.completes, j)
			m.submitting--
			m.mu.Unlock()
			time.AfterFunc(m.c.opts.MarkerBackoff, m.poke)
		})
	}
	return again
}
