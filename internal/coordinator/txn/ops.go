package txn

// The state transitions, as Kafka's TransactionCoordinator and
// TransactionMetadata make them. Each runs on the shard's goroutine and
// returns the record of the new state (the whole state of the id) and the
// answer; the runtime writes, replays and answers once durable.

import (
	"fmt"
	"math"

	"github.com/stratalog/strata/internal/coordinator/runtime"
)

func errResult(err error) runtime.Result { return runtime.Result{Err: err} }

// initProducerID: a new id gets a fresh producer id; an existing one gets
// its epoch bumped (fencing older producers), or a new producer id when
// the epoch is exhausted. An ongoing transaction is aborted first (with a
// bumped epoch, which fences its producer); the caller is told
// CONCURRENT_TRANSACTIONS and retries once the abort completed.
func (s *shard) initProducerID(id string, timeoutMs int32, expected *ProducerIDAndEpoch, newPID int64) runtime.Result {
	now := s.now()
	t := s.txns[id]
	if t == nil {
		if newPID < 0 {
			return errResult(errNeedProducerID)
		}
		t = &txn{id: id, producerID: newPID, prevProducerID: NoProducerID, nextProducerID: NoProducerID,
			epoch: NoProducerEpoch, lastEpoch: NoProducerEpoch, timeoutMs: timeoutMs, state: Empty,
			partitions: map[TopicPartition]bool{}, startMs: -1, updateMs: now}
		newPID = -1 // used
	}
	if expected != nil && !validExpected(t, *expected) {
		return errResult(fmt.Errorf("%w: producer %d epoch %d, the transactional id %q has producer %d epoch %d",
			ErrProducerFenced, expected.ProducerID, expected.Epoch, id, t.producerID, t.epoch))
	}
	switch t.state {
	case PrepareCommit, PrepareAbort:
		return errResult(fmt.Errorf("%w: %q is in %s", ErrConcurrentTransactions, id, t.state))
	case Ongoing:
		// Fence the producer and abort its transaction; never answered
		// with this epoch: the client retries and bumps again.
		n := t.clone()
		if t.epoch < math.MaxInt16 {
			n.epoch = t.epoch + 1
		}
		n.lastEpoch = NoProducerEpoch
		n.state = PrepareAbort
		n.updateMs = now
		res := s.write(n, nil, fmt.Errorf("%w: aborting the ongoing transaction of %q first", ErrConcurrentTransactions, id))
		job := s.job(n)
		res.AfterDurable = func() { s.c.sender.add(job) }
		s.c.log.Info("fencing the ongoing transaction of a new producer instance", "transactional_id", id, "producer_id", n.producerID, "epoch", n.epoch)
		return res
	case Empty, CompleteCommit, CompleteAbort:
	default:
		return errResult(fmt.Errorf("%w: %q is in %s", ErrConcurrentTransactions, id, t.state))
	}
	n := t.clone()
	if epochExhausted(t.epoch) && (expected == nil || expected.Epoch == t.epoch) {
		if newPID < 0 {
			return errResult(errNeedProducerID)
		}
		n.prevProducerID, n.producerID, n.epoch = t.producerID, newPID, 0
		n.lastEpoch = NoProducerEpoch
		if expected != nil {
			n.lastEpoch = t.epoch
		}
	} else {
		switch {
		case expected == nil:
			n.epoch, n.lastEpoch = t.epoch+1, NoProducerEpoch
		case t.epoch == NoProducerEpoch || expected.Epoch == t.epoch:
			n.epoch, n.lastEpoch = t.epoch+1, t.epoch
		case expected.Epoch == t.lastEpoch:
			// A retry of an InitProducerId that succeeded: the same answer.
			return runtime.Result{Value: ProducerIDAndEpoch{t.producerID, t.epoch}}
		default:
			return errResult(fmt.Errorf("%w: epoch %d, the transactional id %q is at %d", ErrProducerFenced, expected.Epoch, id, t.epoch))
		}
	}
	n.state = Empty
	n.timeoutMs = timeoutMs
	n.partitions = map[TopicPartition]bool{}
	n.startMs = -1
	n.updateMs = now
	n.nextProducerID = NoProducerID
	return s.write(n, ProducerIDAndEpoch{n.producerID, n.epoch}, nil)
}

