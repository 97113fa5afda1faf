package server

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metrics"
	"github.com/stratalog/strata/internal/version"
)

// The node's HTTP listener (http.listen): metrics, health and pprof. It
// binds before anything else listens, so a probe sees "not ready" with a
// reason while the node recovers its logs and registers.

// startHTTP builds the metrics registry and, unless http.listen is empty,
// serves it. A port in use is fatal when http.listen was set, and a
// warning when it is the default (several nodes on one host).
func (s *Server) startHTTP() error {
	info := version.Get()
	s.metrics = metrics.New(metrics.BuildInfo{Version: info.Version, Commit: info.Commit, Date: info.Date, GoVersion: info.GoVersion})
	addr, src := s.cfg.Get("http.listen")
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if src == config.SourceDefault {
			s.log.Warn("http listener (metrics, health) not started: the default address is taken; set --http-listen", "addr", addr, "err", err)
			return nil
		}
		return fmt.Errorf("http listener on %s (--http-listen / http.listen): %w", addr, err)
	}
	s.http = metrics.Serve(ln, s.metrics.Handler(s.log), s.log)
	s.log.Info("http listener started", "addr", ln.Addr().String(), "endpoints", "/metrics /healthz /readyz /debug/pprof/")
	return nil
}

// HTTPAddr is the bound address of the HTTP listener, nil if it is off.
func (s *Server) HTTPAddr() net.Addr {
	if s.http == nil {
		return nil
	}
	return s.http.Addr()
}

// attachMetrics points the scrape-time collector at the node's parts.
func (s *Server) attachMetrics() {
	src := metrics.Sources{Cluster: clusterSource{s}, Health: s}
	if s.roles.broker {
		src.Partitions = partitionSource{s}
		src.Groups = groupSource{s}
	}
	s.metrics.Attach(src)
}

// Ready implements metrics.Health: the node is ready when its broker is
// registered and has caught up with the metadata log up to its
// registration (Kafka's RECOVERY to RUNNING), and every partition the
// image assigns to it has an open log. A controller-only node is ready
// when the quorum has a leader.
func (s *Server) Ready() (bool, string) {
	if s.stopping.Load() {
		return false, "shutting down"
	}
	if !s.roles.broker {
		if s.quorum == nil || s.quorum.Leader() == 0 {
			return false, "the metadata quorum has no leader"
		}
		return true, "ready"
	}
	if !s.life.IsReady() {
		return false, "not registered with the controller and caught up with the metadata log yet"
	}
	if failed := s.parts.Failed(); len(failed) > 0 {
		var errs []error
		for tp, err := range failed {
			errs = append(errs, fmt.Errorf("%s: %w", tp.DirName(), err))
		}
		return false, fmt.Sprintf("%d partition logs could not be opened: %v", len(failed), errors.Join(errs...))
	}
	node := s.cfg.NodeID()
	img := s.loader.Image()
	hosted, missing, example := 0, 0, ""
	for name, t := range img.Topics {
		for i, p := range t.Partitions {
			if !slices.Contains(p.Replicas, node) {
				continue
			}
			hosted++
			if part, err := s.parts.Get(name, int32(i)); part == nil && err == nil {
				missing++
				example = fmt.Sprintf("%s-%d", name, i)
			}
		}
	}
	if missing > 0 {
		return false, fmt.Sprintf("%d of %d hosted partitions not open yet (%s among them)", missing, hosted, example)
	}
	return true, "ready"
}

type partitionSource struct{ s *Server }

func (ps partitionSource) Partitions() []metrics.Partition {
	all := ps.s.parts.All()
	out := make([]metrics.Partition, 0, len(all))
	for _, p := range all {
		c := p.Counters()
		out = append(out, metrics.Partition{
			Topic: p.Topic, Partition: p.Index, Leader: p.IsLeader(),
			LogStartOffset: p.LogStartOffset(), LogEndOffset: p.LogEndOffset(), HighWatermark: p.HighWatermark(), SizeBytes: p.Size(),
			Replicas: len(p.Replicas()), ISR: len(p.ISR()), MinISR: int(p.Config().MinInsyncReplicas),
			BytesIn: c.BytesIn, MessagesIn: c.MessagesIn, BytesOut: c.BytesOut, ProduceErrors: c.ProduceFailures, FetchErrors: c.FetchFailures,
		})
	}
	return out
}

func (ps partitionSource) Totals() metrics.Totals {
	c := ps.s.parts.Counters()
	leader, follower := ps.s.parts.ThrottleRates()
	return metrics.Totals{BytesIn: c.BytesIn, MessagesIn: c.MessagesIn, BytesOut: c.BytesOut, ReplicationBytesOut: c.ReplicationBytesOut,
		ProduceErrors: c.ProduceFailures, FetchErrors: c.FetchFailures, ISRShrinks: c.ISRShrinks, ISRExpands: c.ISRExpands,
		StorageErrors: c.StorageErrors, FailedPartitions: len(ps.s.parts.Failed()) + len(ps.s.parts.StorageFailed()),
		OfflineLogDirs:     b2i(ps.s.logDir.IsOffline()),
		LeaderThrottleRate: leader, FollowerThrottleRate: follower}
}

type groupSource struct{ s *Server }

func (gs groupSource) Groups() []metrics.Group {
	stats := gs.s.groups.Stats()
	out := make([]metrics.Group, 0, len(stats))
	for _, g := range stats {
		mg := metrics.Group{Group: g.Group, Type: g.Type, State: g.State, Members: g.Members}
		for tp, off := range g.Offsets {
			mg.Offsets = append(mg.Offsets, metrics.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
		}
		out = append(out, mg)
	}
	return out
}

type clusterSource struct{ s *Server }

func (cs clusterSource) Cluster() metrics.Cluster {
	s := cs.s
	// A broker-only node has no controller: it is never the active one.
	c := metrics.Cluster{ActiveController: s.ctrl != nil && s.ctrl.IsActive(), QuorumLeader: -1, QuorumEpoch: -1}
	switch {
	case s.quorum != nil:
		st := s.quorum.Status()
		c.QuorumEpoch, c.Commit, c.Applied = int64(st.Term), int64(st.Commit), int64(st.Applied)
		if st.Leader != 0 {
			c.QuorumLeader = int32(st.Leader)
		}
		if len(st.Peers) > 0 {
			c.VoterLag = make(map[int32]int64, len(st.Peers))
			for id, p := range st.Peers {
				c.VoterLag[int32(id)] = int64(p.Lag)
			}
		}
	case s.observer != nil:
		st := s.observer.Status()
		c.Commit, c.Applied = int64(st.Commit), int64(st.Applied)
		if st.Leader != 0 {
			c.QuorumLeader = int32(st.Leader)
		}
	}
	img := s.loader.Image()
	for _, b := range img.Brokers {
		c.Brokers++
		if b.Fenced {
			c.FencedBrokers++
		}
	}
	if c.ActiveController {
		for _, t := range img.Topics {
			for _, p := range t.Partitions {
				if p.Leader < 0 {
					c.OfflinePartitions++
				}
			}
		}
	}
	return c
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
