package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
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
	// Controller takes leaders' ISR changes; nil on a node whose
	// partitions all have one replica (tests).
	Controller Controller
	// Fetcher tunes followers' fetching; zero values take Kafka's defaults.
	Fetcher FetcherConfig
	// Quota is how the replication throttles measure their rate; zero
	// values take the static broker config (or Kafka's defaults).
	Quota QuotaConfig
	// LagMax is replica.lag.time.max.ms (default 30 s).
	LagMax time.Duration
	// Now is the clock of ISR decisions (time.Now if nil).
	Now func() time.Time
	// AfterApply, if set, is called after each delta is applied, on the
	// goroutine that published it (the metadata loader's), before
	// WaitApplied callers are told: the group coordinator follows
	// leadership of __consumer_offsets with it.
	AfterApply func(img *metadata.Image)
	// StorageIO, if set, is every log's storage.Options.IO (tests inject
	// storage faults through it).
	StorageIO *storage.FileIO
	// LogDir, if set, is told of every storage failure of a log in
	// DataDir (logdir.go): the heartbeat reports it offline.
	LogDir *LogDir
	// Journal, if set, is DataDir's shared journal (log.journal.enable,
	// storage/journal.go): produced batches go through it, each log
	// opened replays what an earlier process journaled for it, and Close
	// closes it after the logs.
	Journal *storage.Journal
}

// Manager hosts the replicas the image assigns to this broker. It is a
// metadata loader publisher (internal/metadata/loader): each delta arrives
// through Publish on the loader's goroutine, and only the partitions its
// LocalChanges name are touched, so opening or recovering a log, or
// truncating a follower, never holds up the quorum.
type Manager struct {
	opts Options
	log  *slog.Logger
	env  *env

	mu    sync.Mutex // serialises apply, RemoveStray and Close
	parts atomic.Pointer[map[TopicPartition]*Partition]
	// byTopic indexes parts by topic, then partition: Get's lookup, per
	// produced or fetched partition, touches a map of topics (small and
	// cached) instead of one entry in a map of every partition.
	byTopic atomic.Pointer[map[string][]*Partition]
	// failed records partitions whose logs could not be opened (for
	// example corruption in flushed data); requests for them get a storage
	// error instead of silently empty data.
	failed   atomic.Pointer[map[TopicPartition]error]
	fetchers map[int32]*fetcher // by leader; mu held
	// fds is the descriptor cache every partition log shares
	// (log.fd.cache.size; nil: none).
	fds *storage.FDCache
	// scanBufs lends the logs opened at once their scan buffers.
	scanBufs *storage.ScanBuffers
	// summary is the data dir's clean shutdown summary: read at start,
	// each log's entry standing for its marker; written by Close.
	summary    *storage.DirSummary
	summaryErr error           // the summary could be neither used nor removed: no log opens
	applied    *metadata.Image // the last image applied; mu held
	// settled is the offset of the last image applied and handed to
	// AfterApply; appliedCh is closed and replaced when it moves. mu held.
	settled   int64
	appliedCh chan struct{}
	closed    bool

	// hwStart is the data dir's high watermark checkpoint as read at
	// start (hwcheckpoint.go); hwWritten what checkpointHWs last wrote,
	// under hwMu.
	hwStart   map[TopicPartition]int64
	hwMu      sync.Mutex
	hwWritten map[TopicPartition]int64
}

