package metrics

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratalog/strata/internal/network"
)

var update = flag.Bool("update", false, "rewrite docs/metrics.md")

type fakeSources struct{ ready bool }

func (fakeSources) Partitions() []Partition {
	return []Partition{
		{Topic: "t", Partition: 0, Leader: true, LogStartOffset: 0, LogEndOffset: 10, HighWatermark: 8, SizeBytes: 1000,
			Replicas: 3, ISR: 2, MinISR: 2, BytesIn: 1000, MessagesIn: 10, BytesOut: 500, ProduceErrors: 1, FetchErrors: 2},
		{Topic: "t", Partition: 1, Leader: false, LogEndOffset: 5, HighWatermark: 5, Replicas: 3, ISR: 3, MinISR: 2},
	}
}

func (fakeSources) Totals() Totals {
	return Totals{BytesIn: 1000, MessagesIn: 10, BytesOut: 500, ReplicationBytesOut: 2000, ProduceErrors: 1, FetchErrors: 2,
		ISRShrinks: 1, ISRExpands: 2, StorageErrors: 0, FailedPartitions: 0, OfflineLogDirs: 1, LeaderThrottleRate: 100}
}

func (fakeSources) Groups() []Group {
	return []Group{{Group: "g", Type: "classic", State: "Stable", Members: 2,
		Offsets: []GroupOffset{{Topic: "t", Partition: 0, Offset: 3}, {Topic: "elsewhere", Partition: 0, Offset: 7}}}}
}

func (fakeSources) Cluster() Cluster {
	return Cluster{ActiveController: true, QuorumLeader: 1, QuorumEpoch: 4, Commit: 100, Applied: 98,
		VoterLag: map[int32]int64{1: 0, 2: 3}, OfflinePartitions: 1, Brokers: 3, FencedBrokers: 1}
}

func (f fakeSources) Ready() (bool, string) {
	if f.ready {
		return true, "ready"
	}
	return false, "2 hosted partitions not open yet"
}

func newTestMetrics(t *testing.T, ready bool) *Metrics {
	t.Helper()
	m := New(BuildInfo{Version: "v1.2.3", Commit: "abc", Date: "2026-01-01", GoVersion: "go1.26"})
	f := fakeSources{ready: ready}
	m.Attach(Sources{Partitions: f, Groups: f, Cluster: f, Health: f})
	r := m.Requests()
	r.ConnOpened()
	r.RequestRead(0, 100)
	r.RequestDone(0, 100, network.RequestTimes{Local: time.Millisecond, Remote: 5 * time.Millisecond, Send: time.Millisecond, Answered: true})
	r.RequestRead(1, 50) // a fetch still in flight
	r.RequestRead(-7, 10)
	r.RequestDone(-7, 10, network.RequestTimes{})
	m.ObserveFsync(2 * time.Millisecond)
	r.SASLAuthentication("SASL_PLAINTEXT", "SCRAM-SHA-256", true)
	r.SASLAuthentication("SASL_PLAINTEXT", "SCRAM-SHA-256", false)
	r.SASLAuthentication("SASL_PLAINTEXT", "PLAIN", false)
	r.SASLReauthentication("SASL_PLAINTEXT", "SCRAM-SHA-256", true)
	r.ExpiredSessionClosed("SASL_PLAINTEXT")
	r.TLSHandshake("SSL", false, nil)
	r.TLSHandshake("SSL", false, errors.New("tls: bad certificate"))
	r.TLSHandshake("SASL_SSL", true, errors.New("tls: bad certificate"))
	r.TLSHandshake("SASL_SSL", true, nil) // counted by its SASL exchange
	m.ObserveThrottle("produce", 250*time.Millisecond)
	return m
}

func gather(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s has no series with %v", name, labels)
	return 0
}

