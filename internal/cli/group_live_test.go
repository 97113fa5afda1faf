package cli

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// member is a `strata consume -g GROUP --follow` running in the background.
type member struct {
	out, errOut syncBuffer
	cancel      context.CancelFunc
	done        chan error
}

func startMember(t *testing.T, addr, topic, group string) *member {
	t.Helper()
	m := &member{done: make(chan error, 1)}
	env := &Env{Brokers: []string{addr}, ClientID: "member", Stdout: &m.out, Stderr: &m.errOut, Timeout: 10 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		m.done <- Consume(ctx, env, ConsumeOptions{Topic: topic, Group: group, Follow: true, Offset: "start", Format: `%p:%o\n`})
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
	m.done <- nil // stop is idempotent
}

// waitFor polls cond for up to 15s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describeGroup(t *testing.T, addr, group string) groupJSON {
	t.Helper()
	var gs []groupJSON
	out := mustRun(t, addr, "", "group", "describe", group, "--json")
	if err := json.Unmarshal([]byte(out), &gs); err != nil || len(gs) != 1 {
		t.Fatalf("group describe --json: %v\n%s", err, out)
	}
	return gs[0]
}

// TestGroupLive runs the group commands against a group with active
// members: describe shows members and assignments, reset-offsets refuses
// to move offsets under them, and a bounded group consume stops as soon as
// its own share of the partitions is read.
func TestGroupLive(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "live", "-p", "2")
	mustRun(t, addr, "a\nb\nc\n", "produce", "live", "-p", "0")
	mustRun(t, addr, "d\n", "produce", "live", "-p", "1")

	a := startMember(t, addr, "live", "workers")
	waitFor(t, "member a to read 4 records", func() bool { return strings.Count(a.out.String(), "\n") == 4 })

	// A bounded consume joining the group gets a share whose records a
	// has read: it must stop at once, not after an idle --timeout.
	start := time.Now()
	r := run(t, addr, "", "consume", "live", "-g", "workers", "--timeout", "20s")
	if r.err != nil {
		t.Fatalf("bounded group consume: %v", r.err)
	}
	if d := time.Since(start); d > 12*time.Second {
		t.Errorf("bounded group consume took %s; it waited for partitions it was not assigned", d)
	}
	if r.stderr != "" {
		t.Errorf("bounded group consume stderr: %q", r.stderr)
	}

	c := startMember(t, addr, "live", "workers")
	waitFor(t, "two members sharing both partitions", func() bool {
		g := describeGroup(t, addr, "workers")
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			if len(m.Assigned) != 1 {
				return false
			}
		}
		return true
	})
	text := mustRun(t, addr, "", "group", "describe", "workers")
	for _, want := range []string{"STATE        Stable", "MEMBERS      2", "TOTAL-LAG    0", "MEMBER", "ASSIGNED", "live:0", "live:1", "COMMITTED", "LOG-END", "LAG"} {
		if !strings.Contains(text, want) {
			t.Errorf("group describe lacks %q:\n%s", want, text)
		}
	}

	// reset-offsets: a dry run shows the plan; --execute refuses.
	dry := mustRun(t, addr, "", "group", "reset-offsets", "workers", "--topic", "live", "-o", "start")
	if !strings.Contains(dry, "dry run: nothing committed") {
		t.Errorf("dry run output:\n%s", dry)
	}
	r = run(t, addr, "", "group", "reset-offsets", "workers", "--topic", "live", "-o", "start", "--execute")
	if r.err == nil || !strings.Contains(r.err.Error(), `group "workers" has 2 active members`) {
		t.Errorf("reset --execute with members: err = %v", r.err)
	}

	// New records are shared out; after both stop, nothing is lagging.
	mustRun(t, addr, "e\n", "produce", "live", "-p", "0")
	mustRun(t, addr, "f\n", "produce", "live", "-p", "1")
	waitFor(t, "the members to read the new records", func() bool {
		all := a.out.String() + c.out.String()
		return strings.Contains(all, "0:3\n") && strings.Contains(all, "1:1\n")
	})
	a.stop()
	c.stop()
	g := describeGroup(t, addr, "workers")
	if g.State != "Empty" || g.TotalLag != 0 || len(g.Partitions) != 2 {
		t.Fatalf("after the members stopped: %+v", g)
	}
	for _, p := range g.Partitions {
		if p.Committed != p.LogEnd {
			t.Errorf("partition %d committed %d, log end %d", p.Partition, p.Committed, p.LogEnd)
		}
	}
}

// reset-offsets to a time, and over every topic the group committed.
func TestGroupResetByTimeAllTopics(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "t1", "-p", "1")
	mustRun(t, addr, "", "topic", "create", "t2", "-p", "1")
	mustRun(t, addr, "a\nb\n", "produce", "t1")
	time.Sleep(20 * time.Millisecond)
	at := time.Now().UnixMilli()
	time.Sleep(20 * time.Millisecond)
	mustRun(t, addr, "c\n", "produce", "t1")
	mustRun(t, addr, "x\n", "produce", "t2")
	mustRun(t, addr, "", "consume", "t1", "-g", "rg")
	mustRun(t, addr, "", "consume", "t2", "-g", "rg")

	out := mustRun(t, addr, "", "group", "reset-offsets", "rg", "--all-topics", "-o", "@"+strconv.FormatInt(at, 10), "--execute", "--json")
	var res struct {
		Executed bool
		Offsets  []resetJSON
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !res.Executed || len(res.Offsets) != 2 {
		t.Fatalf("reset = %+v, want both topics", res)
	}
	// t1: the first record at or after `at` is c (offset 2); t2's only
	// record is after it (offset 0).
	want := map[string]int64{"t1": 2, "t2": 0}
	for _, o := range res.Offsets {
		if o.New != want[o.Topic] || o.Current != map[string]int64{"t1": 3, "t2": 1}[o.Topic] {
			t.Errorf("%s: %+v, want new offset %d", o.Topic, o, want[o.Topic])
		}
	}
	if got := mustRun(t, addr, "", "consume", "t1", "-g", "rg"); got != "c\n" {
		t.Errorf("t1 after reset = %q, want c", got)
	}
	r := run(t, addr, "", "group", "reset-offsets", "rg", "--topic", "t1", "--all-topics", "-o", "start")
	if r.err == nil {
		t.Error("--topic with --all-topics succeeded")
	}
	r = run(t, addr, "", "group", "reset-offsets", "nobody", "--all-topics", "-o", "start")
	if r.err == nil || !strings.Contains(r.err.Error(), "has no committed offsets") {
		t.Errorf("--all-topics of a group without offsets: %v", r.err)
	}
}