// NewManager returns an empty manager: register it with the metadata
// loader (it then applies the image from the start).
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LagMax <= 0 {
		opts.LagMax = 30 * time.Second
	}
	opts.Fetcher = opts.Fetcher.withDefaults()
	if opts.Static != nil {
		if opts.Quota.Windows <= 0 {
			opts.Quota.Windows = int(opts.Static.Int64("replication.quota.window.num"))
		}
		if opts.Quota.WindowSize <= 0 {
			opts.Quota.WindowSize = time.Duration(opts.Static.Int64("replication.quota.window.size.seconds")) * time.Second
		}
	}
	opts.Quota = opts.Quota.withDefaults()
	m := &Manager{opts: opts, log: opts.Logger.With("component", "partitions"),
		fetchers: map[int32]*fetcher{}, applied: metadata.Empty(), settled: -1, appliedCh: make(chan struct{})}
	m.env = &env{nodeID: opts.NodeID, fsyncAlways: opts.Static != nil && opts.Static.FsyncAlways(),
		now: opts.Now, lagMax: opts.LagMax, ctrl: opts.Controller, logger: m.log, spawn: func(f func()) { go f() },
		leaderQuota: newQuota(opts.Quota, opts.Now), followerQuota: newQuota(opts.Quota, opts.Now), logDir: opts.LogDir,
		journal: opts.Journal}
	if opts.Static != nil {
		n := opts.Static.Int64("log.fd.cache.size")
		if n < 0 {
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				m.log.Warn("log.fd.cache.size=-1: cannot read the open-file limit, using 4096", "err", err)
				n = 4096
			} else {
				n = int64(storage.AutoFDCacheSize(lim.Cur))
				m.log.Debug("descriptor cache sized from the open-file limit", "log.fd.cache.size", n, "nofile", lim.Cur)
			}
		}
		if n > 0 {
			m.fds = storage.NewFDCache(int(n), m.log)
		}
	}
	m.scanBufs = storage.NewScanBuffers(openWorkers)
	m.hwStart = map[TopicPartition]int64{}
	if opts.DataDir != "" {
		m.summary, m.summaryErr = storage.OpenDirSummary(opts.DataDir, opts.StorageIO, m.log, opts.Journal)
		if m.summaryErr != nil {
			m.log.Error("no partition can open: the data dir's clean shutdown summary can be neither used nor removed", "err", m.summaryErr)
		}
		hws, err := readHWCheckpoint(opts.DataDir)
		if err != nil {
			m.log.Warn("ignoring the data dir's unreadable high watermark checkpoint; each log reads its own", "err", err)
		} else {
			m.hwStart = hws
		}
	}
	m.storeParts(map[TopicPartition]*Partition{})
	noFail := map[TopicPartition]error{}
	m.failed.Store(&noFail)
	return m
}

// Publish applies a metadata delta (the manager is a loader publisher):
// the replicas its LocalChanges name are deleted, opened, led or
// followed; configs and broker addresses follow. Then the AfterApply hook
// runs and WaitApplied callers are told. A delta that does not start at
// the image last applied is taken as the full difference from it; one
// older than that image is ignored.
func (m *Manager) Publish(d *loader.Delta) {
	m.mu.Lock()
	if m.closed || d.Image.Offset < m.applied.Offset || d.Image == m.applied {
		m.mu.Unlock()
		return
	}
	if d.Prev != m.applied {
		d = loader.Diff(m.applied, d.Image)
	}
	m.applyLocked(d)
	m.mu.Unlock()
	m.afterApply(d)
}

// WaitApplied waits until the manager has applied an image at offset or
// later (so this broker serves what a metadata write it just made
// created), or timeout passes; it reports whether it has.
func (m *Manager) WaitApplied(offset int64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		m.mu.Lock()
		ch := m.appliedCh
		done := m.settled >= offset || m.closed
		m.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		}
	}
}

// afterApply runs the AfterApply hook, then tells WaitApplied callers.
func (m *Manager) afterApply(d *loader.Delta) {
	if m.opts.AfterApply != nil {
		m.opts.AfterApply(d.Image)
	}
	m.mu.Lock()
	m.settled = max(m.settled, d.Image.Offset)
	close(m.appliedCh)
	m.appliedCh = make(chan struct{})
	m.mu.Unlock()
}

