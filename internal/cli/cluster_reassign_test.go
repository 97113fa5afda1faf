package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// currentAssignment is the topic's replicas as `topic describe --json`
// shows them.
func currentAssignment(t *testing.T, addr, topic string) assignment {
	t.Helper()
	var desc []topicJSON
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "describe", topic, "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	a := assignment{topic: {}}
	for _, p := range desc[0].Partitions {
		a[topic][p.Partition] = p.Replicas
	}
	return a
}

func writePlan(t *testing.T, a assignment) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(path, []byte(encodePlan(a.plan())), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReassign(t *testing.T) {
	c, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "r", "-p", "3", "-r", "2")
	cur := currentAssignment(t, addr, "r")

	// --generate: a plan onto brokers 1 and 2, on stdout; the current
	// assignment and what moves on stderr.
	r := run(t, addr, "", "cluster", "reassign", "--generate", "--topics", "r", "--broker-ids", "1,2")
	if r.err != nil {
		t.Fatalf("generate: %v", r.err)
	}
	plan, err := readPlan(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatalf("generate printed no plan: %v\n%s", err, r.stdout)
	}
	next := assignment{"r": {}}
	for _, p := range plan.Partitions {
		next["r"][p.Partition] = p.Replicas
	}
	checkPlan(t, cur, next, []int32{1, 2})
	onZero := 0 // the replicas that must move: those on broker 0
	for _, rs := range cur["r"] {
		if slices.Contains(rs, 0) {
			onZero++
		}
	}
	moved, total, _ := movedReplicas(cur, next)
	if moved != onZero || total != 6 || !strings.Contains(r.stderr, fmt.Sprintf("the plan moves %d of 6 replicas", onZero)) || !strings.Contains(r.stderr, encodePlan(cur.plan())) {
		t.Errorf("moved %d of %d; stderr:\n%s", moved, total, r.stderr)
	}

	// --execute: kfake accepts and does nothing, so --verify finds the
	// replicas where they were: not done, exit status 2.
	path := writePlan(t, next)
	out := mustRun(t, addr, "", "cluster", "reassign", "--execute", "--plan", path)
	if strings.Count(out, "started") != 3 {
		t.Errorf("execute:\n%s", out)
	}
	unchanged := 0 // kfake leads at random: a partition may be on 1 and 2 already
	for p, rs := range next["r"] {
		if slices.Equal(rs, cur["r"][p]) {
			unchanged++
		}
	}
	r = run(t, addr, "", "cluster", "reassign", "--verify", "--plan", path)
	want := fmt.Sprintf("reassignment not complete: %d of 3 partitions done", unchanged)
	if ExitCode(r.err) != 2 || r.err.Error() != want || strings.Count(r.stdout, "not reassigned (replicas") != 3-unchanged {
		t.Errorf("verify of an unapplied plan: exit %d, %v\n%s", ExitCode(r.err), r.err, r.stdout)
	}

	// A plan that is the current assignment is done.
	if out := mustRun(t, addr, "", "cluster", "reassign", "--verify", "--plan", writePlan(t, cur)); strings.Count(out, "done") != 3 {
		t.Errorf("verify of the current assignment:\n%s", out)
	}

	// In progress, and a partition the cluster does not have.
	answer(c, kmsg.ListPartitionReassignments, func(req kmsg.Request) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
		resp.Version = req.GetVersion()
		resp.Topics = []kmsg.ListPartitionReassignmentsResponseTopic{{Topic: "r", Partitions: []kmsg.ListPartitionReassignmentsResponseTopicPartition{
			{Partition: 0, Replicas: []int32{0, 1, 2}, AddingReplicas: []int32{2}, RemovingReplicas: []int32{0}}}}}
		return resp
	})
	withGhost := cur.plan()
	withGhost.Partitions = append(withGhost.Partitions, planPartition{Topic: "r", Partition: 9, Replicas: []int32{1}})
	ghost := filepath.Join(t.TempDir(), "ghost.json")
	if err := os.WriteFile(ghost, []byte(encodePlan(withGhost)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, addr, "", "cluster", "reassign", "--verify", "--plan", ghost)
	if ExitCode(r.err) != 1 || r.err.Error() != "verify reassignment of r/9: no such partition" {
		t.Errorf("verify with an unknown partition: exit %d, %v", ExitCode(r.err), r.err)
	}
	goldenIn(t, "kfake", "reassign_verify.txt", r.stdout)

	// --cancel: of a plan (nothing in progress on kfake), and of all.
	golden2 := mustRun(t, addr, "", "cluster", "reassign", "--cancel", "--plan", path)
	goldenIn(t, "kfake", "reassign_cancel.txt", golden2)
	if out := mustRun(t, addr, "", "cluster", "reassign", "--cancel"); out != "no reassignment in progress\n" {
		t.Errorf("cancel with nothing in progress: %q", out)
	}
}

func TestReassignErrors(t *testing.T) {
	_, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "r", "-p", "1", "-r", "3")
	plan := writePlan(t, assignment{"r": {0: {0, 1, 2}}})
	_, old := newKfake(t, 1, withoutAPIs(kmsg.AlterPartitionAssignments, kmsg.ListPartitionReassignments))
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"partitions":[{"topic":"r","partition":0,"replicas":[1,1]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		args []string
		want string
	}{
		{addr, nil, "give one of --generate, --execute, --verify and --cancel"},
		{addr, []string{"--execute", "--verify", "--plan", plan}, "give one of --generate, --execute, --verify and --cancel"},
		{addr, []string{"--generate", "--topics", "r"}, "--generate needs --topics and --broker-ids"},
		{addr, []string{"--execute"}, "--execute and --verify need --plan FILE"},
		{addr, []string{"--generate", "--topics", "nope", "--broker-ids", "1"}, `topic "nope" does not exist`},
		{addr, []string{"--generate", "--topics", "r", "--broker-ids", "1,2,9"}, "broker 9 is not a live broker of the cluster (live: 0,1,2)"},
		{addr, []string{"--generate", "--topics", "r", "--broker-ids", "1,2"}, "topic r partition 0 has 3 replicas, more than the 2 brokers given"},
		{addr, []string{"--execute", "--plan", bad}, bad + ": reassignment JSON: partition r/0: replicas 1,1: want distinct broker ids >= 0"},
		{addr, []string{"--execute", "--plan", "/nonexistent/plan.json"}, "open /nonexistent/plan.json: no such file or directory"},
		{old, []string{"--execute", "--plan", plan}, "reassign partitions: the cluster does not support AlterPartitionAssignments (API 45); it needs brokers that implement it"},
		{old, []string{"--verify", "--plan", plan}, "list reassignments: the cluster does not support ListPartitionReassignments (API 46); it needs brokers that implement it"},
		{old, []string{"--cancel"}, "cancel reassignments: the cluster does not support AlterPartitionAssignments (API 45); it needs brokers that implement it"},
	}
	for _, tt := range tests {
		r := run(t, tt.addr, "", append([]string{"cluster", "reassign"}, tt.args...)...)
		if r.err == nil || r.err.Error() != tt.want {
			t.Errorf("reassign %v: error %v, want %q", tt.args, r.err, tt.want)
		}
	}
}
