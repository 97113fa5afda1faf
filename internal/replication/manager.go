package replication

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// DirName is the partition's directory name, as Kafka names it.
func (tp TopicPartition) DirName() string { return tp.Topic + "-" + strconv.Itoa(int(tp.Partition)) }

// Options configure a Manager.
type Options struct {
	NodeID  int32
	DataDir string
	Static  *config.Broker
	Logger  *slog.Logger
	// Reserved directory names in DataDir that are not partition logs of
	// topics in the image (the metadata log).
	Reserved map[string]bool
	// Cleaner configures the log cleaner RunMaintenance runs; the zero
	// value takes its defaults (a pass every 15 s, unlimited I/O).
	Cleaner storage.CleanerConfig
}

// Manager hosts the partitions the image assigns to this broker.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex // serialises Apply and Close
	parts atomic.Pointer[map[TopicPartition]*Partition]
	// failed records partitions whose logs could not be opened (for
	// example corruption in flushed data); requests for them get a storage
	// error instead of silently empty data.
	failed atomic.Pointer[map[TopicPartition]error]
	closed bool
}

// NewManager returns an empty manager; subscribe Apply to the controller.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "partitions")}
	empty := map[TopicPartition]*Partition{}
	m.parts.Store(&empty)
	noFail := map[TopicPartition]error{}
	m.failed.Store(&noFail)
	return m
}

// ErrStorage is returned by Get for a partition whose log failed to open.
var ErrStorage = errors.New("partition log unavailable")

// Get returns a hosted partition.
func (m *Manager) Get(topic string, partition int32) (*Partition, error) {
	tp := TopicPartition{topic, partition}
	if p, ok := (*m.parts.Load())[tp]; ok {
		return p, nil
	}
	if err, ok := (*m.failed.Load())[tp]; ok {
		return nil, fmt.Errorf("%w: %s: %v", ErrStorage, tp.DirName(), err)
	}
	return nil, nil
}

// All returns every hosted partition.
func (m *Manager) All() []*Partition {
	ps := *m.parts.Load()
	out := make([]*Partition, 0, len(ps))
	for _, p := range ps {
		out = append(out, p)
	}
	return out
}

// TopicConfig resolves a topic's effective config from an image.
func (m *Manager) TopicConfig(img *metadata.Image, topic string) *config.Topic {
	t := config.ResolveTopicConfig(m.layers(img, topic))
	return &t
}

func (m *Manager) layers(img *metadata.Image, topic string) config.Layers {
	return config.Layers{
		Topic:          img.TopicConfig(topic),
		DynamicBroker:  img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker, Name: strconv.Itoa(int(m.opts.NodeID))}],
		DynamicDefault: img.Configs[metadata.ConfigResource{Type: metadata.ResourceBroker}],
		Static:         m.opts.Static,
	}
}

func storageConfig(t *config.Topic, static *config.Broker) storage.Config {
	c := storage.DefaultConfig()
	c.SegmentBytes = t.SegmentBytes
	c.SegmentMs = t.SegmentMs
	c.SegmentIndexBytes = t.SegmentIndexBytes
	c.IndexIntervalBytes = t.IndexIntervalBytes
	c.RetentionBytes = t.RetentionBytes
	c.RetentionMs = t.RetentionMs
	if !t.CleanupDelete {
		c.RetentionBytes, c.RetentionMs = -1, -1
	}
	c.FlushMessages = t.FlushMessages
	c.FlushMs = t.FlushMs
	c.LogAppendTime = t.LogAppendTime
	c.FileDeleteDelayMs = t.FileDeleteDelayMs
	if static != nil {
		c.ProducerIDExpiryMs = static.Int64("producer.id.expiration.ms")
	}
	c.Compact = t.CleanupCompact
	c.DeleteRetentionMs = t.DeleteRetentionMs
	c.MinCompactionLagMs = t.MinCompactionLagMs
	c.MaxCompactionLagMs = t.MaxCompactionLagMs
	c.MinCleanableDirtyRatio = t.MinCleanableDirtyRatio
	return c
}