// Get returns a hosted replica, leader or follower.
func (m *Manager) Get(topic string, partition int32) (*Partition, error) {
	if ps := (*m.byTopic.Load())[topic]; partition >= 0 && int(partition) < len(ps) && ps[partition] != nil {
		return ps[partition], nil
	}
	tp := TopicPartition{topic, partition}
	if err, ok := (*m.failed.Load())[tp]; ok {
		return nil, fmt.Errorf("%w: %s: %v", ErrStorage, tp.DirName(), err)
	}
	return nil, nil
}

// All returns every hosted replica.
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

// Apply brings hosted replicas from prev in line with next at once, on
// the caller's goroutine (tests; the server goes through the loader).
func (m *Manager) Apply(prev, next *metadata.Image) {
	m.Publish(loader.Diff(prev, next))
}

// applyLocked is ReplicaManager.applyDelta: the replicas d.LocalChanges
// names are deleted first, then opened if needed and made leader or
// follower of the partition's leader; configs that changed reach the
// hosted logs, and followers of a broker whose registration changed
// fetch from its new address. mu held.
func (m *Manager) applyLocked(d *loader.Delta) {
	next := d.Image
	m.applied = next
	cur := *m.parts.Load()
	parts := maps.Clone(cur)
	failed := maps.Clone(*m.failed.Load())
	node := m.opts.NodeID
	lc := d.LocalChanges(node)

	for _, r := range lc.Deletes {
		tp := TopicPartition{r.Topic, r.Partition}
		delete(failed, tp)
		p, ok := parts[tp]
		if !ok || p.TopicID != r.TopicID {
			continue
		}
		delete(parts, tp)
		m.unfollow(tp)
		p.becomeFollower(state{leader: -1, leaderEpoch: p.LeaderEpoch() + 1})
		if err := p.log.Delete(); err != nil {
			m.log.Error("delete partition log", "partition", tp.DirName(), "err", err)
		} else {
			m.log.Info("deleted replica", "partition", tp.DirName())
		}
	}

	// Configs: a broker-level change reaches every hosted log, a topic's
	// the logs of that topic.
	var allConfigs bool
	topicConfigs := map[string]bool{}
	for _, r := range d.Configs() {
		if r.Type == metadata.ResourceTopic {
			topicConfigs[r.Name] = true
		} else {
			allConfigs = true
		}
	}
	if allConfigs {
		m.applyThrottleRates(next)
	}
	tcfgs := map[string]*config.Topic{}
	topicConfig := func(name string) *config.Topic {
		c, ok := tcfgs[name]
		if !ok {
			c = m.TopicConfig(next, name)
			tcfgs[name] = c
		}
		return c
	}
	if allConfigs || len(topicConfigs) > 0 {
		for tp, p := range parts {
			if allConfigs || topicConfigs[tp.Topic] {
				tcfg := topicConfig(tp.Topic)
				p.cfg.Store(tcfg)
				p.log.SetConfig(storageConfig(tcfg, m.opts.Static))
			}
		}
	}

	// One INFO line per delta sums up what this node leads and follows
	// (a first start leads every partition of __consumer_offsets at once);
	// each partition's line is DEBUG, but for a leader change of a
	// partition that was hosted already.
	opened := m.openAll(parts, failed, [][]loader.LocalReplica{lc.Leaders, lc.Followers}, topicConfig)
	var sum applySummary
	for _, set := range [][]loader.LocalReplica{lc.Leaders, lc.Followers} {
		for _, r := range set {
			tp := TopicPartition{r.Topic, r.Partition}
			if _, ok := failed[tp]; ok {
				continue
			}
			pm := r.Registration
			p, ok := parts[tp]
			if ok && p.TopicID != r.TopicID {
				// Only a topic deleted and created again under its name
				// (its deletion came first in Deletes); never expected.
				m.log.Error("hosted replica of another topic id", "partition", tp.DirName(), "hosted", p.TopicID, "image", r.TopicID)
				continue
			}
			if !ok {
				o, found := opened[tp]
				if !found {
					continue // named twice in the delta: handled the first time
				}
				delete(opened, tp)
				if o.err != nil {
					m.log.Error("open partition log; the partition stays offline", "partition", tp.DirName(), "err", o.err)
					failed[tp] = o.err
					if isStorageError(o.err) {
						m.env.logDir.Fail("open", o.err, false)
					}
					continue
				}
				p = o.p
				parts[tp] = p
			}
			st := state{leader: pm.Leader, leaderEpoch: pm.LeaderEpoch, partitionEpoch: pm.PartitionEpoch,
				replicas: slices.Clone(pm.Replicas), isr: slices.Clone(pm.ISR)}
			if pm.Leader == node {
				m.unfollow(tp)
				if ok && !p.IsLeader() {
					m.log.Info("became leader", "partition", tp.DirName(), "leader_epoch", pm.LeaderEpoch, "previous_epoch", p.LeaderEpoch(), "isr", pm.ISR)
				}
				if !ok || !p.IsLeader() || p.LeaderEpoch() != pm.LeaderEpoch {
					sum.add(&sum.leaders, tp)
				}
				p.becomeLeader(st)
				continue
			}
			if ok && p.IsLeader() {
				m.log.Info("became follower", "partition", tp.DirName(), "leader", pm.Leader, "leader_epoch", pm.LeaderEpoch, "previous_epoch", p.LeaderEpoch(), "isr", pm.ISR)
			}
			if p.becomeFollower(st) || !ok {
				sum.add(&sum.followers, tp)
			}
			m.follow(next, tp, p, pm.Leader)
		}
	}
	if sum.leaders.n+sum.followers.n > 0 {
		m.log.Info(fmt.Sprintf("leading %d partitions, following %d", sum.leaders.n, sum.followers.n),
			"leading", sum.leaders.String(), "following", sum.followers.String(), "metadata_offset", next.Offset)
	}

	// Followers of a broker whose registration changed (a new address,
	// or a leader that had none) fetch from where it is now.
	if changed := d.Brokers(); len(changed) > 0 {
		moved := map[int32]bool{}
		for _, id := range changed {
			moved[id] = true
		}
		for tp, p := range parts {
			t := next.Topics[tp.Topic]
			if t == nil || int(tp.Partition) >= len(t.Partitions) {
				continue
			}
			if l := t.Partitions[tp.Partition].Leader; l != node && moved[l] {
				m.follow(next, tp, p, l)
			}
		}
	}
	for id, f := range m.fetchers {
		if f.empty() {
			f.stop()
			delete(m.fetchers, id)
		}
	}
	m.storeParts(parts)
	m.failed.Store(&failed)
}

