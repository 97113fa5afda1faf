package controller

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

func openTest(t *testing.T, dir string) (*LocalLog, *Controller) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	l, err := OpenLocalLog(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(l, Options{NodeID: 1, Logger: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1, DeleteTopicEnable: true})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return l, c
}

func TestSubscribe(t *testing.T) {
	l, c := openTest(t, t.TempDir())
	defer l.Close()
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	type call struct{ prev, next *metadata.Image }
	var calls []call
	c.Subscribe(func(prev, next *metadata.Image) { calls = append(calls, call{prev, next}) })
	if len(calls) != 1 || calls[0].prev.Offset != -1 || len(calls[0].prev.Brokers) != 0 || calls[0].next != c.Image() {
		t.Fatalf("Subscribe's first call = %+v", calls)
	}
	res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 2, ReplicationFactor: 1}}, false)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	// The listener ran before CreateTopics returned, with the new image.
	if len(calls) != 2 || calls[1].prev != calls[0].next || calls[1].next != c.Image() || calls[1].next.Topics["a"] == nil {
		t.Fatalf("calls after create = %+v", calls)
	}
	// Validate-only and failed requests publish nothing.
	c.CreateTopics([]CreateTopic{{Name: "b", Partitions: 1, ReplicationFactor: 1}}, true)
	c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 1, ReplicationFactor: 1}}, false)
	c.AlterConfigs([]AlterConfigResource{{Type: metadata.ResourceTopic, Name: "a"}}, false) // no ops: no change
	if len(calls) != 2 {
		t.Fatalf("%d listener calls, want 2", len(calls))
	}
}

// TestCommitFailure: when the log rejects a write, every change in the
// request reports the error and the image stays as it was.
func TestCommitFailure(t *testing.T) {
	l, c := openTest(t, t.TempDir())
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 1, ReplicationFactor: 1}}, false)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	before := c.Image()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res = c.CreateTopics([]CreateTopic{{Name: "b", Partitions: 1, ReplicationFactor: 1}, {Name: "c", Partitions: 1, ReplicationFactor: 1}}, false)
	for _, r := range res {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "commit metadata") {
			t.Fatalf("create %s: %v, want a commit error", r.Name, r.Err)
		}
	}
	if errs := c.CreatePartitionsAll([]CreatePartitions{{Topic: "a", Count: 2}}, false); errs[0] == nil {
		t.Fatal("create partitions succeeded on a closed log")
	}
	v := "1"
	if errs := c.AlterConfigs([]AlterConfigResource{{Type: metadata.ResourceTopic, Name: "a", Ops: []ConfigOp{{Name: "retention.ms", Value: &v}}}}, false); errs[0] == nil {
		t.Fatal("alter configs succeeded on a closed log")
	}
	if dr := c.DeleteTopics([]DeleteTopic{{Name: "a"}}); dr[0].Err == nil {
		t.Fatal("delete succeeded on a closed log")
	}
	if _, err := c.AllocateProducerIDs(10); err == nil {
		t.Fatal("AllocateProducerIDs succeeded on a closed log")
	}
	if _, err := c.Bootstrap("c", "other", 2, nil); err == nil {
		t.Fatal("Bootstrap succeeded on a closed log")
	}
	if c.Image() != before {
		t.Fatal("image changed after failed commits")
	}
}

func TestLocalLog(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	l, err := OpenLocalLog(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(nil); err == nil {
		t.Fatal("empty Append succeeded")
	}
	v := "x"
	batches := [][]metadata.Record{
		{&metadata.ClusterIDRecord{ClusterID: "c"}},
		{&metadata.RegisterBrokerRecord{NodeID: 1, Host: "h", Port: 1}, &metadata.ProducerIDsRecord{NextProducerID: 5}, &metadata.ConfigRecord{ResourceType: metadata.ResourceBroker, Name: "k", Value: &v}},
	}
	var offs []int64
	for _, b := range batches {
		off, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	if offs[0] != 0 || offs[1] != 3 {
		t.Fatalf("offsets %v, want [0 3]", offs)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = OpenLocalLog(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got [][]metadata.Record
	var gotOffs []int64
	if err := l.Replay(func(off int64, recs []metadata.Record) error {
		got = append(got, recs)
		gotOffs = append(gotOffs, off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0]) != 1 || len(got[1]) != 3 || gotOffs[0] != 0 || gotOffs[1] != 3 {
		t.Fatalf("replayed %d batches at %v", len(got), gotOffs)
	}
	if r, ok := got[1][2].(*metadata.ConfigRecord); !ok || r.Name != "k" || r.Value == nil || *r.Value != "x" {
		t.Fatalf("replayed %+v", got[1][2])
	}
	// An error from fn stops the replay and is returned.
	stop := errors.New("stop")
	n := 0
	if err := l.Replay(func(int64, []metadata.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Replay = %v after %d calls", err, n)
	}
}

// TestConcurrentWrites: the controller serialises writes; concurrent
// creators and producer-id allocators never see overlapping blocks, and a
// restart replays to the same image.
func TestConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	l, c := openTest(t, dir)
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	starts := map[int64]bool{}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				start, err := c.AllocateProducerIDs(100)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				starts[start] = true
				mu.Unlock()
				name := "t" + string(rune('a'+i)) + string(rune('a'+j))
				if r := c.CreateTopics([]CreateTopic{{Name: name, Partitions: 1, ReplicationFactor: 1}}, false); r[0].Err != nil {
					t.Error(r[0].Err)
				}
				_ = c.Image().Topics[name]
			}
		}()
	}
	wg.Wait()
	if len(starts) != 20 {
		t.Fatalf("%d distinct block starts, want 20", len(starts))
	}
	for s := range starts {
		if s%100 != 0 || s >= 2000 {
			t.Fatalf("block start %d", s)
		}
	}
	img := c.Image()
	if len(img.Topics) != 20 || img.NextProducerID != 2000 {
		t.Fatalf("%d topics, next producer id %d", len(img.Topics), img.NextProducerID)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, c2 := openTest(t, dir)
	defer l2.Close()
	if a, b := printImage(img), printImage(c2.Image()); a != b {
		t.Fatalf("replay differs:\n%s\nvs\n%s", a, b)
	}
	for n, tp := range img.Topics {
		if got := c2.Image().Topics[n]; got == nil || got.ID != tp.ID {
			t.Fatalf("topic %s replayed as %+v, want id %s", n, got, tp.ID)
		}
	}
}

// TestWaitFor: WaitFor wakes on the image change that satisfies its
// condition, and gives up after its timeout otherwise.
func TestWaitFor(t *testing.T) {
	l, c := openTest(t, t.TempDir())
	defer l.Close()
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	has := func(img *metadata.Image) bool { return img.Topics["later"] != nil }
	done := make(chan bool)
	go func() { done <- c.WaitFor(has, time.Minute) }()
	if res := c.CreateTopics([]CreateTopic{{Name: "later", Partitions: 1, ReplicationFactor: 1}}, false); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if !<-done {
		t.Fatal("WaitFor did not see the topic")
	}
	if c.WaitFor(func(img *metadata.Image) bool { return img.Topics["never"] != nil }, 10*time.Millisecond) {
		t.Fatal("WaitFor held for a topic that does not exist")
	}
}
