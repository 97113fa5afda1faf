package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Shell completion offers topic and group names from the cluster.
func TestCompletion(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "orders", "-p", "1")
	mustRun(t, addr, "", "topic", "create", "audit", "-p", "1")
	mustRun(t, addr, "x\n", "produce", "orders")
	mustRun(t, addr, "", "consume", "orders", "-g", "billing")

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"topic", "describe", ""}, "audit\norders\n:4\n"},
		{[]string{"topic", "describe", "orders", ""}, "audit\n:4\n"}, // not offered twice
		{[]string{"consume", "or"}, "orders\n:4\n"},
		{[]string{"consume", "orders", ""}, ":4\n"}, // one topic only
		{[]string{"group", "describe", ""}, "billing\n:4\n"},
		{[]string{"group", "reset-offsets", "billing", "--topic", ""}, "audit\norders\n:4\n"},
		{[]string{"perf", "produce", "a"}, "audit\n:4\n"},
	}
	for _, tt := range tests {
		got := mustRun(t, addr, "", append([]string{"__complete"}, tt.args...)...)
		if got != tt.want {
			t.Errorf("complete %q = %q, want %q", tt.args, got, tt.want)
		}
	}
	// An unreachable cluster completes nothing, quickly.
	start := time.Now()
	got := mustRun(t, "127.0.0.1:1", "", "__complete", "topic", "describe", "")
	if got != ":4\n" || time.Since(start) > 5*time.Second {
		t.Errorf("completion without a cluster = %q after %s", got, time.Since(start))
	}
	// And the completion scripts exist.
	if out := mustRun(t, addr, "", "completion", "bash"); !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: %.100q", out)
	}
}

// --verbose adds the client's debug log on stderr; without it stderr is
// empty.
func TestVerbose(t *testing.T) {
	addr := startBroker(t)
	if r := run(t, addr, "", "topic", "list"); r.err != nil || r.stderr != "" {
		t.Fatalf("topic list: %v, stderr %q", r.err, r.stderr)
	}
	r := run(t, addr, "", "topic", "list", "-v")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stderr, "strata: ") || !strings.Contains(r.stderr, "Metadata") {
		t.Errorf("--verbose stderr lacks the client's request log:\n%s", r.stderr)
	}
	if r.stdout != "TOPIC  PARTITIONS  REPLICAS\n" {
		t.Errorf("--verbose changed stdout: %q", r.stdout)
	}
}

// The live progress line: one per interval on stderr, with rate and
// latency.
func TestPerfProgress(t *testing.T) {
	addr := startBroker(t)
	var out, errOut syncBuffer
	env := &Env{Brokers: []string{addr}, Stdout: &out, Stderr: &errOut, Timeout: 10 * time.Second}
	o := PerfOptions{Topic: "prog", Duration: 600 * time.Millisecond, RecordSize: 10, Rate: 2000, Acks: "all",
		Compression: "none", Partitions: 1, Clients: 1, Progress: 100 * time.Millisecond}
	if err := PerfProduce(context.Background(), env, o); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) < 4 {
		t.Fatalf("%d progress lines in 600ms at 100ms, want at least 4:\n%s", len(lines), errOut.String())
	}
	for _, l := range lines {
		for _, want := range []string{"rec/s", "MB/s", "p50", "p99", "max", "errors 0"} {
			if !strings.Contains(l, want) {
				t.Errorf("progress line %q lacks %q", l, want)
			}
		}
	}
	// A duration-bound run at 2000/s for 0.6s sends about 1200 records.
	if s := out.String(); !strings.Contains(s, "produce prog: 1200 records") {
		t.Errorf("summary:\n%s", s)
	}
}
