package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stratalog/strata/internal/replication"
)

// A topic whose log cannot be opened is reported as failed, with the
// cause, and does not exist afterwards (a full disk is tested with a real
// tmpfs in test/crash: TestCrashFullDisk).
func TestCreateTopicWhoseLogCannotBeOpened(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	// A file where the partition's directory would go: MkdirAll fails.
	block := filepath.Join(n.dir, "blocked-1")
	if err := os.WriteFile(block, []byte("not a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := adm.CreateTopic(ctx, 2, 1, nil, "blocked")
	if err == nil {
		err = resp.Err
	}
	if !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("create with an unopenable log: %v, want KAFKA_STORAGE_ERROR", err)
	}
	for _, want := range []string{"partition 1", "blocked-1", "not a directory", "the topic was not created"} {
		if !strings.Contains(resp.ErrMessage, want) {
			t.Fatalf("error message %q does not say %q", resp.ErrMessage, want)
		}
	}
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("blocked") {
		t.Fatal("the failed topic exists")
	}
	if _, err := os.Stat(filepath.Join(n.dir, "blocked-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("partition 0 of the failed topic left a directory: %v", err)
	}
	if data, err := os.ReadFile(block); err != nil || string(data) != "not a log" {
		t.Fatalf("the file in the way was touched: %q, %v", data, err)
	}
	// The failed creation of a log directory took the data dir offline
	// (as Kafka's LogManager marks a log directory offline when a log
	// cannot be created in it): until a probe write succeeds there (a
	// second or so, then a heartbeat) no topic is placed here.
	if !n.srv.logDir.IsOffline() {
		t.Fatal("the log directory is online after a log could not be created in it")
	}
	// Once the way is clear, the same name creates the topic.
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := adm.CreateTopic(ctx, 2, 1, nil, "blocked")
		if err == nil && resp.Err == nil {
			break
		}
		if !errors.Is(err, kerr.InvalidReplicationFactor) || time.Now().After(deadline) {
			t.Fatalf("create after clearing the way: %v, %v (%s)", err, resp.Err, resp.ErrMessage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := n.srv.parts.Failed()[replication.TopicPartition{Topic: "blocked", Partition: 1}]; ok {
		t.Fatal("the recreated topic's partition is still failed")
	}
}

// TestDescribeLogDirsOffline: DescribeLogDirs answers an offline log
// directory as Kafka does, KAFKA_STORAGE_ERROR and no partitions, and the
// directory with its partitions once it is online.
func TestDescribeLogDirsOffline(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, "sized"); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	describe := func() kadm.DescribedLogDir {
		t.Helper()
		all, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var dirs []kadm.DescribedLogDir
		all.Each(func(d kadm.DescribedLogDir) { dirs = append(dirs, d) })
		if len(dirs) != 1 {
			t.Fatalf("%d log dirs described, want 1", len(dirs))
		}
		return dirs[0]
	}
	if d := describe(); d.Err != nil || len(d.Topics) == 0 {
		t.Fatalf("online: %v, %d topics", d.Err, len(d.Topics))
	}
	// A failed fsync: offline until a restart, whatever a probe would say.
	n.srv.logDir.Fail("fsync", errors.New("input/output error"), true)
	d := describe()
	if !errors.Is(d.Err, kerr.KafkaStorageError) || len(d.Topics) != 0 || d.Dir != n.srv.logDir.Path() {
		t.Fatalf("offline: dir %s, err %v, %d topics; want %s, KAFKA_STORAGE_ERROR and none", d.Dir, d.Err, len(d.Topics), n.srv.logDir.Path())
	}
}
