package server

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata/loader"
)

// TestMigratesPreQuorumMetadataLog starts a node on a data dir written
// before the metadata quorum existed (the metadata log as a local
// partition log): its topics, ids, configs and data are all there after
// the import, once, and the old log is kept aside.
func TestMigratesPreQuorumMetadataLog(t *testing.T) {
	dir := t.TempDir()
	const cluster = "legacyClusterIdAAAAAAA"
	// Write the old layout: meta.properties and a LocalLog.
	if err := os.WriteFile(filepath.Join(dir, "meta.properties"), fmt.Appendf(nil, "version=1\ncluster.id=%s\nnode.id=1\n", cluster), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	ll, err := controller.OpenLocalLog(filepath.Join(dir, MetadataDir), logger)
	if err != nil {
		t.Fatal(err)
	}
	old, err := controller.New(ll, loader.New(loader.Options{Logger: logger}), controller.Options{NodeID: 1, Logger: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Bootstrap(cluster, "localhost", 9092, nil); err != nil {
		t.Fatal(err)
	}
	retention := "123456"
	res := old.CreateTopics([]controller.CreateTopic{{Name: "kept", Partitions: 2, ReplicationFactor: 1,
		Configs: map[string]*string{"retention.ms": &retention}}}, false)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	id := res[0].ID
	if _, err := old.AllocateProducerIDs(5000); err != nil {
		t.Fatal(err)
	}
	if err := ll.Close(); err != nil {
		t.Fatal(err)
	}

	n := startNode(t, dir, nil)
	ctx := ctxT(t)
	check := func(when string) {
		img := n.srv.loader.Image()
		topic := img.Topics["kept"]
		switch {
		case img.ClusterID != cluster:
			t.Fatalf("%s: cluster id %q, want %q", when, img.ClusterID, cluster)
		case topic == nil || topic.ID != id || len(topic.Partitions) != 2:
			t.Fatalf("%s: topic kept = %+v, want id %v and 2 partitions", when, topic, id)
		case img.TopicConfig("kept")["retention.ms"] != retention:
			t.Fatalf("%s: retention.ms = %q", when, img.TopicConfig("kept")["retention.ms"])
		case img.NextProducerID < 5000:
			t.Fatalf("%s: next producer id %d: ids handed out before the import could be reused", when, img.NextProducerID)
		}
	}
	check("after the import")
	if _, err := os.Stat(filepath.Join(dir, legacyMetadataImported)); err != nil {
		t.Fatalf("the old metadata log was not kept aside: %v", err)
	}
	// The imported topic takes data, and a restart neither imports again
	// nor loses anything.
	cl := n.client(kgo.DefaultProduceTopic("kept"))
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after-import")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n.restart()
	check("after a restart")
	ends, err := n.admin().ListEndOffsets(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 1 {
		t.Fatalf("%d records in kept after the restart, want 1", total)
	}
}
