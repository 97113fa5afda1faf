package replication

import (
	"errors"
	"fmt"

	"github.com/stratalog/strata/internal/storage"
)

// Storage faults, per partition (Kafka's log directory failure, narrowed to
// one partition). A write of the log that fails with an I/O error
// (storage.ErrIO: a full disk, a failed fsync) puts the partition in
// error: the request gets ErrStorage (KAFKA_STORAGE_ERROR, which clients
// retry), the failure is counted (strata_storage_errors_total) and logged
// at ERROR once, with the directory and the cause, not once per request;
// while in error the partition counts in strata_partitions_failed. The
// broker keeps serving its other partitions, and reads of this one. The
// next append that succeeds clears the state and logs "recovered" at INFO:
// a write that failed was cut back to the last whole batch, so once the
// disk has room again, producers' retries succeed and nothing acknowledged
// is lost. A failed fsync fails the log for good (storage.ErrIO explains
// why), so such a partition stays in error until the broker restarts and
// recovers the log. A partition nobody writes to also leaves the state
// when the periodic write that put it there (a checkpoint) succeeds.

// noteLog takes the outcome of a write to the log by op (append, fsync,
// checkpoint...). An I/O error puts the partition in error and comes back
// wrapped in ErrStorage; other errors (a verdict on the data) come back as
// they are. A success does not clear the state: only an append does
// (logWritten), as a checkpoint may fit where a batch does not.
func (p *Partition) noteLog(op string, err error) error {
	if err == nil || !isStorageError(err) {
		return err
	}
	p.env.stats.storageErrors.Add(1)
	p.env.logDir.Fail(op, err, p.log.Failed() != nil)
	p.ioMu.Lock()
	first := p.ioErr == nil
	switch {
	case first:
		p.ioOp = op
	case p.ioOp != op:
		p.ioOp = severalOps // only an append clears it now
	}
	p.ioErr = err
	p.ioFailed.Store(true)
	p.ioMu.Unlock()
	if first {
		recovers := "on the next write that succeeds"
		if p.log.Failed() != nil {
			recovers = "after a restart (the log failed: see storage.ErrIO)"
		}
		p.logger.Error("partition storage failed; writes answer KAFKA_STORAGE_ERROR", "op", op, "dir", p.log.Dir(), "recovers", recovers, "err", err)
	}
	return fmt.Errorf("%w: %s-%d: %s: %w", ErrStorage, p.Topic, p.Index, op, err)
}

// severalOps is the operation of an error state that more than one kind of
// write failed in.
const severalOps = "several operations"

// logWritten clears the error state after an append succeeded.
func (p *Partition) logWritten() { p.clearIOError("") }

// noteMaintenance is noteLog for the periodic writes of a partition
// (checkpoints, flushes): one that succeeds clears an error state that
// only the same operation caused, so that a partition nobody produces to
// does not stay failed after space returns, while a partition whose
// appends failed waits for an append.
func (p *Partition) noteMaintenance(op string, err error) error {
	if err != nil {
		return p.noteLog(op, err)
	}
	p.clearIOError(op)
	return nil
}

// clearIOError leaves the error state, if the partition is in one caused
// by op (any op if op is empty), and says so.
func (p *Partition) clearIOError(op string) {
	if !p.ioFailed.Load() {
		return
	}
	if op != "" && p.log.Failed() != nil {
		return // a no-op success of a failed log says nothing
	}
	p.ioMu.Lock()
	was := p.ioErr
	if was == nil || (op != "" && p.ioOp != op) {
		p.ioMu.Unlock()
		return
	}
	p.ioErr, p.ioOp = nil, ""
	p.ioFailed.Store(false)
	p.ioMu.Unlock()
	if was != nil {
		p.logger.Info("partition storage recovered: a write succeeded", "dir", p.log.Dir(), "after", was)
	}
}

// StorageError is the I/O error the partition is in, or nil.
func (p *Partition) StorageError() error {
	if !p.ioFailed.Load() {
		return nil
	}
	p.ioMu.Lock()
	defer p.ioMu.Unlock()
	return p.ioErr
}

// StorageFailed returns the hosted partitions in storage error, with the
// error (see noteLog).
func (m *Manager) StorageFailed() map[TopicPartition]error {
	out := map[TopicPartition]error{}
	for _, p := range m.All() {
		if err := p.StorageError(); err != nil {
			out[TopicPartition{p.Topic, p.Index}] = err
		}
	}
	return out
}

// isStorageError tells an I/O failure of the log from a verdict on the
// data (a sequence error, a stale epoch...).
func isStorageError(err error) bool { return errors.Is(err, storage.ErrIO) }