// storeParts publishes the hosted replicas and their index by topic. mu
// held (or the manager not yet shared).
func (m *Manager) storeParts(parts map[TopicPartition]*Partition) {
	byTopic := make(map[string][]*Partition)
	for tp, p := range parts {
		ps := byTopic[tp.Topic]
		if int(tp.Partition) >= len(ps) {
			ps = append(ps, make([]*Partition, int(tp.Partition)+1-len(ps))...)
		}
		ps[tp.Partition] = p
		byTopic[tp.Topic] = ps
	}
	m.byTopic.Store(&byTopic)
	m.parts.Store(&parts)
}

// Replication throttle rates (KIP-73), dynamic broker configs.
const (
	leaderThrottleRateKey   = "leader.replication.throttled.rate"
	followerThrottleRateKey = "follower.replication.throttled.rate"
)

// applyThrottleRates sets the replication throttles from the image's
// dynamic broker configs (this broker's, then the cluster default), the
// static config, or unlimited. mu held.
func (m *Manager) applyThrottleRates(img *metadata.Image) {
	l := m.layers(img, "")
	for _, t := range []struct {
		key string
		q   *quota
	}{{leaderThrottleRateKey, m.env.leaderQuota}, {followerThrottleRateKey, m.env.followerQuota}} {
		v := config.ResolveBroker(t.key, strconv.FormatInt(math.MaxInt64, 10), l).Value
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			n = math.MaxInt64
		}
		if old := t.q.Limit(); old != n {
			m.log.Info("replication throttle rate", "key", t.key, "bytes_per_second", n, "was", old)
			t.q.setLimit(n)
		}
	}
}