// validExpected is Kafka's isValidProducerId (KIP-360): the id was just
// created, the producer id is the current one (the epoch is checked
// after), or it is the previous one with an exhausted epoch (a retry after
// a rotation whose answer was lost).
func validExpected(t *txn, e ProducerIDAndEpoch) bool {
	return t.epoch == NoProducerEpoch || e.ProducerID == t.producerID ||
		(e.ProducerID == t.prevProducerID && epochExhausted(e.Epoch))
}

func (s *shard) checkProducer(t *txn, id string, pid int64, epoch int16) error {
	switch {
	case t == nil:
		return fmt.Errorf("%w: no transactional id %q", ErrInvalidProducerIDMap, id)
	case t.producerID != pid:
		return fmt.Errorf("%w: %q has producer %d, not %d", ErrInvalidProducerIDMap, id, t.producerID, pid)
	case t.epoch != epoch:
		return fmt.Errorf("%w: %q is at epoch %d, not %d", ErrProducerFenced, id, t.epoch, epoch)
	}
	return nil
}

func (s *shard) addPartitions(id string, pid int64, epoch int16, parts []TopicPartition, tv int16) runtime.Result {
	t := s.txns[id]
	if err := s.checkProducer(t, id, pid, epoch); err != nil {
		return errResult(err)
	}
	if t.prepared() {
		return errResult(fmt.Errorf("%w: %q is in %s", ErrConcurrentTransactions, id, t.state))
	}
	if t.state == Ongoing {
		all := true
		for _, tp := range parts {
			all = all && t.partitions[tp]
		}
		if all {
			return runtime.Result{}
		}
	}
	now := s.now()
	n := t.clone()
	if !t.prepared() && t.state != Ongoing {
		n.startMs = now
		n.partitions = map[TopicPartition]bool{}
	}
	for _, tp := range parts {
		n.partitions[tp] = true
	}
	n.state = Ongoing
	n.updateMs = now
	if tv > n.clientTxnVersion {
		n.clientTxnVersion = tv
	}
	return s.write(n, nil, nil)
}

func (s *shard) verify(id string, pid int64, epoch int16, parts []TopicPartition) runtime.Result {
	t := s.txns[id]
	if err := s.checkProducer(t, id, pid, epoch); err != nil {
		return errResult(err)
	}
	if t.prepared() {
		return errResult(fmt.Errorf("%w: %q is in %s", ErrConcurrentTransactions, id, t.state))
	}
	errs := make([]error, len(parts))
	for i, tp := range parts {
		if t.state != Ongoing || !t.partitions[tp] {
			errs[i] = fmt.Errorf("%w: %s-%d is not in the transaction of %q", ErrTransactionAbortable, tp.Topic, tp.Partition, id)
		}
	}
	return runtime.Result{Value: errs}
}

func invalidTransition(id string, t *txn, commit bool) error {
	return fmt.Errorf("%w: %q is in %s, cannot %s", ErrInvalidTxnState, id, t.state, map[bool]string{true: "commit", false: "abort"}[commit])
}

