package controller

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
)

// countingLog counts the entries appended to a metadata log.
type countingLog struct {
	metadata.Log
	appends int
}

func (l *countingLog) Append(recs []metadata.Record) (int64, error) {
	l.appends++
	return l.Log.Append(recs)
}

func openTest(t *testing.T, dir string) (*LocalLog, *Controller) {
	l, c, _ := openCounting(t, dir)
	return l, c
}

// openCounting is openTest with a count of the entries written.
func openCounting(t *testing.T, dir string) (*LocalLog, *Controller, *countingLog) {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	l, err := OpenLocalLog(dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingLog{Log: l}
	c, err := New(cl, loader.New(loader.Options{Logger: logger}), Options{NodeID: 1, Logger: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1, DeleteTopicEnable: true})
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	return l, c, cl
}

// TestOneEntryPerWrite: a write commits one entry before it returns, and
// validate-only, failed and no-op requests commit nothing.
func TestOneEntryPerWrite(t *testing.T) {
	l, c, cl := openCounting(t, t.TempDir())
	defer l.Close()
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	n := cl.appends
	res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 2, ReplicationFactor: 1}}, false)
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	after := c.Image()
	if cl.appends != n+1 || after.Topics["a"] == nil {
		t.Fatalf("after create: %d entries written, topic %v; want 1 entry and the topic in the image", cl.appends-n, after.Topics["a"])
	}
	c.CreateTopics([]CreateTopic{{Name: "b", Partitions: 1, ReplicationFactor: 1}}, true)
	c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 1, ReplicationFactor: 1}}, false)
	c.AlterConfigs([]AlterConfigResource{{Type: metadata.ResourceTopic, Name: "a"}}, false) // no ops: no change
	if cl.appends != n+1 || c.Image() != after {
		t.Fatalf("%d more entries written on requests that change nothing", cl.appends-n-1)
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
	e := &env{dirNames: map[metadata.UUID]string{}}
	if a, b := e.printImage(img), e.printImage(c2.Image()); a != b {
		t.Fatalf("replay differs:\n%s\nvs\n%s", a, b)
	}
	for n, tp := range img.Topics {
		if got := c2.Image().Topics[n]; got == nil || got.ID != tp.ID {
			t.Fatalf("topic %s replayed as %+v, want id %s", n, got, tp.ID)
		}
	}
}

// TestBootstrapFeatures: a new cluster's metadata log is formatted with
// FeatureLevelRecords (transaction.version 2 by default, as Kafka 4.0
// formats new clusters), which survive a restart; a level of 0 writes
// nothing; a cluster formatted before keeps the levels its log holds.
func TestBootstrapFeatures(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	open := func(dir string, feats map[string]int16) (*LocalLog, *Controller) {
		t.Helper()
		l, err := OpenLocalLog(dir, logger)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(l, loader.New(loader.Options{Logger: logger}), Options{NodeID: 1, Logger: logger, DefaultPartitions: 1, DefaultReplicationFactor: 1, BootstrapFeatures: feats})
		if err != nil {
			l.Close()
			t.Fatal(err)
		}
		return l, c
	}
	for _, tc := range []struct {
		name  string
		feats map[string]int16
		want  int16
	}{
		{"default", nil, 2},
		{"tv1", tvFeatures(1), 1},
		{"tv0", tvFeatures(0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, c := open(dir, tc.feats)
			if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
				t.Fatal(err)
			}
			if got := c.Image().FeatureLevel(metadata.TransactionVersionFeature); got != tc.want {
				t.Fatalf("transaction.version %d, want %d", got, tc.want)
			}
			if tc.want == 0 && len(c.Image().Features) != 0 {
				t.Fatalf("features %v", c.Image().Features)
			}
			l.Close()
			// Reopened with another bootstrap level: the log's stays.
			l, c = open(dir, tvFeatures(2-tc.want))
			defer l.Close()
			if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
				t.Fatal(err)
			}
			if got := c.Image().FeatureLevel(metadata.TransactionVersionFeature); got != tc.want {
				t.Fatalf("after a restart: transaction.version %d, want %d", got, tc.want)
			}
		})
	}
}

// tvFeatures is the bootstrap features with transaction.version at level.
func tvFeatures(level int16) map[string]int16 {
	return map[string]int16{metadata.TransactionVersionFeature: level}
}