// TestCollect: the scrape-time collector derives the counts Kafka
// operators alert on, and the request instruments count by API and stage.
func TestCollect(t *testing.T) {
	fams := gather(t, newTestMetrics(t, false))
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"strata_partitions", nil, 2},
		{"strata_partition_leaders", nil, 1},
		{"strata_partitions_under_replicated", nil, 1},
		{"strata_partitions_at_min_isr", nil, 1},
		{"strata_partitions_under_min_isr", nil, 0},
		{"strata_partitions_offline", nil, 1},
		{"strata_partition_high_watermark", []string{"topic", "t", "partition", "0"}, 8},
		{"strata_group_lag", []string{"group", "g", "topic", "t", "partition", "0"}, 5},
		{"strata_group_committed_offset", []string{"group", "g", "topic", "elsewhere"}, 7},
		{"strata_group_members", []string{"group", "g"}, 2},
		{"strata_quorum_apply_lag", nil, 2},
		{"strata_quorum_voter_lag", []string{"voter", "2"}, 3},
		{"strata_brokers", []string{"state", "fenced"}, 1},
		{"strata_ready", nil, 0},
		{"strata_requests_in_flight", nil, 1},
		{"strata_request_bytes_in_flight", nil, 50},
		{"strata_connections", nil, 1},
		{"strata_request_duration_seconds", []string{"api", "Produce", "stage", "remote"}, 1},
		{"strata_request_duration_seconds", []string{"api", "unknown", "stage", "total"}, 1},
		{"strata_log_fsync_duration_seconds", nil, 1},
		{"strata_authentications_total", []string{"mechanism", "SCRAM-SHA-256", "result", "success"}, 1},
		{"strata_authentications_total", []string{"mechanism", "SCRAM-SHA-256", "result", "failure"}, 1},
		{"strata_authentications_total", []string{"mechanism", "PLAIN", "result", "failure"}, 1},
		{"strata_authentications_total", []string{"listener", "SSL", "mechanism", "TLS", "result", "failure"}, 1},
		{"strata_authentications_total", []string{"listener", "SSL", "mechanism", "TLS", "result", "success"}, 1},
		{"strata_authentications_total", []string{"listener", "SASL_SSL", "mechanism", "TLS", "result", "failure"}, 1},
		{"strata_reauthentications_total", []string{"mechanism", "SCRAM-SHA-256", "result", "success"}, 1},
		{"strata_expired_sessions_closed_total", []string{"listener", "SASL_PLAINTEXT"}, 1},
		{"strata_log_dirs_offline", nil, 1},
		{"strata_build_info", []string{"version", "v1.2.3"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Lag is only where this broker knows the high watermark.
	for _, m := range fams["strata_group_lag"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetValue() == "elsewhere" {
				t.Error("lag reported for a partition this broker does not host")
			}
		}
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[want] == nil {
			t.Errorf("runtime family %s missing", want)
		}
	}
}

