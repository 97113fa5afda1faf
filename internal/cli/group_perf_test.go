package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestGroupCommands runs the group commands against startBroker's cluster
// (Strata by default, kfake with -tags kfake).
func TestGroupCommands(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "g", "-p", "2")
	mustRun(t, addr, "a\nb\nc\n", "produce", "g", "--partition", "0")
	mustRun(t, addr, "d\n", "produce", "g", "--partition", "1")

	// Consuming in a group commits its position.
	got := mustRun(t, addr, "", "consume", "g", "-g", "billing", "-f", `%p:%s\n`)
	if n := strings.Count(got, "\n"); n != 4 {
		t.Fatalf("group consume printed %d records, want 4:\n%s", n, got)
	}
	// A second run of the same group has nothing left.
	if got := mustRun(t, addr, "", "consume", "g", "-g", "billing"); got != "" {
		t.Errorf("second group consume = %q, want nothing", got)
	}
	goldenIn(t, testBrokerName, "group_list.txt", mustRun(t, addr, "", "group", "list"))
	goldenIn(t, testBrokerName, "group_describe.txt", mustRun(t, addr, "", "group", "describe", "billing"))

	// Reset: a dry run changes nothing.
	goldenIn(t, testBrokerName, "group_reset_dry.txt", mustRun(t, addr, "", "group", "reset-offsets", "billing", "--topic", "g", "-o", "start"))
	var groups []groupJSON
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "group", "describe", "billing", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	if groups[0].TotalLag != 0 {
		t.Fatalf("lag after dry run = %d, want 0", groups[0].TotalLag)
	}
	mustRun(t, addr, "", "group", "reset-offsets", "billing", "--topic", "g", "-o", "-1", "-p", "0", "--execute")
	mustRun(t, addr, "", "group", "reset-offsets", "billing", "--topic", "g", "--shift-by", "-5", "-p", "1", "--execute")
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "group", "describe", "billing", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	if groups[0].TotalLag != 2 {
		t.Errorf("lag after reset = %d, want 2 (1 on each partition): %+v", groups[0].TotalLag, groups[0].Partitions)
	}
	if got := mustRun(t, addr, "", "consume", "g", "-g", "billing", "-f", `%p:%s\n`); got != "0:c\n1:d\n" && got != "1:d\n0:c\n" {
		t.Errorf("consume after reset = %q, want c and d", got)
	}

	mustRun(t, addr, "", "group", "delete-offsets", "billing", "--topic", "g", "-p", "1")
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "group", "describe", "billing", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	for _, p := range groups[0].Partitions {
		if p.Partition == 1 && p.Committed != -1 {
			t.Errorf("partition 1 still committed at %d after delete-offsets", p.Committed)
		}
	}
	goldenIn(t, testBrokerName, "group_delete.txt", mustRun(t, addr, "", "group", "delete", "billing"))
	if r := run(t, addr, "", "group", "describe", "billing"); r.err == nil {
		t.Errorf("describe of a deleted group succeeded:\n%s", r.stdout)
	}
}

func TestPerf(t *testing.T) {
	addr := startBroker(t)
	for _, mode := range []string{"produce", "e2e"} {
		t.Run(mode, func(t *testing.T) {
			r := run(t, addr, "", "perf", mode, "perf-"+mode, "--records", "2000", "--record-size", "64",
				"--rate", "20000", "--clients", "2", "-p", "2", "--json")
			if r.err != nil {
				t.Fatalf("perf %s: %v\n%s", mode, r.err, r.stderr)
			}
			var rep PerfReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("perf %s --json: %v\n%s", mode, err, r.stdout)
			}
			if rep.Records != 2000 || rep.Errors != 0 || rep.Latency == nil || rep.Latency.Count != 2000 {
				t.Errorf("perf %s report = %+v", mode, rep)
			}
			l := rep.Latency
			if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
				t.Errorf("percentiles out of order: %+v", l)
			}
			// 2000 records at 20000/s are due over 100 ms; the run
			// cannot be much faster than that.
			if rep.Seconds < 0.09 {
				t.Errorf("run took %.3fs, faster than the 0.1s the rate allows", rep.Seconds)
			}
		})
	}
	t.Run("consume", func(t *testing.T) {
		r := run(t, addr, "", "perf", "consume", "perf-produce", "--clients", "2", "--json")
		if r.err != nil {
			t.Fatalf("perf consume: %v\n%s", r.err, r.stderr)
		}
		var rep PerfReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Records != 2000 || rep.Bytes != 2000*64 {
			t.Errorf("perf consume report = %+v, want 2000 records of 64 bytes", rep)
		}
	})
	t.Run("text", func(t *testing.T) {
		out := mustRun(t, addr, "", "perf", "produce", "perf-produce", "--records", "100")
		for _, want := range []string{"throughput", "records/s", "MB/s", "p50", "p99.9", "max", "errors      0"} {
			if !strings.Contains(out, want) {
				t.Errorf("perf output lacks %q:\n%s", want, out)
			}
		}
	})
}
