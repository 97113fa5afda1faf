package replication

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
)

// TestProduceTimestampBounds: a topic with message.timestamp.before.max.ms
// and after.max.ms refuses a produced batch whose timestamps are farther
// from the partition's clock than they allow (INVALID_TIMESTAMP) and takes
// one within them; a topic without bounds (the default) takes any.
func TestProduceTimestampBounds(t *testing.T) {
	const nowMs = int64(1_700_000_000_000)
	m := NewManager(Options{NodeID: 1, DataDir: t.TempDir(), Static: staticConfig(t, false),
		Now:    func() time.Time { return time.UnixMilli(nowMs) },
		Logger: slog.New(slog.DiscardHandler), Reserved: map[string]bool{"__cluster_metadata-0": true}})
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	im0 := metadata.Empty()
	recs := append(topicRecs("bounded", metadata.NewUUID(), 1), topicRecs("free", metadata.NewUUID(), 1)...)
	recs = append(recs,
		&metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "bounded", Name: "message.timestamp.before.max.ms", Value: strp("5000")},
		&metadata.ConfigRecord{ResourceType: metadata.ResourceTopic, ResourceName: "bounded", Name: "message.timestamp.after.max.ms", Value: strp("1000")})
	im1 := mustApply(t, im0, recs...)
	m.Apply(im0, im1)
	batchAt := func(ts int64) []byte {
		b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), ts, []record.Record{{Value: []byte("v")}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		topic   string
		ts      int64
		refused bool
	}{
		{"bounded", nowMs, false},
		{"bounded", nowMs - 5000, false},
		{"bounded", nowMs - 5001, true},
		{"bounded", nowMs + 1000, false},
		{"bounded", nowMs + 1001, true},
		{"free", 0, false},
		{"free", nowMs + 365*24*3600*1000, false},
	} {
		_, err := mustGet(t, m, c.topic, 0).AppendAsLeader(batchAt(c.ts), 1)
		if refused := errors.Is(err, ErrInvalidTimestamp); refused != c.refused || (err != nil && !refused) {
			t.Errorf("%s, timestamp now%+d ms: err %v, want refused %v", c.topic, c.ts-nowMs, err, c.refused)
		}
	}
}

// TestValidateProducedReadsClockOnlyForBounds: without timestamp bounds
// validateProduced does not read the clock (one read per batch is a few
// per cent of the broker's CPU at many partitions); with one it does.
func TestValidateProducedReadsClockOnlyForBounds(t *testing.T) {
	def := config.ResolveTopicConfig(config.Layers{Static: staticConfig(t, false)})
	reads := 0
	now := func() time.Time { reads++; return time.Now() }
	if _, err := validateProduced(buildBatch(t, 2), &def, now); err != nil || reads != 0 {
		t.Fatalf("default bounds: err %v, %d clock reads, want none", err, reads)
	}
	bounded := def
	bounded.TimestampAfterMaxMs = 3600_000
	if _, err := validateProduced(buildBatch(t, 2), &bounded, now); err != nil || reads != 1 {
		t.Fatalf("after.max.ms set: err %v, %d clock reads, want 1", err, reads)
	}
}
