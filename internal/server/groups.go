package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/replication"
)

// groupTick is how often group timeouts (sessions, rebalances) are checked.
const groupTick = 100 * time.Millisecond

// startGroups builds the group coordinator, which follows leadership of
// __consumer_offsets partitions (groupLoader). The topic itself is created
// on first use (ensureOffsetsTopic).
func (s *Server) startGroups(logger *slog.Logger) {
	cfg := s.cfg
	parts := int32(cfg.Int64("offsets.topic.num.partitions"))
	if t := s.ctrl.Image().Topics[broker.OffsetsTopic]; t != nil {
		parts = int32(len(t.Partitions))
	}
	ms := func(key string) time.Duration { return time.Duration(cfg.Int64(key)) * time.Millisecond }
	s.groups = group.New(group.Options{
		Logger:                logger,
		NumPartitions:         parts,
		InitialRebalanceDelay: ms("group.initial.rebalance.delay.ms"),
		MinSessionTimeout:     ms("group.min.session.timeout.ms"),
		MaxSessionTimeout:     ms("group.max.session.timeout.ms"),
		MaxMetadataBytes:      int(cfg.Int64("offset.metadata.max.bytes")),
		MaxGroupSize:          int(cfg.Int64("group.max.size")),
		OffsetsRetention:      time.Duration(cfg.Int64("offsets.retention.minutes")) * time.Minute,
	})
	s.groupLoads = &groupLoader{groups: s.groups, log: s.log, led: map[int32]*replication.Partition{}, queue: make(chan groupLoad, 1024)}
	s.ctrl.Subscribe(func(_, next *metadata.Image) { s.groupLoads.follow(next, s.parts) })
}

// groupLoader moves the group coordinator's partitions with leadership of
// __consumer_offsets: a partition this node comes to lead is marked loading
// at once and replayed by run, in order; one it stops leading is unloaded.
type groupLoader struct {
	groups *group.Coordinator
	log    *slog.Logger

	mu    sync.Mutex
	led   map[int32]*replication.Partition
	queue chan groupLoad
}

type groupLoad struct {
	partition int32
	p         *replication.Partition
}

// follow is a controller listener (run after the partition manager's).
func (g *groupLoader) follow(img *metadata.Image, parts *replication.Manager) {
	t := img.Topics[broker.OffsetsTopic]
	if t == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range int32(len(t.Partitions)) {
		p, _ := parts.Get(broker.OffsetsTopic, i)
		cur := g.led[i]
		if p == cur {
			continue
		}
		if cur != nil {
			g.groups.Unload(i)
			delete(g.led, i)
			g.log.Info("gave up group coordination", "partition", i)
		}
		if p != nil {
			g.led[i] = p
			g.groups.BeginLoad(i, offsetsLog{p})
			select {
			case g.queue <- groupLoad{i, p}:
			default:
				// Never expected (one entry per partition change); a
				// load dropped here would leave the partition loading.
				go func() { g.queue <- groupLoad{i, p} }()
			}
		}
	}
}

// run replays the partitions follow hands it until ctx ends.
func (g *groupLoader) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-g.queue:
			start := time.Now()
			if err := g.groups.Load(l.partition, offsetsLog{l.p}); err != nil {
				g.log.Error("load group partition; its groups stay unavailable", "partition", l.partition, "err", err)
				continue
			}
			g.log.Debug("loaded group partition", "partition", l.partition, "took", time.Since(start))
		}
	}
}

func strPtr(s string) *string { return &s }

// offsetsLog is a __consumer_offsets partition as the coordinator uses it.
type offsetsLog struct{ p *replication.Partition }

func (l offsetsLog) Append(batch []byte) error {
	res, err := l.p.Append(batch)
	if err != nil {
		return err
	}
	return l.p.Sync(res.LastOffset)
}

func (l offsetsLog) ForEachBatch(fn func(batch []byte) error) error {
	return l.p.Log.ForEachBatch(0, fn)
}
