package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTopicCommands(t *testing.T) {
	addr := startBroker(t)
	golden(t, "topic_create.txt", mustRun(t, addr, "", "topic", "create", "orders", "-p", "3", "-r", "1", "-c", "retention.ms=3600000"))
	mustRun(t, addr, "", "topic", "create", "audit", "-p", "1")
	golden(t, "topic_list.txt", mustRun(t, addr, "", "topic", "list"))

	mustRun(t, addr, "a\nb\nc\n", "produce", "orders", "--partition", "1")
	golden(t, "topic_describe.txt", mustRun(t, addr, "", "topic", "describe", "orders"))

	var desc []topicJSON
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "describe", "orders", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	if len(desc) != 1 || len(desc[0].Partitions) != 3 || desc[0].Partitions[1].HighWatermark != 3 {
		t.Fatalf("describe --json = %+v, want 3 partitions, partition 1 at offset 3", desc)
	}
	found := false
	for _, c := range desc[0].Configs {
		if c.Key == "retention.ms" {
			found = true
			if c.Value != "3600000" || c.Default {
				t.Errorf("retention.ms = %+v, want the non-default 3600000", c)
			}
		}
	}
	if !found {
		t.Errorf("describe --json lacks retention.ms: %+v", desc[0].Configs)
	}

	mustRun(t, addr, "", "topic", "alter-config", "orders", "-c", "retention.ms=60000")
	out := mustRun(t, addr, "", "topic", "describe", "orders")
	if !strings.Contains(out, "retention.ms") || !strings.Contains(out, "60000") {
		t.Errorf("describe after alter-config lacks retention.ms=60000:\n%s", out)
	}
	mustRun(t, addr, "", "topic", "add-partitions", "orders", "-n", "2")
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "describe", "orders", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	if got := len(desc[0].Partitions); got != 5 {
		t.Errorf("after add-partitions -n 2: %d partitions, want 5", got)
	}
	golden(t, "topic_delete.txt", mustRun(t, addr, "", "topic", "delete", "audit"))
	var list []struct{ Topic string }
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Topic != "orders" {
		t.Errorf("topic list after delete = %+v, want only orders", list)
	}
}

// TestErrors checks that failures exit non-zero with one clear line.
func TestErrors(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "t", "-p", "1")
	tests := []struct {
		name  string
		addr  string
		stdin string
		args  []string
		want  string // in the error
	}{
		{"unreachable broker", "127.0.0.1:1", "", []string{"topic", "list", "--timeout", "500ms"}, "cannot connect to brokers 127.0.0.1:1"},
		{"unreachable produce", "127.0.0.1:1", "x\n", []string{"produce", "t", "--timeout", "500ms"}, "cannot connect to brokers 127.0.0.1:1"},
		{"describe unknown topic", addr, "", []string{"topic", "describe", "nope"}, `topic "nope" does not exist`},
		{"produce unknown topic", addr, "x\n", []string{"produce", "nope"}, `topic "nope" does not exist`},
		{"consume unknown topic", addr, "", []string{"consume", "nope"}, `topic "nope" does not exist`},
		{"delete unknown topic", addr, "", []string{"topic", "delete", "nope"}, "delete topic nope:"},
		{"create existing topic", addr, "", []string{"topic", "create", "t"}, "create topic t: "},
		{"invalid config value", addr, "", []string{"topic", "create", "u", "-c", "retention.ms=soon"}, "create topic u:"},
		{"invalid config value on alter", addr, "", []string{"topic", "alter-config", "t", "-c", "retention.ms=soon"}, "alter config of topic t:"},
		{"malformed config", addr, "", []string{"topic", "create", "u", "-c", "retention.ms"}, `config "retention.ms": want key=value`},
		{"bad offset spec", addr, "", []string{"consume", "t", "-o", "yesterday"}, `bad offset "yesterday"`},
		{"bad format", addr, "", []string{"consume", "t", "-f", "%q"}, "unknown verb %q"},
		{"no such partition", addr, "x\n", []string{"produce", "t", "--partition", "7"}, `topic "t" has no partition 7`},
		{"bad acks", addr, "x\n", []string{"produce", "t", "--acks", "2"}, `--acks "2"`},
		{"bad compression", addr, "x\n", []string{"produce", "t", "--compression", "brotli"}, `--compression "brotli"`},
		{"perf without bound", addr, "", []string{"perf", "produce", "t"}, "give --records N or --duration D"},
		{"reset without target", addr, "", []string{"group", "reset-offsets", "g", "--topic", "t"}, "give -o/--offset or --shift-by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.name, "invalid config value") && !testBrokerValidatesConfigs {
				t.Skip("kfake accepts any config value")
			}
			start := time.Now()
			r := run(t, tt.addr, tt.stdin, tt.args...)
			if r.err == nil {
				t.Fatalf("strata %s succeeded, want an error containing %q; stdout:\n%s", strings.Join(tt.args, " "), tt.want, r.stdout)
			}
			msg := r.err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s to fail, want a fast failure", d)
			}
		})
	}
}