// endTxnV1 is EndTxn for clients before KIP-890 part 2: the epoch stays.
func (s *shard) endTxnV1(id string, pid int64, epoch int16, commit bool) runtime.Result {
	t := s.txns[id]
	if err := s.checkProducer(t, id, pid, epoch); err != nil {
		return errResult(err)
	}
	ok := runtime.Result{Value: ProducerIDAndEpoch{NoProducerID, NoProducerEpoch}}
	switch t.state {
	case Ongoing:
		n := t.clone()
		n.state = map[bool]State{true: PrepareCommit, false: PrepareAbort}[commit]
		n.updateMs = s.now()
		// The markers carry the version of the EndTxn, as Kafka's: a
		// producer that ran transaction version 2 before (its partitions
		// added by Produce v12) and ends this one with EndTxn v4 has not
		// had its epoch bumped, and a version 2 marker at the producer's
		// epoch would be refused by every partition as a stale one.
		n.clientTxnVersion = 0
		return s.prepare(n, ok.Value)
	case CompleteCommit:
		if commit {
			return ok
		}
	case CompleteAbort:
		if !commit {
			return ok
		}
	case PrepareCommit:
		if commit {
			return errResult(fmt.Errorf("%w: %q is committing", ErrConcurrentTransactions, id))
		}
	case PrepareAbort:
		if !commit {
			return errResult(fmt.Errorf("%w: %q is aborting", ErrConcurrentTransactions, id))
		}
	}
	return errResult(invalidTransition(id, t, commit))
}

// endTxnV2 is EndTxn v5 (KIP-890 part 2): every commit or abort bumps the
// epoch, the markers carry the bumped epoch, and the answer is the id and
// epoch for the next transaction; a retry (the epoch one below) gets the
// same answer. An exhausted epoch rotates to a new producer id.
func (s *shard) endTxnV2(id string, pid int64, epoch int16, commit bool, newPID int64) runtime.Result {
	t := s.txns[id]
	if t == nil {
		return errResult(fmt.Errorf("%w: no transactional id %q", ErrInvalidProducerIDMap, id))
	}
	retryOnOverflow := t.prevProducerID == pid && epoch == math.MaxInt16-1 && t.epoch == 0
	retryOnBump := t.epoch == epoch+1
	var validEpoch bool
	switch t.state {
	case PrepareCommit, PrepareAbort:
		validEpoch = retryOnBump
	case CompleteCommit, CompleteAbort:
		validEpoch = retryOnBump || retryOnOverflow || epoch == t.epoch
	default:
		validEpoch = epoch == t.epoch
	}
	retry := retryOnBump || retryOnOverflow
	switch {
	case t.producerID != pid && !retryOnOverflow:
		return errResult(fmt.Errorf("%w: %q has producer %d, not %d", ErrInvalidProducerIDMap, id, t.producerID, pid))
	case !validEpoch:
		return errResult(fmt.Errorf("%w: %q is at epoch %d, not %d", ErrProducerFenced, id, t.epoch, epoch))
	}
	current := runtime.Result{Value: ProducerIDAndEpoch{t.producerID, t.epoch}}
	switch t.state {
	case Ongoing:
		return s.prepareV2(t, commit, false, newPID)
	case CompleteCommit:
		if commit && retry {
			return current
		}
		if !commit && !retry {
			return s.prepareV2(t, false, true, newPID)
		}
	case CompleteAbort:
		if !commit && retry {
			return current
		}
		if !commit {
			return s.prepareV2(t, false, true, newPID)
		}
	case PrepareCommit:
		if commit {
			return errResult(fmt.Errorf("%w: %q is committing", ErrConcurrentTransactions, id))
		}
	case PrepareAbort:
		if !commit {
			return errResult(fmt.Errorf("%w: %q is aborting", ErrConcurrentTransactions, id))
		}
	case Empty:
		if !commit {
			return s.prepareV2(t, false, true, newPID)
		}
	}
	return errResult(invalidTransition(id, t, commit))
}