// TestLint: every family follows Prometheus naming conventions.
func TestLint(t *testing.T) {
	probs, err := testutil.GatherAndLint(newTestMetrics(t, true).Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		if strings.HasPrefix(p.Metric, "strata_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

// TestHealthEndpoints: /healthz is up at once; /readyz is 503 with the
// reason until Attach, and then answers what Health says.
func TestHealthEndpoints(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	get := func(h http.Handler, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	m := New(BuildInfo{})
	h := m.Handler(log)
	if code, body := get(h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get(h, "/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("/readyz before attach = %d %q", code, body)
	}
	f := fakeSources{}
	m.Attach(Sources{Partitions: f, Health: f})
	if code, body := get(h, "/readyz"); code != 503 || !strings.Contains(body, "not open yet") {
		t.Fatalf("/readyz not ready = %d %q", code, body)
	}
	if code, body := get(h, "/metrics"); code != 200 || !strings.Contains(body, "strata_partition_log_end_offset{partition=\"0\",topic=\"t\"} 10") {
		t.Fatalf("/metrics = %d, body lacks the log end offset:\n%s", code, body)
	}
	h2 := newTestMetrics(t, true).Handler(log)
	if code, body := get(h2, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz ready = %d %q", code, body)
	}
	if code, _ := get(h2, "/debug/pprof/"); code != 200 {
		t.Fatalf("/debug/pprof/ = %d", code)
	}
}

// docPath is the generated table of every family.
var docPath = filepath.Join("..", "..", "docs", "metrics.md")

// kafkaNames are the Kafka (JMX) or kafka-exporter metrics a family
// corresponds to, for the table's last column.
var kafkaNames = map[string]string{
	"strata_bytes_in_total":                  "BrokerTopicMetrics BytesInPerSec",
	"strata_messages_in_total":               "BrokerTopicMetrics MessagesInPerSec",
	"strata_bytes_out_total":                 "BrokerTopicMetrics BytesOutPerSec",
	"strata_replication_bytes_out_total":     "BrokerTopicMetrics ReplicationBytesOutPerSec",
	"strata_produce_errors_total":            "BrokerTopicMetrics FailedProduceRequestsPerSec (counted per partition)",
	"strata_fetch_errors_total":              "BrokerTopicMetrics FailedFetchRequestsPerSec (counted per partition)",
	"strata_partition_bytes_in_total":        "BrokerTopicMetrics BytesInPerSec,topic=",
	"strata_partition_messages_in_total":     "BrokerTopicMetrics MessagesInPerSec,topic=",
	"strata_partition_bytes_out_total":       "BrokerTopicMetrics BytesOutPerSec,topic=",
	"strata_partition_produce_errors_total":  "BrokerTopicMetrics FailedProduceRequestsPerSec,topic=",
	"strata_partition_fetch_errors_total":    "BrokerTopicMetrics FailedFetchRequestsPerSec,topic=",
	"strata_request_duration_seconds":        "RequestMetrics TotalTimeMs, LocalTimeMs, RemoteTimeMs, ResponseSendTimeMs; RequestsPerSec",
	"strata_connections":                     "socket-server-metrics connection-count",
	"strata_connections_opened_total":        "socket-server-metrics connection-creation-total",
	"strata_log_dirs_offline":                "LogManager OfflineLogDirectoryCount",
	"strata_authentications_total":           "socket-server-metrics successful-authentication-total, failed-authentication-total (SSL handshake failures included)",
	"strata_reauthentications_total":         "socket-server-metrics successful-reauthentication-total, failed-reauthentication-total",
	"strata_expired_sessions_closed_total":   "socket-server-metrics expired-connections-killed-count",
	"strata_partition_log_size_bytes":        "Log Size",
	"strata_partition_log_start_offset":      "Log LogStartOffset",
	"strata_partition_log_end_offset":        "Log LogEndOffset",
	"strata_partition_high_watermark":        "kafka-exporter kafka_topic_partition_current_offset",
	"strata_partition_replicas":              "Partition ReplicasCount",
	"strata_partition_in_sync_replicas":      "Partition InSyncReplicasCount",
	"strata_partitions":                      "ReplicaManager PartitionCount",
	"strata_partition_leaders":               "ReplicaManager LeaderCount",
	"strata_partitions_under_replicated":     "ReplicaManager UnderReplicatedPartitions",
	"strata_partitions_under_min_isr":        "ReplicaManager UnderMinIsrPartitionCount",
	"strata_partitions_at_min_isr":           "ReplicaManager AtMinIsrPartitionCount",
	"strata_partitions_offline":              "KafkaController OfflinePartitionsCount",
	"strata_isr_shrinks_total":               "ReplicaManager IsrShrinksPerSec",
	"strata_isr_expands_total":               "ReplicaManager IsrExpandsPerSec",
	"strata_controller_active":               "KafkaController ActiveControllerCount",
	"strata_brokers":                         "KafkaController ActiveBrokerCount, FencedBrokerCount",
	"strata_quorum_leader":                   "raft-metrics current-leader",
	"strata_quorum_epoch":                    "raft-metrics current-epoch",
	"strata_quorum_commit_index":             "raft-metrics high-watermark",
	"strata_group_lag":                       "kafka-exporter kafka_consumergroup_lag",
	"strata_group_committed_offset":          "kafka-exporter kafka_consumergroup_current_offset",
	"strata_group_members":                   "kafka-exporter kafka_consumergroup_members",
	"strata_groups":                          "GroupMetadataManager NumGroups, NumGroups<State>",
	"strata_log_fsync_duration_seconds":      "LogFlushStats LogFlushRateAndTimeMs",
	"strata_client_throttle_time_seconds":    "Produce/Fetch/Request/ControllerMutation throttle-time (per user and client id in Kafka)",
	"strata_replication_throttle_rate_bytes": "leader/follower.replication.throttled.rate (a setting in Kafka)",
}

// Families returns the documented families: name, type, labels, help.
func families(t *testing.T) [][4]string {
	t.Helper()
	fams := gather(t, newTestMetrics(t, true))
	var rows [][4]string
	for name, f := range fams {
		if !strings.HasPrefix(name, "strata_") {
			continue
		}
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		var ls []string
		for l := range labels {
			ls = append(ls, "`"+l+"`")
		}
		sort.Strings(ls)
		rows = append(rows, [4]string{name, strings.ToLower(f.GetType().String()), strings.Join(ls, ", "), f.GetHelp()})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i][0] < rows[j][0] })
	return rows
}

func renderDoc(rows [][4]string) string {
	var b strings.Builder
	b.WriteString(`# Strata metrics

Generated by ` + "`go test ./internal/metrics -run TestMetricsDoc -update`" + `; do not edit.

Every broker serves these on its HTTP listener (` + "`--http-listen`" + `, default
` + "`localhost:9644`" + `) at ` + "`/metrics`" + `, with the Go runtime (` + "`go_*`" + `) and process
(` + "`process_*`" + `) families of the Prometheus client. Per-partition families cover the
replicas the broker hosts; counters restart from zero with the process (or, per
partition, when the replica is opened on the broker).

| family | type | labels | meaning | Kafka |
| --- | --- | --- | --- | --- |
`)
	for _, r := range rows {
		b.WriteString("| `" + r[0] + "` | " + r[1] + " | " + r[2] + " | " + strings.ReplaceAll(r[3], "|", "\\|") + " | " + kafkaNames[r[0]] + " |\n")
	}
	return b.String()
}

// TestMetricsDoc fails when docs/metrics.md is not the table of the
// families the broker exports.
func TestMetricsDoc(t *testing.T) {
	rows := families(t)
	// Every family the collector describes is in the table (the fake
	// sources above must make each produce a sample).
	have := map[string]bool{}
	for _, r := range rows {
		have[r[0]] = true
	}
	for name := range kafkaNames {
		if !have[name] {
			t.Errorf("kafkaNames names %s, which is not exported", name)
		}
	}
	for _, d := range allStateDs {
		name := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String())[1]
		if !have[name] {
			t.Errorf("%s is described but the test's sources produce no sample of it", name)
		}
	}
	want := renderDoc(rows)
	if *update {
		if err := os.WriteFile(docPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(docPath)
	if err != nil || string(got) != want {
		t.Fatalf("%s is stale (err %v); run go test ./internal/metrics -run TestMetricsDoc -update", docPath, err)
	}
}

// ExportedNames lists every family name the broker exports, for the
// dashboard test.
func exportedNames(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for name, f := range gather(t, newTestMetrics(t, true)) {
		out[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
}

// BenchmarkRequestDone is the per-request cost of the request metrics
// (read + done): it must not allocate.
func BenchmarkRequestDone(b *testing.B) {
	r := New(BuildInfo{}).Requests()
	t := network.RequestTimes{Local: 20 * time.Microsecond, Remote: time.Millisecond, Send: 5 * time.Microsecond, Answered: true}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.RequestRead(0, 1024)
			r.RequestDone(0, 1024, t)
		}
	})
}

func TestRequestMetricsDoNotAllocate(t *testing.T) {
	r := New(BuildInfo{}).Requests()
	rt := network.RequestTimes{Local: time.Microsecond}
	r.RequestDone(1, 10, rt) // the first request of a key builds its observers
	if n := testing.AllocsPerRun(100, func() { r.RequestRead(1, 10); r.RequestDone(1, 10, rt) }); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}