func TestProduceConsume(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "events", "-p", "2")
	before := time.Now().Add(-time.Second).UnixMilli()

	out := mustRun(t, addr, "k1:v1\nk2:v2\nk1:v3\n\nno-key\r\n", "produce", "events", "-k", ":", "-H", "src=test", "--partition", "0")
	if want := "produced 5 records to events: 5 acknowledged, 0 failed\n"; out != want {
		t.Errorf("produce output = %q, want %q", out, want)
	}
	mustRun(t, addr, "p1\np1b\n", "produce", "events", "--partition", "1", "--compression", "zstd", "--acks", "1")

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"all of partition 0", []string{"-p", "0", "-f", `%p/%o %k=%s|%h\n`},
			"0/0 k1=v1|src=test\n0/1 k2=v2|src=test\n0/2 k1=v3|src=test\n0/3 =|src=test\n0/4 =no-key|src=test\n"},
		{"last 2 of partition 0", []string{"-p", "0", "-o", "-2"}, "\nno-key\n"},
		{"from offset 1, 2 records", []string{"-p", "0", "-o", "1", "-n", "2"}, "v2\nv3\n"},
		{"partition 1", []string{"-p", "1", "-f", `%o:%s\n`}, "0:p1\n1:p1b\n"},
		{"end without follow", []string{"-o", "end"}, ""},
		{"by timestamp", []string{"-p", "1", "-o", fmt.Sprintf("@%d", before)}, "p1\np1b\n"},
		{"far future timestamp", []string{"-o", "@99999999999999"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustRun(t, addr, "", append([]string{"consume", "events"}, tt.args...)...)
			if got != tt.want {
				t.Errorf("consume %v = %q, want %q", tt.args, got, tt.want)
			}
		})
	}

	// All partitions, as JSON lines.
	got := mustRun(t, addr, "", "consume", "events", "--json")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 7 {
		t.Fatalf("consume --json printed %d lines, want 7:\n%s", len(lines), got)
	}
	var rec recordJSON
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if rec.Topic != "events" || rec.Timestamp < before {
			t.Errorf("bad record %+v", rec)
		}
	}

	// --json produce summary.
	var pr ProduceResult
	if err := json.Unmarshal([]byte(mustRun(t, addr, "x\ny\n", "produce", "events", "--json", "--partition", "1")), &pr); err != nil {
		t.Fatal(err)
	}
	if pr.Acknowledged != 2 || pr.Failed != 0 || pr.Partitions[1] != 2 {
		t.Errorf("produce --json = %+v", pr)
	}
}

func TestClusterCommands(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "c", "-p", "2")
	golden(t, "cluster_info.txt", mustRun(t, addr, "", "cluster", "info"))
	golden(t, "cluster_brokers.txt", mustRun(t, addr, "", "cluster", "brokers"))
	golden(t, "cluster_brokers.json", mustRun(t, addr, "", "cluster", "brokers", "--json"))
}