// ThrottleRates are the leader's and the follower's replication throttle
// rates in bytes per second (math.MaxInt64: unlimited).
func (m *Manager) ThrottleRates() (leader, follower int64) {
	return m.env.leaderQuota.Limit(), m.env.followerQuota.Limit()
}

// coldReadBytes is log.cold.read.bytes (0 without a broker config).
func (m *Manager) coldReadBytes() int64 {
	if m.opts.Static == nil {
		return 0
	}
	return m.opts.Static.Int64("log.cold.read.bytes")
}

// openWorkers bounds the logs opened (and recovered) at once: opening is
// mostly waiting for the disk (reads, and fsyncs after a recovery), so a
// few at a time cut the time a start with thousands of partitions takes,
// as Kafka's num.recovery.threads.per.data.dir does.
const openWorkers = 16

type openResult struct {
	p   *Partition
	err error
}

// openAll opens, concurrently, the logs of the replicas in sets that are
// neither hosted (parts) nor failed. topicConfig is called on the
// caller's goroutine only. mu held.
func (m *Manager) openAll(parts map[TopicPartition]*Partition, failed map[TopicPartition]error,
	sets [][]loader.LocalReplica, topicConfig func(string) *config.Topic) map[TopicPartition]openResult {
	type job struct {
		tp   TopicPartition
		id   metadata.UUID
		tcfg *config.Topic
	}
	var jobs []job
	out := map[TopicPartition]openResult{}
	for _, set := range sets {
		for _, r := range set {
			tp := TopicPartition{r.Topic, r.Partition}
			if _, ok := parts[tp]; ok {
				continue
			}
			if _, ok := failed[tp]; ok {
				continue
			}
			if _, ok := out[tp]; ok {
				continue
			}
			out[tp] = openResult{}
			jobs = append(jobs, job{tp, r.TopicID, topicConfig(tp.Topic)})
		}
	}
	results := make([]openResult, len(jobs))
	parallel(len(jobs), func(i int) {
		j := jobs[i]
		p, err := m.open(j.tp, j.id, j.tcfg)
		results[i] = openResult{p, err}
	})
	m.syncRecovered(results)
	for i, j := range jobs {
		out[j.tp] = results[i]
	}
	return out
}

