package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
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
	if t := s.loader.Image().Topics[broker.OffsetsTopic]; t != nil {
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
	s.groupLoads = &groupLoader{groups: s.groups, log: s.log, led: map[int32]led{}, queue: make(chan groupLoad, 1024),
		commitTimeout: ms("offsets.commit.timeout.ms")}
}

// groupLoader moves the group coordinator's partitions with leadership of
// __consumer_offsets: a partition this node comes to lead is marked loading
// at once and replayed by run, in order; one it stops leading is unloaded.
type groupLoader struct {
	groups *group.Coordinator
	log    *slog.Logger

	// commitTimeout bounds how long a group write waits for the
	// __consumer_offsets ISR (offsets.commit.timeout.ms).
	commitTimeout time.Duration

	mu    sync.Mutex
	led   map[int32]led
	queue chan groupLoad
}

// led is a __consumer_offsets partition this node leads, in one epoch.
type led struct {
	p     *replication.Partition
	epoch int32
}

type groupLoad struct {
	partition int32
	log       offsetsLog
}

// follow runs after the partition manager applied img: partitions of
// __consumer_offsets this node now leads (in a new epoch) are loaded, the
// ones it stopped leading unloaded.
func (g *groupLoader) follow(img *metadata.Image, parts *replication.Manager) {
	t := img.Topics[broker.OffsetsTopic]
	if t == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range int32(len(t.Partitions)) {
		var now led
		if p, _ := parts.Get(broker.OffsetsTopic, i); p != nil && p.IsLeader() {
			now = led{p, p.LeaderEpoch()}
		}
		cur := g.led[i]
		if now == cur {
			continue
		}
		if cur.p != nil {
			g.groups.Unload(i)
			delete(g.led, i)
			g.log.Info("gave up group coordination", "partition", i)
		}
		if p := now.p; p != nil {
			g.led[i] = now
			log := offsetsLog{p, g.commitTimeout}
			g.groups.BeginLoad(i, log)
			select {
			case g.queue <- groupLoad{i, log}:
			default:
				// Never expected (one entry per partition change); a
				// load dropped here would leave the partition loading.
				go func() { g.queue <- groupLoad{i, log} }()
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
			if err := g.groups.Load(l.partition, l.log); err != nil {
				g.log.Error("load group partition; its groups stay unavailable", "partition", l.partition, "err", err)
				continue
			}
			g.log.Debug("loaded group partition", "partition", l.partition, "took", time.Since(start))
		}
	}
}

func strPtr(s string) *string { return &s }

// offsetsTopic is the request that creates __consumer_offsets.
func offsetsTopic(partitions int32, segmentBytes string) controller.CreateTopic {
	return controller.CreateTopic{
		Name:              broker.OffsetsTopic,
		Partitions:        partitions,
		ReplicationFactor: -1,
		Configs: map[string]*string{
			"cleanup.policy":   strPtr("compact"),
			"segment.bytes":    strPtr(segmentBytes),
			"compression.type": strPtr("producer"),
		},
		Internal: true,
	}
}

// offsetsLog is a __consumer_offsets partition as the coordinator uses it:
// a write returns once it is durable and in every in-sync replica (Kafka's
// coordinators write with acks=all).
type offsetsLog struct {
	p       *replication.Partition
	timeout time.Duration
}

func (l offsetsLog) Append(batch []byte) error {
	res, err := l.p.Append(batch)
	if err == nil {
		err = l.p.Sync(res.LastOffset)
	}
	if errors.Is(err, replication.ErrStorage) {
		return fmt.Errorf("%w: %w", group.ErrLogStorage, err)
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	return l.p.WaitReplicated(ctx, res.LastOffset)
}

func (l offsetsLog) ForEachBatch(fn func(batch []byte) error) error {
	return l.p.ForEachBatch(0, fn)
}
