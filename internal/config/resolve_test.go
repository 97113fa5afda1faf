package config

import (
	"math"
	"testing"
)

func TestResolveLayers(t *testing.T) {
	static, err := LoadBroker("", nil, map[string]string{"log.retention.ms": "400"})
	if err != nil {
		t.Fatal(err)
	}
	unset, err := LoadBroker("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	topicM := map[string]string{"retention.ms": "100"}
	brokerM := map[string]string{"log.retention.ms": "200"}
	defaultM := map[string]string{"log.retention.ms": "300"}
	tests := []struct {
		name string
		l    Layers
		want Resolved
	}{
		{"all layers: topic wins", Layers{topicM, brokerM, defaultM, static}, Resolved{"100", SourceTopic}},
		{"dynamic broker over default", Layers{nil, brokerM, defaultM, static}, Resolved{"200", SourceDynamicBroker}},
		{"dynamic default over static", Layers{nil, nil, defaultM, static}, Resolved{"300", SourceDynamicDefaultBroker}},
		{"static", Layers{nil, nil, nil, static}, Resolved{"400", SourceStaticBroker}},
		{"static not set falls to default", Layers{nil, nil, nil, unset}, Resolved{"604800000", SourceDefault}},
		{"no static", Layers{}, Resolved{"604800000", SourceDefault}},
		{"other keys ignored", Layers{Topic: map[string]string{"segment.ms": "1"}, DynamicBroker: map[string]string{"retention.ms": "1"}}, Resolved{"604800000", SourceDefault}},
		{"empty value still counts", Layers{Topic: map[string]string{"retention.ms": ""}}, Resolved{"", SourceTopic}},
	}
	d, _ := NewRegistry(TopicDefs()).Lookup("retention.ms")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ResolveTopic(d, tc.l); got != tc.want {
				t.Fatalf("ResolveTopic = %+v, want %+v", got, tc.want)
			}
			// ResolveBroker skips the topic layer.
			want := tc.want
			if want.Source == SourceTopic {
				want = Resolved{"200", SourceDynamicBroker}
			}
			if tc.name == "empty value still counts" {
				want = Resolved{"604800000", SourceDefault}
			}
			if got := ResolveBroker("log.retention.ms", d.Default, tc.l); got != want {
				t.Fatalf("ResolveBroker = %+v, want %+v", got, want)
			}
		})
	}
}

func TestResolveTopicConfig(t *testing.T) {
	maxL := int64(math.MaxInt64)
	tests := []struct {
		name  string
		topic map[string]string
		dyn   map[string]string // cluster-wide dynamic default
		check func(t *testing.T, c Topic)
	}{
		{name: "defaults", check: func(t *testing.T, c Topic) {
			if !c.CleanupDelete || c.CleanupCompact || c.LogAppendTime || c.CompressionType != "producer" {
				t.Fatalf("%+v", c)
			}
			if c.MaxMessageBytes != 1048588 || c.SegmentBytes != 1<<30 || c.SegmentIndexBytes != 10<<20 || c.IndexIntervalBytes != 4096 {
				t.Fatalf("%+v", c)
			}
			if c.RetentionBytes != -1 || c.RetentionMs != 604800000 || c.SegmentMs != 604800000 || c.FileDeleteDelayMs != 60000 {
				t.Fatalf("%+v", c)
			}
			if c.FlushMessages != maxL || c.FlushMs != maxL || c.TimestampBeforeMaxMs != maxL || c.TimestampAfterMaxMs != maxL || c.MinInsyncReplicas != 1 {
				t.Fatalf("%+v", c)
			}
			if len(c.Values) != len(TopicDefs()) {
				t.Fatalf("%d values for %d defs", len(c.Values), len(TopicDefs()))
			}
		}},
		{name: "compact only", topic: map[string]string{"cleanup.policy": "compact"}, check: func(t *testing.T, c Topic) {
			if c.CleanupDelete || !c.CleanupCompact {
				t.Fatalf("delete %v compact %v", c.CleanupDelete, c.CleanupCompact)
			}
		}},
		{name: "compact and delete with spaces", topic: map[string]string{"cleanup.policy": "compact, delete"}, check: func(t *testing.T, c Topic) {
			if !c.CleanupDelete || !c.CleanupCompact {
				t.Fatalf("delete %v compact %v", c.CleanupDelete, c.CleanupCompact)
			}
		}},
		{name: "cleanup from dynamic default", dyn: map[string]string{"log.cleanup.policy": "compact"}, check: func(t *testing.T, c Topic) {
			if c.CleanupDelete || !c.CleanupCompact || c.Values["cleanup.policy"].Source != SourceDynamicDefaultBroker {
				t.Fatalf("%+v", c.Values["cleanup.policy"])
			}
		}},
		{name: "log append time", topic: map[string]string{"message.timestamp.type": "LogAppendTime"}, check: func(t *testing.T, c Topic) {
			if !c.LogAppendTime {
				t.Fatal("LogAppendTime false")
			}
		}},
		{name: "difference caps before and after", topic: map[string]string{"message.timestamp.difference.max.ms": "1000", "message.timestamp.before.max.ms": "5000"}, check: func(t *testing.T, c Topic) {
			if c.TimestampBeforeMaxMs != 1000 || c.TimestampAfterMaxMs != 1000 {
				t.Fatalf("before %d after %d", c.TimestampBeforeMaxMs, c.TimestampAfterMaxMs)
			}
		}},
		{name: "before and after smaller than difference", topic: map[string]string{"message.timestamp.difference.max.ms": "1000", "message.timestamp.before.max.ms": "10", "message.timestamp.after.max.ms": "20"}, check: func(t *testing.T, c Topic) {
			if c.TimestampBeforeMaxMs != 10 || c.TimestampAfterMaxMs != 20 {
				t.Fatalf("before %d after %d", c.TimestampBeforeMaxMs, c.TimestampAfterMaxMs)
			}
		}},
		{name: "after only", topic: map[string]string{"message.timestamp.after.max.ms": "7"}, check: func(t *testing.T, c Topic) {
			if c.TimestampBeforeMaxMs != maxL || c.TimestampAfterMaxMs != 7 {
				t.Fatalf("before %d after %d", c.TimestampBeforeMaxMs, c.TimestampAfterMaxMs)
			}
		}},
		{name: "numbers", topic: map[string]string{"segment.bytes": "1024", "retention.bytes": "99", "flush.messages": "1", "min.insync.replicas": "2", "compression.type": "lz4"}, dyn: map[string]string{"log.segment.bytes": "2048", "log.roll.ms": "60000"}, check: func(t *testing.T, c Topic) {
			if c.SegmentBytes != 1024 || c.RetentionBytes != 99 || c.FlushMessages != 1 || c.MinInsyncReplicas != 2 || c.CompressionType != "lz4" || c.SegmentMs != 60000 {
				t.Fatalf("%+v", c)
			}
			if v := c.Values["segment.ms"]; v.Source != SourceDynamicDefaultBroker || v.Value != "60000" {
				t.Fatalf("segment.ms %+v", v)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, ResolveTopicConfig(Layers{Topic: tc.topic, DynamicDefault: tc.dyn}))
		})
	}
}