// Apply brings hosted partitions in line with next: opens logs for new
// partitions led here, deletes logs of removed topics, and updates configs.
// It is a controller listener.
func (m *Manager) Apply(prev, next *metadata.Image) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	cur := *m.parts.Load()
	parts := maps.Clone(cur)
	failed := maps.Clone(*m.failed.Load())
	fsyncAlways := m.opts.Static != nil && m.opts.Static.FsyncAlways()
	configsChanged := !maps.EqualFunc(prev.Configs, next.Configs, maps.Equal)

	for tp, p := range cur {
		t := next.Topics[tp.Topic]
		switch {
		case t == nil || t.ID != p.TopicID || int(tp.Partition) >= len(t.Partitions):
			delete(parts, tp)
			p.wakeAll()
			if err := p.Log.Delete(); err != nil {
				m.log.Error("delete partition log", "partition", tp.DirName(), "err", err)
			} else {
				m.log.Info("deleted partition", "partition", tp.DirName())
			}
		case t.Partitions[tp.Partition].Leader != m.opts.NodeID:
			// Leadership moved (this broker was fenced, or a reassignment):
			// stop serving it, keep the data. Requests in flight on it
			// get ErrClosed, which clients see as NOT_LEADER_OR_FOLLOWER.
			delete(parts, tp)
			p.wakeAll()
			if err := p.Log.Close(); err != nil {
				m.log.Error("close partition log", "partition", tp.DirName(), "err", err)
			} else {
				m.log.Info("no longer leader; closed partition", "partition", tp.DirName(), "leader", t.Partitions[tp.Partition].Leader)
			}
		}
	}
	for tp := range failed {
		if next.Topics[tp.Topic] == nil {
			delete(failed, tp)
		}
	}
	for name, t := range next.Topics {
		var tcfg *config.Topic
		for i, pm := range t.Partitions {
			if pm.Leader != m.opts.NodeID {
				continue
			}
			tp := TopicPartition{name, int32(i)}
			if tcfg == nil {
				tcfg = m.TopicConfig(next, name)
			}
			if p, ok := parts[tp]; ok {
				p.leaderEpoch.Store(pm.LeaderEpoch)
				if configsChanged {
					p.cfg.Store(tcfg)
					p.Log.SetConfig(storageConfig(tcfg, m.opts.Static))
				}
				continue
			}
			if _, ok := failed[tp]; ok {
				continue
			}
			dir := filepath.Join(m.opts.DataDir, tp.DirName())
			if err := m.removeIfOtherTopic(dir, t.ID); err != nil {
				m.log.Error("remove stale partition log", "dir", dir, "err", err)
			}
			l, err := storage.Open(dir, storageConfig(tcfg, m.opts.Static), storage.Options{
				Logger:      m.opts.Logger.With("partition", tp.DirName()),
				FsyncAlways: fsyncAlways,
				TopicID:     t.ID,
			})
			if err != nil {
				m.log.Error("open partition log; the partition stays offline", "partition", tp.DirName(), "err", err)
				failed[tp] = err
				continue
			}
			parts[tp] = newPartition(name, t.ID, int32(i), l, fsyncAlways, pm.LeaderEpoch, tcfg)
		}
	}
	m.parts.Store(&parts)
	m.failed.Store(&failed)
}

// removeIfOtherTopic deletes dir when its partition.metadata names another
// topic id: a topic deleted and recreated under the same name while this
// broker was down.
func (m *Manager) removeIfOtherTopic(dir string, id metadata.UUID) error {
	f, err := os.Open(filepath.Join(dir, "partition.metadata"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(k) != "topic_id" {
			continue
		}
		var have metadata.UUID
		if err := have.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
		if have != id {
			m.log.Warn("removing log of an earlier topic with the same name", "dir", dir, "old_id", have, "new_id", id)
			return os.RemoveAll(dir)
		}
	}
	return sc.Err()
}

// RemoveStray deletes partition directories in the data dir that belong to
// no hosted partition and to no partition of img this broker is a replica
// of (topics deleted while this broker was down). Call it after the first
// Apply.
func (m *Manager) RemoveStray(img *metadata.Image) error {
	ents, err := os.ReadDir(m.opts.DataDir)
	if err != nil {
		return fmt.Errorf("read data dir: %w", err)
	}
	parts := *m.parts.Load()
	failed := *m.failed.Load()
	hosted := map[string]bool{}
	for tp := range parts {
		hosted[tp.DirName()] = true
	}
	for tp := range failed {
		hosted[tp.DirName()] = true
	}
	// A partition this broker is a replica of but does not lead right now
	// (fenced while it was down, leadership elsewhere) keeps its data.
	for name, t := range img.Topics {
		for i, p := range t.Partitions {
			if slices.Contains(p.Replicas, m.opts.NodeID) {
				hosted[TopicPartition{name, int32(i)}.DirName()] = true
			}
		}
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || m.opts.Reserved[name] || hosted[name] {
			continue
		}
		i := strings.LastIndexByte(name, '-')
		if i <= 0 {
			continue
		}
		if _, err := strconv.Atoi(name[i+1:]); err != nil && !strings.HasSuffix(name, "-delete") {
			continue
		}
		m.log.Info("removing log of a deleted topic", "dir", name)
		if err := os.RemoveAll(filepath.Join(m.opts.DataDir, name)); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return nil
}

// RunMaintenance enforces retention every retentionEvery and time-based
// flushes every second, and runs the log cleaner on compacted logs, until
// ctx is done.
func (m *Manager) RunMaintenance(ctx context.Context, retentionEvery time.Duration) {
	ccfg := m.opts.Cleaner
	if ccfg.Logger == nil {
		ccfg.Logger = m.log
	}
	cleaner := storage.NewCleaner(ccfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cleaner.Run(ctx, m.compactedLogs)
	}()
	defer wg.Wait()
	flush := time.NewTicker(time.Second)
	defer flush.Stop()
	retention := time.NewTicker(retentionEvery)
	defer retention.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			for _, p := range m.All() {
				if err := p.Log.MaybeFlush(); err != nil && !errors.Is(err, storage.ErrClosed) {
					m.log.Error("flush", "partition", p.Topic, "index", p.Index, "err", err)
				}
			}
		case <-retention.C:
			for _, p := range m.All() {
				if err := p.Log.EnforceRetention(); err != nil && !errors.Is(err, storage.ErrClosed) {
					m.log.Error("retention", "partition", p.Topic, "index", p.Index, "err", err)
				}
			}
		}
	}
}

// compactedLogs returns the hosted logs (the cleaner skips those without
// cleanup.policy=compact).
func (m *Manager) compactedLogs() []*storage.Log {
	ps := *m.parts.Load()
	out := make([]*storage.Log, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Log)
	}
	return out
}

// Close flushes and closes every log.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	var errs []error
	for tp, p := range *m.parts.Load() {
		p.wakeAll()
		if err := p.Log.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", tp.DirName(), err))
		}
	}
	empty := map[TopicPartition]*Partition{}
	m.parts.Store(&empty)
	return errors.Join(errs...)
}
