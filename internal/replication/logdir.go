package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

// The log directory's health, as the broker reports it to the controller
// (KIP-858: BrokerHeartbeat OfflineLogDirs; controller/logdirs.go moves
// leadership and ISR membership off the replicas of an offline one).
// Strata has one log directory per broker, the data dir, whose id is the
// directory.id of its meta.properties.
//
//   - Offline: a write to a partition log in it failed with an I/O error
//     the storage layer reports (storage.ErrIO: a segment write, ENOSPC
//     included, an fsync, a truncation, creating a segment, an index or
//     a log directory, a checkpoint write; see Partition.noteLog). A
//     verdict on the data (a sequence or epoch error) is not a failure.
//   - Online again: at least ProbeEvery after the last failure, a probe
//     write succeeds: LogDirProbeFile is created in the directory,
//     LogDirProbeSize bytes are written and fsynced, and it is removed.
//     Probes run when the broker heartbeats (every
//     broker.heartbeat.interval.ms), only while the directory is
//     offline. Kafka needs a restart; Strata's partitions recover in
//     place (faults.go), so the directory may too.
//   - Except after a failed fsync: the log that failed stays failed until
//     a restart recovers it (storage.ErrIO explains why), and so does the
//     directory, as in Kafka; no probe runs then.
//
// A directory whose failure was transient may be reported offline for one
// heartbeat and online at the next: leadership moves away once, and the
// replicas rejoin ISRs as they catch up.

// LogDirProbeFile is the file a probe writes in an offline log directory.
const LogDirProbeFile = ".strata-logdir-probe"

// LogDirProbeSize is how much a probe writes: more than one page, so that
// a directory with a few bytes free does not count as working.
const LogDirProbeSize = 64 << 10

// DefaultLogDirProbeEvery is the least time between a failure and the
// probe that may bring the directory back.
const DefaultLogDirProbeEvery = time.Second

// LogDirConfig configures a LogDir.
type LogDirConfig struct {
	ID   metadata.UUID
	Path string
	// ProbeEvery is the least time between a failure (or a failed probe)
	// and the next probe (DefaultLogDirProbeEvery if zero).
	ProbeEvery time.Duration
	Now        func() time.Time // time.Now if nil
	Logger     *slog.Logger
	// Probe replaces the probe write (tests); nil writes the file.
	Probe func() error
}

// LogDir tracks whether the broker's log directory works.
type LogDir struct {
	cfg LogDirConfig

	mu        sync.Mutex
	offline   bool
	permanent bool // a log failed for good: offline until a restart
	cause     error
	op        string
	since     time.Time // first failure of this episode
	last      time.Time // last failure or failed probe
	failures  int64     // in this episode
	onOffline func()
}

// OnOffline sets f to run (on the failing goroutine, without locks held)
// whenever the directory goes offline: the broker heartbeats at once
// instead of at its next interval.
func (d *LogDir) OnOffline(f func()) {
	d.mu.Lock()
	d.onOffline = f
	d.mu.Unlock()
}

// NewLogDir returns the health of the log directory cfg names, online.
func NewLogDir(cfg LogDirConfig) *LogDir {
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = DefaultLogDirProbeEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &LogDir{cfg: cfg}
}

// ID is the directory's id.
func (d *LogDir) ID() metadata.UUID { return d.cfg.ID }

// Path is the directory.
func (d *LogDir) Path() string { return d.cfg.Path }

// Fail takes a storage failure of a log in the directory: op is what
// failed, permanent whether the log failed until a restart (a failed
// fsync). The first failure of an episode logs one ERROR.
func (d *LogDir) Fail(op string, err error, permanent bool) {
	if d == nil {
		return
	}
	d.mu.Lock()
	first := !d.offline
	now := d.cfg.Now()
	if first {
		d.offline, d.cause, d.op, d.since, d.failures = true, err, op, now, 0
	}
	d.failures++
	d.last = now
	becamePermanent := permanent && !d.permanent
	d.permanent = d.permanent || permanent
	notify := d.onOffline
	d.mu.Unlock()
	if first && notify != nil {
		defer notify()
	}
	switch {
	case first:
		recovers := "when a probe write succeeds"
		if permanent {
			recovers = "after a restart (a log failed for good)"
		}
		d.cfg.Logger.Error("log directory offline: the controller moves leadership and ISR membership off its replicas",
			"dir", d.cfg.Path, "dir_id", d.cfg.ID, "op", op, "recovers", recovers, "err", err)
	case becamePermanent:
		d.cfg.Logger.Error("log directory stays offline until a restart: a log in it failed for good", "dir", d.cfg.Path, "op", op, "err", err)
	}
}

// Offline returns the directory's id if it is offline, else nil: what
// the heartbeat reports. While offline and a probe is due, it probes
// first; a probe that succeeds brings the directory online.
func (d *LogDir) Offline() []metadata.UUID {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	due := d.offline && !d.permanent && d.cfg.Now().Sub(d.last) >= d.cfg.ProbeEvery
	d.mu.Unlock()
	if due {
		d.tryProbe()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.offline {
		return nil
	}
	return []metadata.UUID{d.cfg.ID}
}

// IsOffline reports whether the directory is offline, without probing.
func (d *LogDir) IsOffline() bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.offline
}

// Cause is the failure that took the directory offline (nil if online).
func (d *LogDir) Cause() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.offline {
		return nil
	}
	return d.cause
}

func (d *LogDir) tryProbe() {
	probe := d.cfg.Probe
	if probe == nil {
		probe = d.probeWrite
	}
	started := d.cfg.Now()
	err := probe()
	d.mu.Lock()
	if !d.offline || d.permanent {
		d.mu.Unlock()
		return
	}
	if err != nil {
		d.last = d.cfg.Now()
		d.mu.Unlock()
		d.cfg.Logger.Debug("log directory probe failed; it stays offline", "dir", d.cfg.Path, "err", err)
		return
	}
	if d.last.After(started) {
		d.mu.Unlock()
		return // a log failed while the probe ran: that says more
	}
	was, since, n := d.cause, d.since, d.failures
	d.offline, d.cause, d.op, d.failures = false, nil, "", 0
	d.mu.Unlock()
	d.cfg.Logger.Info("log directory online again: a probe write succeeded; its replicas rejoin ISRs as they catch up",
		"dir", d.cfg.Path, "dir_id", d.cfg.ID, "offline_for", d.cfg.Now().Sub(since).Round(time.Millisecond), "failures", n, "after", was)
}

// probeWrite writes, fsyncs and removes LogDirProbeFile.
func (d *LogDir) probeWrite() (err error) {
	path := filepath.Join(d.cfg.Path, LogDirProbeFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("log directory probe: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("log directory probe: close: %w", cerr)
		}
		if rerr := os.Remove(path); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = fmt.Errorf("log directory probe: remove: %w", rerr)
		}
	}()
	if _, err := f.Write(make([]byte, LogDirProbeSize)); err != nil {
		return fmt.Errorf("log directory probe: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("log directory probe: fsync: %w", err)
	}
	return nil
}
