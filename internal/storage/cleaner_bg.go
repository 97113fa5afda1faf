package storage

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// CleanerConfig configures a background Cleaner. Zero values take the
// defaults noted.
type CleanerConfig struct {
	Disabled         bool          // Run returns at once (log.cleaner.enable=false)
	Interval         time.Duration // between passes when nothing is eligible; default 15 s (Kafka's log.cleaner.backoff.ms)
	MaxMapEntries    int           // offset map cap per pass; default DefaultMaxMapEntries
	IOBytesPerSecond float64       // read+write limit shared by all logs; 0 is unlimited (Kafka's default)
	Logger           *slog.Logger
	Now              func() time.Time // clock; time.Now if nil
}

// Cleaner compacts logs in the background, one at a time, dirtiest first,
// with one reused offset map and one I/O throttle (bounded memory and I/O).
type Cleaner struct {
	cfg      CleanerConfig
	throttle *Throttle
	offsets  *offsetMap
	log      *slog.Logger
	mu       sync.Mutex // one pass at a time (the map is shared)
}

// NewCleaner returns a Cleaner; call Run or CleanDirtiest.
func NewCleaner(cfg CleanerConfig) *Cleaner {
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.MaxMapEntries <= 0 {
		cfg.MaxMapEntries = DefaultMaxMapEntries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cleaner{
		cfg:      cfg,
		throttle: NewThrottle(cfg.IOBytesPerSecond),
		offsets:  newOffsetMap(),
		log:      cfg.Logger.With("component", "cleaner"),
	}
}

// CleanDirtiest cleans the eligible compacted log with the highest dirty
// ratio. It returns that log (nil when none is eligible) and the pass's
// stats.
func (c *Cleaner) CleanDirtiest(logs []*Log) (*Log, CleanStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	var best *Log
	bestRatio := -1.0
	for _, l := range logs {
		if ratio, ok := l.cleanPriority(now.UnixMilli()); ok && ratio > bestRatio {
			best, bestRatio = l, ratio
		}
	}
	if best == nil {
		return nil, CleanStats{}, nil
	}
	st, err := best.Clean(now, CleanOptions{MaxMapEntries: c.cfg.MaxMapEntries, Throttle: c.throttle, offsets: c.offsets})
	if len(c.offsets.m) > 0 {
		// Do not pin the map's memory between passes.
		c.offsets = newOffsetMap()
	}
	return best, st, err
}

// Run cleans until ctx is done: after a pass it looks for the next eligible
// log at once, and waits Interval when there is none. logs returns the logs
// to consider (it is called once per pass).
func (c *Cleaner) Run(ctx context.Context, logs func() []*Log) {
	if c.cfg.Disabled {
		return
	}
	t := time.NewTimer(c.cfg.Interval)
	defer t.Stop()
	// Logs whose cleaning failed with an I/O error (a full disk): logged
	// at ERROR once, not every pass, until a pass over the log succeeds.
	ioFailed := map[*Log]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// At most one pass per log before waiting again, so a log that
		// stays eligible (a pass that keeps aborting) cannot spin.
		all := logs()
		for range all {
			if ctx.Err() != nil {
				return
			}
			l, st, err := c.CleanDirtiest(all)
			switch {
			case err == nil:
				if l != nil && ioFailed[l] {
					delete(ioFailed, l)
					c.log.Info("cleaning recovered", "dir", l.dir)
				}
			case errors.Is(err, ErrClosed):
			case errors.Is(err, ErrIO) && ioFailed[l]:
				c.log.Debug("cleaning failed", "dir", l.dir, "err", err)
			case errors.Is(err, ErrIO):
				ioFailed[l] = true
				c.log.Error("cleaning failed; retrying every pass", "dir", l.dir, "err", err)
			default:
				c.log.Error("cleaning failed", "dir", l.dir, "err", err)
			}
			for fl := range ioFailed {
				if fl.isClosed() {
					delete(ioFailed, fl) // deleted or moved away: forget it
				}
			}
			if l == nil || !st.Cleaned {
				break
			}
		}
		t.Reset(c.cfg.Interval)
	}
}

// Throttle limits a rate of bytes per second, like Kafka's cleaner
// Throttler: callers report bytes and sleep when they run ahead of the rate
// measured over windows of about a second. A nil *Throttle or a rate <= 0
// does not limit.
type Throttle struct {
	rate  float64
	now   func() time.Time
	sleep func(time.Duration)

	mu    sync.Mutex
	start time.Time
	bytes float64
}

// NewThrottle returns a throttle at bytesPerSecond (<= 0: unlimited).
func NewThrottle(bytesPerSecond float64) *Throttle {
	return &Throttle{rate: bytesPerSecond, now: time.Now, sleep: time.Sleep}
}

// Wait accounts n bytes and sleeps as long as needed to stay at the rate.
func (t *Throttle) Wait(n int) {
	if t == nil || t.rate <= 0 {
		return
	}
	t.mu.Lock()
	now := t.now()
	if t.start.IsZero() || now.Sub(t.start) > time.Second {
		t.start, t.bytes = now, 0
	}
	t.bytes += float64(n)
	wait := time.Duration(t.bytes/t.rate*float64(time.Second)) - now.Sub(t.start)
	t.mu.Unlock()
	if wait > 0 {
		t.sleep(wait)
	}
}
