package replication

import (
	"testing"

	"github.com/stratalog/strata/internal/config"
)

func TestStorageConfigCompaction(t *testing.T) {
	tests := []struct {
		name        string
		topic       map[string]string
		compact     bool
		retentionMs int64
		dirtyRatio  float64
		minLag      int64
		maxLag      int64
		deleteRet   int64
	}{
		{name: "defaults", topic: nil, compact: false, retentionMs: 604800000, dirtyRatio: 0.5, minLag: 0, maxLag: 1<<63 - 1, deleteRet: 86400000},
		{name: "compact", topic: map[string]string{"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "min.compaction.lag.ms": "5", "max.compaction.lag.ms": "60000", "delete.retention.ms": "100"},
			compact: true, retentionMs: -1, dirtyRatio: 0.1, minLag: 5, maxLag: 60000, deleteRet: 100},
		{name: "compact,delete", topic: map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "1000"},
			compact: true, retentionMs: 1000, dirtyRatio: 0.5, maxLag: 1<<63 - 1, deleteRet: 86400000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			top := config.ResolveTopicConfig(config.Layers{Topic: tc.topic})
			c := storageConfig(&top, nil)
			if c.Compact != tc.compact || c.RetentionMs != tc.retentionMs || c.MinCleanableDirtyRatio != tc.dirtyRatio ||
				c.MinCompactionLagMs != tc.minLag || c.MaxCompactionLagMs != tc.maxLag || c.DeleteRetentionMs != tc.deleteRet {
				t.Errorf("got compact=%t retention=%d ratio=%v minLag=%d maxLag=%d deleteRetention=%d", c.Compact, c.RetentionMs,
					c.MinCleanableDirtyRatio, c.MinCompactionLagMs, c.MaxCompactionLagMs, c.DeleteRetentionMs)
			}
		})
	}
}