func (s *shard) prepareV2(t *txn, commit, noPartitions bool, newPID int64) runtime.Result {
	n := t.clone()
	now := s.now()
	if epochExhausted(t.epoch) {
		if newPID < 0 {
			return errResult(errNeedProducerID)
		}
		n.nextProducerID = newPID
	}
	n.epoch, n.lastEpoch = t.epoch+1, t.epoch
	n.state = map[bool]State{true: PrepareCommit, false: PrepareAbort}[commit]
	if noPartitions {
		n.startMs = now
		n.partitions = map[TopicPartition]bool{}
	}
	n.updateMs = now
	n.clientTxnVersion = 2
	next := ProducerIDAndEpoch{n.producerID, n.epoch}
	if n.nextProducerID >= 0 {
		next = ProducerIDAndEpoch{n.nextProducerID, 0}
	}
	return s.prepare(n, next)
}

// prepare writes a PrepareCommit or PrepareAbort and starts its markers
// once it is durable.
func (s *shard) prepare(n *txn, answer any) runtime.Result {
	res := s.write(n, answer, nil)
	job := s.job(n)
	res.AfterDurable = func() { s.c.sender.add(job) }
	return res
}

// complete writes CompleteCommit or CompleteAbort once every marker of the
// prepared transaction (pid, epoch) is written. A stale job (the state
// moved on, which a reload can cause) writes nothing.
func (s *shard) complete(j markerJob) runtime.Result {
	t := s.txns[j.id]
	want := map[bool]State{true: PrepareCommit, false: PrepareAbort}[j.commit]
	if t == nil || t.producerID != j.pid || t.epoch != j.epoch || t.state != want {
		s.c.log.Debug("markers written for a transaction that moved on", "transactional_id", j.id, "producer_id", j.pid, "epoch", j.epoch)
		return runtime.Result{}
	}
	n := t.clone()
	n.state = map[bool]State{true: CompleteCommit, false: CompleteAbort}[j.commit]
	n.partitions = map[TopicPartition]bool{}
	n.updateMs = s.now()
	if n.nextProducerID >= 0 {
		// The epoch overflowed: the producer continues with the new id.
		// The last epoch stays the one the client last saw.
		n.prevProducerID, n.producerID, n.epoch = t.producerID, t.nextProducerID, 0
		n.nextProducerID = NoProducerID
	}
	return s.write(n, nil, nil)
}

// expire aborts the transactions past their timeout (fencing the producer
// with a bumped epoch, as Kafka's abortTimedOutTransactions does) and
// writes tombstones for ids idle past transactional.id.expiration.ms.
func (s *shard) expire() runtime.Result {
	now := s.now()
	var (
		recs []runtime.Record
		jobs []markerJob
	)
	for id, t := range s.txns {
		switch {
		case t.state == Ongoing && t.startMs+int64(t.timeoutMs) <= now:
			n := t.clone()
			if t.epoch < math.MaxInt16 {
				n.epoch = t.epoch + 1
			}
			n.lastEpoch = NoProducerEpoch
			n.state = PrepareAbort
			n.updateMs = now
			s.memos[id] = memo{n.lastEpoch, n.prevProducerID}
			recs = append(recs, txnRecord(n))
			jobs = append(jobs, s.job(n))
			s.c.log.Info("aborting a timed-out transaction", "transactional_id", id, "producer_id", t.producerID,
				"started", t.startMs, "timeout_ms", t.timeoutMs, "fencing_epoch", n.epoch)
		case t.completed() && t.updateMs+s.c.opts.IDExpiration.Milliseconds() <= now:
			recs = append(recs, tombstone(id))
			s.c.log.Info("expiring an idle transactional id", "transactional_id", id, "producer_id", t.producerID, "last_update", t.updateMs)
		}
	}
	if len(recs) == 0 {
		return runtime.Result{}
	}
	return runtime.Result{Records: recs, AfterDurable: func() { s.c.sender.add(jobs...) }}
}

// job is the marker work of a prepared transaction.
func (s *shard) job(t *txn) markerJob {
	return markerJob{p: s.p, coordinatorEpoch: s.epoch, id: t.id, pid: t.producerID, epoch: t.epoch,
		commit: t.state == PrepareCommit, tv: t.clientTxnVersion, partitions: t.sortedPartitions()}
}
