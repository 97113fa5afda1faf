package config

import (
	"math"
	"strconv"
	"strings"
)

// Layers are the places a topic config value can come from, most specific
// first: the topic's own overrides, dynamic settings for this broker, dynamic
// cluster-wide defaults, then the static broker config and the built-in
// default.
type Layers struct {
	Topic          map[string]string
	DynamicBroker  map[string]string
	DynamicDefault map[string]string
	Static         *Broker
}

// Resolved is an effective value and where it came from.
type Resolved struct {
	Value  string
	Source Source
}

// ResolveTopic returns the effective value of topic config key.
func ResolveTopic(d *Def, l Layers) Resolved {
	if v, ok := l.Topic[d.Name]; ok {
		return Resolved{v, SourceTopic}
	}
	if d.Synonym == "" {
		return Resolved{d.Default, SourceDefault}
	}
	return ResolveBroker(d.Synonym, d.Default, l)
}

// ResolveBroker returns the effective value of a broker key through the
// dynamic and static layers.
func ResolveBroker(key, def string, l Layers) Resolved {
	if v, ok := l.DynamicBroker[key]; ok {
		return Resolved{v, SourceDynamicBroker}
	}
	if v, ok := l.DynamicDefault[key]; ok {
		return Resolved{v, SourceDynamicDefaultBroker}
	}
	if l.Static != nil {
		if v, src := l.Static.Get(key); src == SourceStaticBroker {
			return Resolved{v, src}
		}
	}
	return Resolved{def, SourceDefault}
}

// Topic is a resolved, typed view of a topic's effective configuration.
type Topic struct {
	CleanupDelete, CleanupCompact bool
	CompressionType               string
	MaxMessageBytes               int32
	LogAppendTime                 bool
	TimestampBeforeMaxMs          int64
	TimestampAfterMaxMs           int64
	MinInsyncReplicas             int32
	UncleanLeaderElection         bool
	RetentionBytes                int64
	RetentionMs                   int64
	SegmentBytes                  int64
	SegmentIndexBytes             int32
	SegmentMs                     int64
	IndexIntervalBytes            int32
	FlushMessages                 int64
	FlushMs                       int64
	FileDeleteDelayMs             int64
	// Compaction (cleanup.policy=compact).
	DeleteRetentionMs      int64
	MinCompactionLagMs     int64
	MaxCompactionLagMs     int64
	MinCleanableDirtyRatio float64
	// Replication throttles (KIP-73).
	LeaderThrottledReplicas   ThrottledReplicas
	FollowerThrottledReplicas ThrottledReplicas
	Values                    map[string]Resolved
}

// ResolveTopicConfig resolves every topic config.
func ResolveTopicConfig(l Layers) Topic {
	t := Topic{Values: map[string]Resolved{}}
	for _, d := range TopicDefs() {
		t.Values[d.Name] = ResolveTopic(&d, l)
	}
	i64 := func(k string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(t.Values[k].Value), 10, 64)
		if err != nil {
			return math.MaxInt64
		}
		return n
	}
	for _, p := range strings.Split(t.Values["cleanup.policy"].Value, ",") {
		switch strings.TrimSpace(p) {
		case "delete":
			t.CleanupDelete = true
		case "compact":
			t.CleanupCompact = true
		}
	}
	t.CompressionType = t.Values["compression.type"].Value
	t.MaxMessageBytes = int32(i64("max.message.bytes"))
	t.LogAppendTime = t.Values["message.timestamp.type"].Value == "LogAppendTime"
	t.TimestampBeforeMaxMs = min(i64("message.timestamp.before.max.ms"), i64("message.timestamp.difference.max.ms"))
	t.TimestampAfterMaxMs = min(i64("message.timestamp.after.max.ms"), i64("message.timestamp.difference.max.ms"))
	t.MinInsyncReplicas = int32(i64("min.insync.replicas"))
	t.UncleanLeaderElection, _ = strconv.ParseBool(strings.TrimSpace(t.Values["unclean.leader.election.enable"].Value))
	t.RetentionBytes = i64("retention.bytes")
	t.RetentionMs = i64("retention.ms")
	t.SegmentBytes = i64("segment.bytes")
	t.SegmentIndexBytes = int32(i64("segment.index.bytes"))
	t.SegmentMs = i64("segment.ms")
	t.IndexIntervalBytes = int32(i64("index.interval.bytes"))
	t.FlushMessages = i64("flush.messages")
	t.FlushMs = i64("flush.ms")
	t.FileDeleteDelayMs = i64("file.delete.delay.ms")
	t.DeleteRetentionMs = i64("delete.retention.ms")
	t.MinCompactionLagMs = i64("min.compaction.lag.ms")
	t.MaxCompactionLagMs = i64("max.compaction.lag.ms")
	t.MinCleanableDirtyRatio, _ = strconv.ParseFloat(strings.TrimSpace(t.Values["min.cleanable.dirty.ratio"].Value), 64)
	t.LeaderThrottledReplicas, _ = ParseThrottledReplicas(t.Values["leader.replication.throttled.replicas"].Value)
	t.FollowerThrottledReplicas, _ = ParseThrottledReplicas(t.Values["follower.replication.throttled.replicas"].Value)
	return t
}
