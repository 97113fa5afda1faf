package server

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (n *testNode) httpGet(path string) (int, string) {
	n.t.Helper()
	resp, err := http.Get("http://" + n.srv.HTTPAddr().String() + path)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics.
type scrape map[string]*dto.MetricFamily

func (n *testNode) scrape() scrape {
	n.t.Helper()
	code, body := n.httpGet("/metrics")
	if code != 200 {
		n.t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		n.t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// get returns the value of the series of name with the given label pairs
// (a histogram's sample count), and whether there is one.
func (s scrape) get(name string, labels ...string) (float64, bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func (s scrape) must(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.get(name, labels...)
	if !ok {
		t.Fatalf("/metrics has no %s%v", name, labels)
	}
	return v
}

// TestMetricsDuringWorkload scrapes /metrics around a produce, consume and
// consumer-group workload on a broker that fsyncs before acknowledging, and
// checks that the families are there and the counters move with it.
func TestMetricsDuringWorkload(t *testing.T) {
	n := startNode(t, "", map[string]string{"log.fsync": "always", "group.initial.rebalance.delay.ms": "0"})
	ctx := ctxT(t)
	if code, body := n.httpGet("/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz of a started node: %d %q", code, body)
	}
	if code, _ := n.httpGet("/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, "m"); err != nil {
		t.Fatal(err)
	}
	before := n.scrape()
	if v := before.must(t, "strata_partition_messages_in_total", "topic", "m", "partition", "0"); v != 0 {
		t.Fatalf("messages in before producing: %v", v)
	}

	const records = 200
	prod := n.client(kgo.DefaultProduceTopic("m"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range records {
		r := &kgo.Record{Partition: int32(i % 2), Value: fmt.Appendf(nil, "value-%d", i)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := n.client(kgo.ConsumeTopics("m"), kgo.ConsumerGroup("mg"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	got := 0
	for got < records {
		fs := cons.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}

	after := n.scrape()
	for p := range 2 {
		ps := fmt.Sprint(p)
		tp := []string{"topic", "m", "partition", ps}
		if v := after.must(t, "strata_partition_messages_in_total", tp...); v != records/2 {
			t.Errorf("partition %d messages in = %v, want %d", p, v, records/2)
		}
		if v := after.must(t, "strata_partition_log_end_offset", tp...); v != records/2 {
			t.Errorf("partition %d log end offset = %v, want %d", p, v, records/2)
		}
		if v := after.must(t, "strata_partition_high_watermark", tp...); v != records/2 {
			t.Errorf("partition %d high watermark = %v, want %d", p, v, records/2)
		}
		if v := after.must(t, "strata_partition_bytes_out_total", tp...); v <= 0 {
			t.Errorf("partition %d bytes out = %v after consuming it", p, v)
		}
		if v := after.must(t, "strata_partition_log_size_bytes", tp...); v <= 0 {
			t.Errorf("partition %d log size = %v", p, v)
		}
		if v := after.must(t, "strata_group_committed_offset", "group", "mg", "topic", "m", "partition", ps); v != records/2 {
			t.Errorf("group committed offset of partition %d = %v, want %d", p, v, records/2)
		}
		if v := after.must(t, "strata_group_lag", "group", "mg", "topic", "m", "partition", ps); v != 0 {
			t.Errorf("group lag of partition %d = %v, want 0", p, v)
		}
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"strata_messages_in_total", nil},
		{"strata_bytes_in_total", nil},
		{"strata_bytes_out_total", nil},
		{"strata_request_duration_seconds", []string{"api", "Produce", "stage", "total"}},
		{"strata_request_duration_seconds", []string{"api", "Fetch", "stage", "remote"}},
		{"strata_request_duration_seconds", []string{"api", "JoinGroup", "stage", "total"}},
		{"strata_request_duration_seconds", []string{"api", "OffsetCommit", "stage", "total"}},
		{"strata_log_fsync_duration_seconds", nil},
		{"strata_connections_opened_total", nil},
	} {
		b, _ := before.get(c.name, c.labels...)
		if a := after.must(t, c.name, c.labels...); a <= b {
			t.Errorf("%s%v did not move: %v then %v", c.name, c.labels, b, a)
		}
	}
	if v := after.must(t, "strata_messages_in_total") - must0(before, "strata_messages_in_total"); v < records {
		t.Errorf("broker messages in moved by %v, want at least %d", v, records)
	}
	for name, want := range map[string]float64{
		"strata_ready": 1, "strata_controller_active": 1, "strata_quorum_leader": 1, "strata_partitions_offline": 0,
		"strata_partitions_under_replicated": 0, "strata_partitions_failed": 0,
	} {
		if v := after.must(t, name); v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	if v := after.must(t, "strata_group_members", "group", "mg"); v != 1 {
		t.Errorf("group members = %v, want 1", v)
	}
	if v := after.must(t, "strata_connections"); v < 2 {
		t.Errorf("connections = %v with a producer and a consumer open", v)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "strata_build_info", "strata_partition_leaders", "strata_quorum_epoch"} {
		after.must(t, name)
	}
}

func must0(s scrape, name string) float64 { v, _ := s.get(name); return v }

// TestReadyzWhenAPartitionCannotOpen: a hosted partition whose log cannot
// be opened keeps /readyz at 503 naming it, and shows in
// strata_partitions_failed; /healthz still answers (the process is up).
func TestReadyzWhenAPartitionCannotOpen(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, "r"); err != nil {
		t.Fatal(err)
	}
	if err := n.client().ProduceSync(ctx, &kgo.Record{Topic: "r", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	n.stop()
	dir := filepath.Join(n.dir, "r-1")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a log directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.start()
	code, body := n.httpGet("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "r-1") {
		t.Fatalf("/readyz with r-1 unopenable = %d %q; want 503 naming r-1", code, body)
	}
	if code, _ := n.httpGet("/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	s := n.scrape()
	if v := s.must(t, "strata_partitions_failed"); v != 1 {
		t.Fatalf("strata_partitions_failed = %v, want 1", v)
	}
	if v := s.must(t, "strata_ready"); v != 0 {
		t.Fatalf("strata_ready = %v, want 0", v)
	}
	// Deleting the topic forgets the broken partition: ready again.
	if _, err := n.admin().DeleteTopics(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body = n.httpGet("/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after deleting the topic: %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
