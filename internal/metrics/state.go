package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reads the broker's state at scrape time.
type stateCollector struct {
	parts   PartitionSource
	groups  GroupSource
	cluster ClusterSource
	health  Health
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var tp = []string{"topic", "partition"}

var (
	// Per partition (hosted replicas of this broker).
	dLogSize     = desc("strata_partition_log_size_bytes", "Size of the partition's log on this broker.", tp...)
	dLogStart    = desc("strata_partition_log_start_offset", "First offset of the partition's log on this broker.", tp...)
	dLogEnd      = desc("strata_partition_log_end_offset", "Offset the next record of the partition's log on this broker will get.", tp...)
	dHW          = desc("strata_partition_high_watermark", "High watermark of the partition as this replica knows it.", tp...)
	dIsLeader    = desc("strata_partition_leader", "1 if this broker leads the partition, else 0.", tp...)
	dReplicas    = desc("strata_partition_replicas", "Replicas of the partition.", tp...)
	dISR         = desc("strata_partition_in_sync_replicas", "In-sync replicas of the partition as this replica knows them.", tp...)
	dPBytesIn    = desc("strata_partition_bytes_in_total", "Bytes of produced batches appended to the partition as leader on this broker.", tp...)
	dPMsgsIn     = desc("strata_partition_messages_in_total", "Records produced to the partition as leader on this broker.", tp...)
	dPBytesOut   = desc("strata_partition_bytes_out_total", "Record bytes of the partition sent to consumers by this broker.", tp...)
	dPProduceErr = desc("strata_partition_produce_errors_total", "Produce attempts on the partition that failed (not leader, invalid records, too few in-sync replicas, storage errors...).", tp...)
	dPFetchErr   = desc("strata_partition_fetch_errors_total", "Fetches of the partition that failed (not leader, fenced epoch, offset out of range...).", tp...)

	// Broker totals.
	dBytesIn      = desc("strata_bytes_in_total", "Bytes of produced batches appended as leader.")
	dMsgsIn       = desc("strata_messages_in_total", "Records produced and appended as leader.")
	dBytesOut     = desc("strata_bytes_out_total", "Record bytes sent to consumers.")
	dReplBytesOut = desc("strata_replication_bytes_out_total", "Record bytes sent to follower replicas.")
	dProduceErr   = desc("strata_produce_errors_total", "Partition produce attempts that failed (per partition of a request).")
	dFetchErr     = desc("strata_fetch_errors_total", "Partition fetches that failed (per partition of a request).")
	dShrinks      = desc("strata_isr_shrinks_total", "ISR shrinks of partitions this broker leads, as accepted by the controller.")
	dExpands      = desc("strata_isr_expands_total", "ISR expansions of partitions this broker leads, as accepted by the controller.")
	dStorageErr   = desc("strata_storage_errors_total", "Appends and fsyncs of partition logs that failed with an I/O error.")
	dThrottle     = desc("strata_replication_throttle_rate_bytes", "Replication throttle rate (KIP-73) in bytes per second, 0 when unthrottled.", "role")

	// Partition counts.
	dHosted      = desc("strata_partitions", "Partition replicas hosted by this broker.")
	dLeaders     = desc("strata_partition_leaders", "Partitions this broker leads.")
	dUnderRepl   = desc("strata_partitions_under_replicated", "Partitions this broker leads with fewer in-sync replicas than replicas.")
	dUnderMin    = desc("strata_partitions_under_min_isr", "Partitions this broker leads with fewer in-sync replicas than min.insync.replicas.")
	dAtMin       = desc("strata_partitions_at_min_isr", "Partitions this broker leads with exactly min.insync.replicas in-sync replicas.")
	dOffline     = desc("strata_partitions_offline", "Partitions without a leader (reported by the active controller, 0 elsewhere).")
	dOfflineDirs = desc("strata_log_dirs_offline", "Log directories of this broker that are offline: a write in them failed, and no probe write has succeeded since (the controller moves leadership off their replicas).")
	dFailedLogs  = desc("strata_partitions_failed", "Hosted partitions whose logs could not be opened, or whose last write failed with an I/O error (a full disk, a failed fsync) and has not succeeded since.")

	// Controller and quorum.
	dActive   = desc("strata_controller_active", "1 on the active controller (the metadata quorum's leader), else 0.")
	dQLeader  = desc("strata_quorum_leader", "Node id of the metadata quorum's leader, -1 while unknown.")
	dQEpoch   = desc("strata_quorum_epoch", "Epoch (Raft term) of the metadata quorum (on voters).")
	dQCommit  = desc("strata_quorum_commit_index", "Highest metadata log index this node knows committed.")
	dQApplied = desc("strata_quorum_applied_index", "Highest metadata log index this node has applied.")
	dQLag     = desc("strata_quorum_apply_lag", "Committed metadata log entries this node has not applied yet.")
	dVoterLag = desc("strata_quorum_voter_lag", "On the quorum leader: entries each voter is behind the leader's log.", "voter")
	dBrokers  = desc("strata_brokers", "Registered brokers in the metadata image, by state.", "state")

	// Groups this broker coordinates.
	dGroups    = desc("strata_groups", "Consumer groups this broker coordinates, by state.", "state")
	dGState    = desc("strata_group_state", "1 for the group's current state.", "group", "type", "state")
	dGMembers  = desc("strata_group_members", "Members of the group.", "group")
	dGOffset   = desc("strata_group_committed_offset", "The group's committed offset of a partition.", "group", "topic", "partition")
	dGLag      = desc("strata_group_lag", "High watermark minus the group's committed offset, for partitions this broker hosts (kafka-exporter's consumergroup_lag; join strata_partition_high_watermark with strata_group_committed_offset for the rest).", "group", "topic", "partition")
	dReady     = desc("strata_ready", "1 when /readyz answers ready, else 0.")
	allStateDs = []*prometheus.Desc{dLogSize, dLogStart, dLogEnd, dHW, dIsLeader, dReplicas, dISR, dPBytesIn, dPMsgsIn, dPBytesOut,
		dPProduceErr, dPFetchErr, dBytesIn, dMsgsIn, dBytesOut, dReplBytesOut, dProduceErr, dFetchErr, dShrinks, dExpands,
		dStorageErr, dThrottle, dHosted, dLeaders, dUnderRepl, dUnderMin, dAtMin, dOffline, dFailedLogs, dOfflineDirs, dActive, dQLeader,
		dQEpoch, dQCommit, dQApplied, dQLag, dVoterLag, dBrokers, dGroups, dGState, dGMembers, dGOffset, dGLag, dReady}
)

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allStateDs {
		ch <- d
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v int64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type tpKey struct {
	topic     string
	partition int32
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	hw := map[tpKey]int64{}
	if c.parts != nil {
		var leaders, under, underMin, atMin int
		parts := c.parts.Partitions()
		for _, p := range parts {
			l := []string{p.Topic, strconv.Itoa(int(p.Partition))}
			hw[tpKey{p.Topic, p.Partition}] = p.HighWatermark
			gauge(ch, dLogSize, float64(p.SizeBytes), l...)
			gauge(ch, dLogStart, float64(p.LogStartOffset), l...)
			gauge(ch, dLogEnd, float64(p.LogEndOffset), l...)
			gauge(ch, dHW, float64(p.HighWatermark), l...)
			gauge(ch, dIsLeader, b2f(p.Leader), l...)
			gauge(ch, dReplicas, float64(p.Replicas), l...)
			gauge(ch, dISR, float64(p.ISR), l...)
			counter(ch, dPBytesIn, p.BytesIn, l...)
			counter(ch, dPMsgsIn, p.MessagesIn, l...)
			counter(ch, dPBytesOut, p.BytesOut, l...)
			counter(ch, dPProduceErr, p.ProduceErrors, l...)
			counter(ch, dPFetchErr, p.FetchErrors, l...)
			if !p.Leader {
				continue
			}
			leaders++
			if p.ISR < p.Replicas {
				under++
			}
			if p.ISR < p.MinISR {
				underMin++
			}
			if p.ISR == p.MinISR {
				atMin++
			}
		}
		gauge(ch, dHosted, float64(len(parts)))
		gauge(ch, dLeaders, float64(leaders))
		gauge(ch, dUnderRepl, float64(under))
		gauge(ch, dUnderMin, float64(underMin))
		gauge(ch, dAtMin, float64(atMin))
		t := c.parts.Totals()
		counter(ch, dBytesIn, t.BytesIn)
		counter(ch, dMsgsIn, t.MessagesIn)
		counter(ch, dBytesOut, t.BytesOut)
		counter(ch, dReplBytesOut, t.ReplicationBytesOut)
		counter(ch, dProduceErr, t.ProduceErrors)
		counter(ch, dFetchErr, t.FetchErrors)
		counter(ch, dShrinks, t.ISRShrinks)
		counter(ch, dExpands, t.ISRExpands)
		counter(ch, dStorageErr, t.StorageErrors)
		gauge(ch, dFailedLogs, float64(t.FailedPartitions))
		gauge(ch, dOfflineDirs, float64(t.OfflineLogDirs))
		gauge(ch, dThrottle, float64(t.LeaderThrottleRate), "leader")
		gauge(ch, dThrottle, float64(t.FollowerThrottleRate), "follower")
	}
	if c.cluster != nil {
		cl := c.cluster.Cluster()
		gauge(ch, dActive, b2f(cl.ActiveController))
		gauge(ch, dQLeader, float64(cl.QuorumLeader))
		if cl.QuorumEpoch >= 0 { // an observer does not learn the term
			gauge(ch, dQEpoch, float64(cl.QuorumEpoch))
		}
		gauge(ch, dQCommit, float64(cl.Commit))
		gauge(ch, dQApplied, float64(cl.Applied))
		gauge(ch, dQLag, float64(max(0, cl.Commit-cl.Applied)))
		for id, lag := range cl.VoterLag {
			gauge(ch, dVoterLag, float64(lag), strconv.Itoa(int(id)))
		}
		gauge(ch, dOffline, float64(cl.OfflinePartitions))
		gauge(ch, dBrokers, float64(cl.Brokers-cl.FencedBrokers), "active")
		gauge(ch, dBrokers, float64(cl.FencedBrokers), "fenced")
	}
	if c.groups != nil {
		byState := map[string]int{}
		for _, g := range c.groups.Groups() {
			byState[g.State]++
			gauge(ch, dGState, 1, g.Group, g.Type, g.State)
			gauge(ch, dGMembers, float64(g.Members), g.Group)
			for _, o := range g.Offsets {
				p := strconv.Itoa(int(o.Partition))
				gauge(ch, dGOffset, float64(o.Offset), g.Group, o.Topic, p)
				if h, ok := hw[tpKey{o.Topic, o.Partition}]; ok {
					gauge(ch, dGLag, float64(max(0, h-o.Offset)), g.Group, o.Topic, p)
				}
			}
		}
		for state, n := range byState {
			gauge(ch, dGroups, float64(n), state)
		}
	}
	if c.health != nil {
		ok, _ := c.health.Ready()
		gauge(ch, dReady, b2f(ok))
	}
}
