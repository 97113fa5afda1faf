package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/replication"
)

// groupTick is how often group timeouts (sessions, rebalances) are checked.
const groupTick = 100 * time.Millisecond

// startGroups creates __consumer_offsets if missing (compacted, with
// offsets.topic.num.partitions partitions) and builds the group
// coordinator. Every partition this node leads is marked loading; the
// replay happens in loadGroups once the server runs.
func (s *Server) startGroups(logger *slog.Logger) error {
	cfg := s.cfg
	if s.ctrl.Image().Topics[broker.OffsetsTopic] == nil {
		res := s.ctrl.CreateTopics([]controller.CreateTopic{{
			Name:              broker.OffsetsTopic,
			Partitions:        int32(cfg.Int64("offsets.topic.num.partitions")),
			ReplicationFactor: -1,
			Configs: map[string]*string{
				"cleanup.policy":   strPtr("compact"),
				"segment.bytes":    strPtr(cfg.String("offsets.topic.segment.bytes")),
				"compression.type": strPtr("producer"),
			},
			Internal: true,
		}}, false)
		if err := res[0].Err; err != nil {
			return fmt.Errorf("create %s: %w", broker.OffsetsTopic, err)
		}
	}
	t := s.ctrl.Image().Topics[broker.OffsetsTopic]
	ms := func(key string) time.Duration { return time.Duration(cfg.Int64(key)) * time.Millisecond }
	s.groups = group.New(group.Options{
		Logger:                logger,
		NumPartitions:         int32(len(t.Partitions)),
		InitialRebalanceDelay: ms("group.initial.rebalance.delay.ms"),
		MinSessionTimeout:     ms("group.min.session.timeout.ms"),
		MaxSessionTimeout:     ms("group.max.session.timeout.ms"),
		MaxMetadataBytes:      int(cfg.Int64("offset.metadata.max.bytes")),
		MaxGroupSize:          int(cfg.Int64("group.max.size")),
		OffsetsRetention:      time.Duration(cfg.Int64("offsets.retention.minutes")) * time.Minute,
	})
	for i := range t.Partitions {
		if p, _ := s.parts.Get(broker.OffsetsTopic, int32(i)); p != nil {
			s.groups.BeginLoad(int32(i), offsetsLog{p})
		}
	}
	return nil
}

// loadGroups replays every __consumer_offsets partition led here.
func (s *Server) loadGroups() {
	start := time.Now()
	t := s.ctrl.Image().Topics[broker.OffsetsTopic]
	for i := range t.Partitions {
		p, _ := s.parts.Get(broker.OffsetsTopic, int32(i))
		if p == nil {
			continue
		}
		if err := s.groups.Load(int32(i), offsetsLog{p}); err != nil {
			s.log.Error("load group partition; its groups stay unavailable", "partition", i, "err", err)
		}
	}
	s.log.Info("group coordinator loaded", "partitions", len(t.Partitions), "took", time.Since(start))
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