// syncRecovered makes durable what the logs just opened recovered
// (storage.Options.DeferRecoverySync) before they are used: with one
// syncfs of the data dir's file system for all of them (after a kill -9,
// thousands of logs; per-log fsyncs took most of such a restart), or, if
// that fails, each log's own fsyncs; a log whose fsyncs fail is closed
// and its partition stays offline. mu held.
func (m *Manager) syncRecovered(results []openResult) {
	var idx []int
	for i, r := range results {
		if r.err == nil && r.p.log.RecoveryUnsynced() {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	start := time.Now()
	err := storage.SyncFS(m.opts.DataDir)
	if err != nil {
		m.log.Warn("syncfs after recovering logs failed; fsyncing each log", "logs", len(idx), "err", err)
	}
	parallel(len(idx), func(k int) {
		r := &results[idx[k]]
		if err == nil {
			r.p.log.RecoverySynced()
			return
		}
		if e := r.p.log.SyncRecovered(); e != nil {
			if cerr := r.p.log.Close(); cerr != nil {
				m.log.Warn("close a log whose recovery could not be made durable", "dir", r.p.log.Dir(), "err", cerr)
			}
			*r = openResult{err: e}
		}
	})
	m.log.Info(fmt.Sprintf("made %d recovered logs durable", len(idx)), "syncfs", err == nil, "took", time.Since(start))
}

// parallel calls fn(0..n-1) on up to openWorkers goroutines and waits.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(openWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func (m *Manager) open(tp TopicPartition, id metadata.UUID, tcfg *config.Topic) (*Partition, error) {
	if m.summaryErr != nil {
		return nil, m.summaryErr
	}
	dir := filepath.Join(m.opts.DataDir, tp.DirName())
	hw, hwGiven := m.hwStart[tp]
	opts := storage.Options{
		Logger:      m.opts.Logger.With("partition", tp.DirName()),
		FsyncAlways: m.env.fsyncAlways,
		TopicID:     id,
		IO:          m.opts.StorageIO,
		// Cold reads drop what they passed (storage/coldread.go).
		ColdReadBytes: m.coldReadBytes(),
		Lazy:          true,
		FDCache:       m.fds,
		ScanBuffers:   m.scanBufs,
		// openAll makes recoveries durable, all at once (syncRecovered).
		DeferRecoverySync: true,
		// A cleanly shut down log is loaded by its first use.
		DeferLoad: true,
		Journal:   m.opts.Journal,
		Summary:   m.summary,
		// The data dir's checkpoint has it: the log's own file is not
		// read (hwcheckpoint.go). The log bounds it by its end offset, so
		// a new log (no directory yet) starts at 0 whatever it says.
		HighWatermark:      hw,
		HighWatermarkGiven: hwGiven,
	}
	l, err := storage.Open(dir, storageConfig(tcfg, m.opts.Static), opts)
	if errors.Is(err, storage.ErrInconsistentTopicID) {
		// A topic deleted and created again under the same name while
		// this broker was down: the directory holds the earlier one's
		// log (Open found its id in the clean shutdown marker or
		// partition.metadata, without changing anything).
		m.log.Warn("removing the log of an earlier topic with the same name", "dir", dir, "topic_id", id, "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("remove the log of an earlier topic in %s: %w", dir, err)
		}
		opts.HighWatermark, opts.HighWatermarkGiven = 0, true // the checkpoint's is the earlier topic's
		l, err = storage.Open(dir, storageConfig(tcfg, m.opts.Static), opts)
	}
	if err != nil {
		return nil, err
	}
	if m.opts.Journal != nil {
		// What an earlier process journaled and did not write to the
		// segment (a kill -9) goes in before the log serves anything.
		if _, err := m.opts.Journal.Replay(l); err != nil {
			if cerr := l.Close(); cerr != nil {
				m.log.Warn("close a log whose journal replay failed", "dir", dir, "err", cerr)
			}
			return nil, err
		}
	}
	return newPartition(m.env, tp.Topic, id, tp.Partition, l, tcfg), nil
}

// follow makes the fetcher of leader replicate tp (and no other fetcher);
// a partition without a leader, or whose leader has no known address, is
// not fetched. mu held.
func (m *Manager) follow(img *metadata.Image, tp TopicPartition, p *Partition, leader int32) {
	b := img.Brokers[leader]
	for id, f := range m.fetchers {
		if id != leader || b == nil {
			f.remove(tp)
		}
	}
	if leader < 0 || b == nil {
		return
	}
	addr := brokerAddr(b.Host, b.Port)
	f := m.fetchers[leader]
	if f == nil {
		f = newFetcher(m.opts.NodeID, leader, addr, m.opts.Fetcher, m.env.followerQuota, m.opts.Logger)
		m.fetchers[leader] = f
	} else {
		f.setAddr(addr)
	}
	f.add(tp, p)
}

// unfollow stops fetching tp; mu held.
func (m *Manager) unfollow(tp TopicPartition) {
	for _, f := range m.fetchers {
		f.remove(tp)
	}
}

// RemoveStray deletes partition directories in the data dir that belong to
// no hosted partition and to no partition of img this broker is a replica
// of (topics deleted while this broker was down). Call it after the first
// Apply.
func (m *Manager) RemoveStray(img *metadata.Image) error {
	m.mu.Lock()
	defer m.mu.Unlock()
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
	// A partition this broker is a replica of keeps its data, even if the
	// manager has not applied the image that has it yet.
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
	if m.opts.Journal != nil {
		// Frames an earlier process journaled for logs this broker no
		// longer hosts are never replayed: their files may go.
		m.opts.Journal.ForgetReplay(func(name string) bool { return hosted[name] })
	}
	return nil
}

// hwCheckpointEvery is how often high watermarks are checkpointed
// (Kafka's replica.high.watermark.checkpoint.interval.ms).
const hwCheckpointEvery = 5 * time.Second

// RunMaintenance, until ctx is done: enforces retention every
// retentionEvery, time-based flushes every second, ISR shrinking every half
// replica.lag.time.max.ms, high-watermark checkpoints every 5 s, and the
// log cleaner on compacted logs.
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
	isr := time.NewTicker(m.opts.LagMax / 2)
	defer isr.Stop()
	hw := time.NewTicker(hwCheckpointEvery)
	defer hw.Stop()
	each := func(what string, fn func(p *Partition) error) {
		for _, p := range m.All() {
			err := fn(p)
			switch {
			case err == nil || errors.Is(err, storage.ErrClosed):
			case errors.Is(err, ErrStorage):
				// The partition logged it when it went into error.
				m.log.Debug(what, "partition", p.Topic, "index", p.Index, "err", err)
			default:
				m.log.Error(what, "partition", p.Topic, "index", p.Index, "err", err)
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			each("flush", func(p *Partition) error { return p.noteMaintenance("flush", p.log.MaybeFlush()) })
		case <-retention.C:
			each("retention", func(p *Partition) error { return p.noteLog("retention", p.log.EnforceRetention(p.HighWatermark())) })
		case <-isr.C:
			each("isr", func(p *Partition) error { p.maybeShrinkISR(); return nil })
		case <-hw.C:
			if err := m.checkpointHWs(); err != nil {
				m.log.Warn("high watermark checkpoint", "dir", m.opts.DataDir, "err", err)
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
		out = append(out, p.log)
	}
	return out
}

// Close stops the fetchers (and applying deltas), checkpoints high watermarks,
// and flushes and closes every log.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for id, f := range m.fetchers {
		f.stop()
		delete(m.fetchers, id)
	}
	var led applySummary
	var tps []TopicPartition
	for tp, p := range *m.parts.Load() {
		if p.IsLeader() {
			led.add(&led.leaders, tp)
		}
		p.becomeFollower(state{leader: -1, leaderEpoch: p.LeaderEpoch()})
		tps = append(tps, tp)
	}
	// Every written log is flushed and gets an entry in the data dir's
	// clean shutdown summary, which stands for its marker. Not with fsyncs
	// per log (several each, tens of thousands with many partitions) but
	// with storage.CloseDeferSync: write everything unsynced, one syncfs,
	// then each log's finish (the recovery points that need writing, the
	// entries staged), another syncfs, then the summary, fsynced; a few
	// logs at a time (openWorkers).
	// The phases' durations go into the log line: at 100,000 partitions
	// a shutdown takes tens of seconds, and which part is what an
	// operator's grace period has to cover.
	now := m.opts.Now
	t0 := now()
	var tWrite, tSync1, tFinish, tSync2 time.Time
	parts := *m.parts.Load()
	errs := make([]error, len(tps)) // each partition's
	var other []error
	finish := make([]func() error, len(tps))
	if err := m.checkpointHWs(); err != nil {
		other = append(other, fmt.Errorf("checkpoint high watermarks: %w", err))
	}
	parallel(len(tps), func(i int) {
		tp := tps[i]
		p := parts[tp]
		var err error
		f, e := p.log.CloseDeferSync()
		if e != nil {
			err = errors.Join(err, fmt.Errorf("close %s: %w", tp.DirName(), e))
		}
		errs[i], finish[i] = err, f
	})
	tWrite = now()
	tSync1, tFinish, tSync2 = tWrite, tWrite, tWrite
	if len(tps) == 0 {
		// nothing to sync
	} else if err := storage.SyncFS(m.opts.DataDir); err != nil {
		// The previous summary stays: its entries of the logs written
		// since are void or do not match their active segments, so
		// those logs are recovered at the next start.
		other = append(other, fmt.Errorf("no clean shutdown summary written: %w", err))
	} else {
		tSync1 = now()
		parallel(len(tps), func(i int) {
			if finish[i] != nil {
				errs[i] = errors.Join(errs[i], finish[i]())
			}
		})
		tFinish = now()
		if err := storage.SyncFS(m.opts.DataDir); err != nil {
			other = append(other, fmt.Errorf("no clean shutdown summary written: %w", err))
		} else {
			tSync2 = now()
			if m.summary != nil {
				if err := m.summary.Commit(); err != nil {
					other = append(other, err)
				}
			}
		}
	}
	if m.summary != nil {
		// The file voids were written through, if no Commit closed it.
		if err := m.summary.Close(); err != nil {
			other = append(other, fmt.Errorf("close the clean shutdown summary: %w", err))
		}
	}
	if n := len(*m.parts.Load()); n > 0 {
		end := now()
		m.log.Info(fmt.Sprintf("closed %d partitions, %d of them led here", n, led.leaders.n), "led", led.leaders.String(),
			"took", end.Sub(t0).Round(time.Millisecond), "write", tWrite.Sub(t0).Round(time.Millisecond),
			"sync", tSync1.Sub(tWrite).Round(time.Millisecond), "finish", tFinish.Sub(tSync1).Round(time.Millisecond),
			"sync_finish", tSync2.Sub(tFinish).Round(time.Millisecond), "summary", end.Sub(tSync2).Round(time.Millisecond))
	}
	m.storeParts(map[TopicPartition]*Partition{})
	m.mu.Unlock()
	if m.opts.Journal != nil {
		// After the logs: their tails are written, and the journal is
		// left empty.
		if err := m.opts.Journal.Close(); err != nil {
			other = append(other, err)
		}
	}
	return closeErrors(other, errs)
}

// closeErrorsShown bounds the partitions whose errors Close reports.
const closeErrorsShown = 5

// closeErrors joins Close's errors: those of the manager and those of the
// first closeErrorsShown partitions that failed, then how many more
// failed. A full disk at the shutdown of 100,000 partitions otherwise
// made one error of some 10 MB, all of it the same cause; each partition
// not closed cleanly is recovered at the next start.
func closeErrors(other, parts []error) error {
	failed := other
	n := 0
	for _, err := range parts {
		if err == nil {
			continue
		}
		if n < closeErrorsShown {
			failed = append(failed, err)
		}
		n++
	}
	if n > closeErrorsShown {
		failed = append(failed, fmt.Errorf("and %d more partitions not closed cleanly (each is recovered at the next start)", n-closeErrorsShown))
	}
	return errors.Join(failed...)
}

// applySummary counts the replicas one delta made leader or follower,
// with the first few names, for one log line.
type applySummary struct{ leaders, followers nameSample }

// nameSample counts names and keeps the first few.
type nameSample struct {
	n     int
	names []string
}

const summaryNames = 5

func (applySummary) add(s *nameSample, tp TopicPartition) {
	s.n++
	if len(s.names) < summaryNames {
		s.names = append(s.names, tp.DirName())
	}
}

func (s nameSample) String() string {
	out := strings.Join(s.names, " ")
	if more := s.n - len(s.names); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}