// TestPartitionsPerRequest: one CreateTopics or CreatePartitions request
// creates at most controller.max.records.per.batch partitions over all its
// topics (Kafka's validateTotalNumberOfPartitions); a request for more
// fails whole with POLICY_VIOLATION, validate-only too, and commits
// nothing. Before, 100,000 partitions in one request made an entry over
// the quorum's 16 MiB and failed with an unlogged UNKNOWN_SERVER_ERROR.
func TestPartitionsPerRequest(t *testing.T) {
	l, c, cl := openCounting(t, t.TempDir())
	defer l.Close()
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	n := cl.appends
	for _, validateOnly := range []bool{true, false} {
		res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 6000, ReplicationFactor: 1}, {Name: "b", Partitions: 4001, ReplicationFactor: 1}}, validateOnly)
		for i, r := range res {
			if !errors.Is(r.Err, ErrPolicyViolation) || !strings.Contains(r.Err.Error(), "10001 new partitions") {
				t.Fatalf("validateOnly %v: topic %d of 10,001 partitions in one request: %v, want POLICY_VIOLATION", validateOnly, i, r.Err)
			}
		}
	}
	if cl.appends != n || c.Image().Topics["a"] != nil || c.Image().Topics["b"] != nil {
		t.Fatalf("a refused request committed %d entries", cl.appends-n)
	}
	res := c.CreateTopics([]CreateTopic{{Name: "a", Partitions: 6000, ReplicationFactor: 1}, {Name: "b", Partitions: 3999, ReplicationFactor: 1}}, false)
	if res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("9,999 partitions in one request: %v, %v", res[0].Err, res[1].Err)
	}
	n = cl.appends
	errs := c.CreatePartitionsAll([]CreatePartitions{{Topic: "a", Count: 10000}, {Topic: "b", Count: 10000}}, false)
	for i, err := range errs {
		if !errors.Is(err, ErrPolicyViolation) || !strings.Contains(err.Error(), "10001 new partitions") {
			t.Fatalf("CreatePartitions %d adding 10,001 partitions: %v, want POLICY_VIOLATION", i, err)
		}
	}
	if cl.appends != n || len(c.Image().Topics["a"].Partitions) != 6000 {
		t.Fatalf("a refused CreatePartitions committed %d entries", cl.appends-n)
	}
	if errs := c.CreatePartitionsAll([]CreatePartitions{{Topic: "a", Count: 10000}, {Topic: "b", Count: 9999}}, false); errs[0] != nil || errs[1] != nil {
		// 4,000 + 6,000: within the limit.
		t.Fatalf("CreatePartitions adding 10,000: %v", errs)
	}
	if len(c.Image().Topics["a"].Partitions) != 10000 || len(c.Image().Topics["b"].Partitions) != 9999 {
		t.Fatal("partitions not created")
	}
}

// TestUncleanRestartLogsOnce: a broker back from an unclean shutdown that
// was the last in-sync replica of many partitions (a single node's every
// partition of one replica) gets one WARN that counts them and names the
// first few, not one line per partition (100,000 lines at 100,000
// partitions).
func TestUncleanRestartLogsOnce(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := OpenLocalLog(t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Unix(1000, 0)
	c, err := New(l, loader.New(loader.Options{Logger: logger}), Options{NodeID: 1, Logger: logger, Now: func() time.Time { return now }, BrokerSessionTimeout: 9 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bootstrap("c", "h1", 9092, nil); err != nil {
		t.Fatal(err)
	}
	reg := BrokerRegistration{NodeID: 2, Incarnation: metadata.UUID{2}, Host: "h2", Port: 9092, PreviousBrokerEpoch: -1}
	if _, err := c.RegisterBroker(reg); err != nil {
		t.Fatal(err)
	}
	assign := map[int32][]int32{}
	for p := range int32(300) {
		assign[p] = []int32{2}
	}
	if res := c.CreateTopics([]CreateTopic{{Name: "t", Partitions: -1, ReplicationFactor: -1, Assignment: assign}}, false); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	now = now.Add(10 * time.Second) // the old process's session is over
	reg.Incarnation = metadata.UUID{3}
	logs.Reset()
	if _, err := c.RegisterBroker(reg); err != nil {
		t.Fatal(err)
	}
	var warns []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "partitions=300") || !strings.Contains(warns[0], "t-0") || strings.Contains(warns[0], "t-10 ") {
		t.Fatalf("an unclean restart as the last replica of 300 partitions logged %d WARN lines, want one counting 300 and naming the first 10: %q", len(warns), warns)
	}
	if p := c.Image().Topics["t"].Partitions[7]; p.Leader != 2 {
		t.Fatalf("partition 7 after the unclean restart: %+v, want broker 2 leading it again", p)
	}
}

// TestEntryTooLarge: a write whose records do not fit one metadata entry
// (Options.MaxEntryBytes, the quorum's bound) is refused with
// POLICY_VIOLATION before it is proposed, and commits nothing.
func TestEntryTooLarge(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	l, err := OpenLocalLog(t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cl := &countingLog{Log: l}
	c, err := New(cl, loader.New(loader.Options{Logger: logger}), Options{NodeID: 1, Logger: logger, MaxEntryBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bootstrap("c", "h", 1, nil); err != nil {
		t.Fatal(err)
	}
	n := cl.appends
	res := c.CreateTopics([]CreateTopic{{Name: "big", Partitions: 200, ReplicationFactor: 1}}, false)
	if !errors.Is(res[0].Err, ErrPolicyViolation) || !strings.Contains(res[0].Err.Error(), "do not fit one metadata entry") {
		t.Fatalf("200 partitions in 4 KiB entries: %v, want POLICY_VIOLATION", res[0].Err)
	}
	if cl.appends != n || c.Image().Topics["big"] != nil {
		t.Fatal("a refused write was committed")
	}
	if res := c.CreateTopics([]CreateTopic{{Name: "small", Partitions: 2, ReplicationFactor: 1}}, false); res[0].Err != nil {
		t.Fatalf("a small write: %v", res[0].Err)
	}
}
