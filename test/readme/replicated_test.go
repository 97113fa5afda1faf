package readme

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/test/internal/testbin"
)

// cluster is the three nodes of the README's "A three-node cluster", on
// free ports.
type cluster struct {
	t     *testing.T
	bin   string
	dir   string
	kafka [3]string
	ctrl  [3]string
	http  [3]string
	cmds  [3]*exec.Cmd
	done  [3]chan struct{}
}

func (c *cluster) voters() string {
	var vs []string
	for i, a := range c.ctrl {
		vs = append(vs, fmt.Sprintf("%d@%s", i+1, a))
	}
	return strings.Join(vs, ",")
}

// start runs node id (1-based) as the README does, with the defaults.
func (c *cluster) start(id int) {
	c.t.Helper()
	i := id - 1
	cmd := exec.Command(c.bin, "serve", "--node-id", strconv.Itoa(id), "--listen", c.kafka[i],
		"--controller-listen", c.ctrl[i], "--controller-quorum", c.voters(),
		"--data-dir", filepath.Join(c.dir, fmt.Sprintf("data%d", id)), "--http-listen", c.http[i])
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	c.cmds[i], c.done[i] = cmd, done
}

// kill sends SIGKILL to node id and waits for it to exit.
func (c *cluster) kill(id int) {
	i := id - 1
	if c.cmds[i] == nil {
		return
	}
	c.cmds[i].Process.Kill()
	<-c.done[i]
	c.cmds[i] = nil
}

func (c *cluster) stop() {
	for i, cmd := range c.cmds {
		if cmd != nil {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-c.done[i]:
			case <-time.After(30 * time.Second):
				c.kill(i + 1)
			}
		}
	}
}

// ready waits until every node's /readyz says ready (registered and caught
// up with the metadata log).
func (c *cluster) ready(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for i, h := range c.http {
		for {
			resp, err := http.Get("http://" + h + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", i+1)))
				c.t.Fatalf("node %d not ready within %v (%v):\n%s", i+1, timeout, err, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// A row of `topic describe`'s partition table: partition, leader, epoch,
// replicas, ISR (and a * when under-replicated), log start, high
// watermark, size.
var partitionRow = regexp.MustCompile(`^(\d+)\s+(-?\d+)\s+(\d+)\s+([\d,]+)\s+([\d,]*)( \*)?\s+(\d+)\s+(\d+)\s+([\d.]+ (?:B|KiB|MiB|GiB))$`)

// relabel maps node ids: which node leads what depends on where the
// controller starts placing replicas (the metadata offset), so the session
// is compared up to a renaming of the three nodes, fixed once.
type relabel [4]int32

func (r relabel) ids(list string) []int32 {
	var out []int32
	for _, s := range strings.Split(list, ",") {
		if s == "" {
			continue
		}
		n, _ := strconv.Atoi(s)
		if n >= 1 && n <= 3 {
			out = append(out, r[n])
		} else {
			out = append(out, int32(n))
		}
	}
	return out
}

func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// normalizeRow renames the nodes of a partition row, sorts its ISR (whose
// order is the order replicas joined it) and hides the high watermark and
// size (the CLI's producer spreads records over partitions as batches
// fill); it returns the high watermark apart, for the caller to check the
// sum. Lines that are no partition row come back as normalize makes them.
func normalizeRow(line string, r relabel) (string, int64, bool) {
	m := partitionRow.FindStringSubmatch(strings.TrimRight(line, " "))
	if m == nil {
		return normalize(line), 0, false
	}
	leader, _ := strconv.Atoi(m[2])
	if leader >= 1 && leader <= 3 {
		leader = int(r[leader])
	}
	isr := r.ids(m[5])
	slices.Sort(isr)
	hw, _ := strconv.ParseInt(m[8], 10, 64)
	return fmt.Sprintf("%s %d %s %s %s%s %s <HW> <SIZE>", m[1], leader, m[3], joinIDs(r.ids(m[4])), joinIDs(isr), m[6], m[7]), hw, true
}

// compareRows compares a command's output with the README's under r
// (actual node id -> README's): lines match as match does, partition rows
// after normalizeRow, and the high watermarks add up to the README's (every
// record produced so far is there).
func compareRows(want, got []string, r relabel) bool {
	ident := relabel{0, 1, 2, 3}
	var w, g []string
	var wantHW, gotHW int64
	for _, l := range want {
		n, hw, _ := normalizeRow(l, ident)
		w, wantHW = append(w, n), wantHW+hw
	}
	for _, l := range got {
		n, hw, _ := normalizeRow(l, r)
		g, gotHW = append(g, n), gotHW+hw
	}
	return wantHW == gotHW && match(w, g)
}

var (
	killStep    = regexp.MustCompile(`^kill -9 <node (\d)>`)
	restartStep = regexp.MustCompile(`^strata serve --node-id (\d) \.\.\. &`)
)

// TestReplicatedSession runs the README's "Replicated topics" session
// against three fresh nodes started as "A three-node cluster" starts them
// (on free ports, with the default settings): an rf=3 topic, acks=all
// produce, kill -9 of the leader of partition 0, produce again (which
// waits for the dead node to be fenced, about 10 s), kcat reading every
// record once, the node restarted and back in every ISR. Outputs are
// compared with the README's up to a renaming of the nodes (fixed by the
// first partition table), with ISRs as sets and high watermarks and sizes
// as placeholders whose sum must match. It needs kcat.
func TestReplicatedSession(t *testing.T) {
	if testing.Short() {
		t.Skip("three nodes and a 10 s fencing wait")
	}
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("the session uses kcat (apt-get install kcat)")
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps := consoleBlock(t, string(b), "### Replicated topics")
	if len(steps) < 6 {
		t.Fatalf("the session has %d commands; the README changed shape", len(steps))
	}
	c := &cluster{t: t, bin: testbin.Binary(t), dir: t.TempDir()}
	for i := range 3 {
		c.kafka[i], c.ctrl[i], c.http[i] = testbin.FreeAddr(t), testbin.FreeAddr(t), testbin.FreeAddr(t)
	}
	for id := 1; id <= 3; id++ {
		c.start(id)
	}
	defer c.stop()
	c.ready(60 * time.Second)

	env := append(os.Environ(), "STRATA_BROKERS="+strings.Join(c.kafka[:], ","),
		"PATH="+filepath.Dir(c.bin)+string(os.PathListSeparator)+os.Getenv("PATH"), "NO_COLOR=1")
	run := func(cmdline string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", cmdline)
		cmd.Env, cmd.Dir = env, c.dir
		out, _ := cmd.CombinedOutput()
		if len(out) == 0 {
			return nil
		}
		return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	}

	var r relabel // actual node id -> README's; zero until the first table
	var inverse [4]int
	converging := false // after a restart: await the README's state
	for _, s := range steps {
		if m := killStep.FindStringSubmatch(s.cmd); m != nil {
			if r == (relabel{}) {
				t.Fatalf("$ %s: no partition table before it names the node", s.cmd)
			}
			n, _ := strconv.Atoi(m[1])
			c.kill(inverse[n])
			t.Logf("$ %s: killed node %d", s.cmd, inverse[n])
			continue
		}
		if m := restartStep.FindStringSubmatch(s.cmd); m != nil {
			n, _ := strconv.Atoi(m[1])
			c.start(inverse[n])
			t.Logf("$ %s: started node %d", s.cmd, inverse[n])
			converging = true
			continue
		}
		start := time.Now()
		got := run(s.cmd)
		if r == (relabel{}) && slices.ContainsFunc(got, partitionRow.MatchString) {
			for _, p := range [][3]int32{{1, 2, 3}, {1, 3, 2}, {2, 1, 3}, {2, 3, 1}, {3, 1, 2}, {3, 2, 1}} {
				cand := relabel{0, p[0], p[1], p[2]}
				if compareRows(s.want, got, cand) {
					r = cand
					for actual := 1; actual <= 3; actual++ {
						inverse[cand[actual]] = actual
					}
					t.Logf("nodes 1, 2, 3 here are the README's %d, %d, %d", p[0], p[1], p[2])
					break
				}
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for converging && !compareRows(s.want, got, r) && time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			got = run(s.cmd)
		}
		if !compareRows(s.want, got, r) {
			t.Errorf("$ %s\nREADME shows:\n%s\nit printed:\n%s", s.cmd, strings.Join(s.want, "\n"), strings.Join(got, "\n"))
		}
		t.Logf("$ %s (%v)", s.cmd, time.Since(start).Round(100*time.Millisecond))
	}
}

func TestNormalizeRow(t *testing.T) {
	r := relabel{0, 2, 3, 1} // actual 1 is the README's 2, ...
	got, hw, ok := normalizeRow("0          1       1      3,1,2     2,1 *  0          18174           237.7 KiB", r)
	if !ok || hw != 18174 || got != "0 2 1 1,2,3 2,3 * 0 <HW> <SIZE>" {
		t.Fatalf("normalizeRow: %q %d %v", got, hw, ok)
	}
	want := []string{"PARTITION  LEADER", "0          3       0      3,1,2     3,1,2  0          10              1 KiB", "..."}
	// Actual 2 is the README's 3 and 3 its 2: replicas 2,3,1 read 3,2,1.
	if compareRows(want, []string{"PARTITION  LEADER", "0          2       0      2,3,1     1,2,3  0          10              2 KiB"}, relabel{0, 1, 3, 2}) {
		t.Fatal("replicas in another order matched")
	}
	if !compareRows(want, []string{"PARTITION  LEADER", "0          1       0      1,2,3     3,2,1  0          10              2 KiB", "", "CONFIG"}, relabel{0, 3, 1, 2}) {
		t.Fatal("1,2,3 under 1->3 2->1 3->2 is 3,1,2; the ISR is a set; sizes vary")
	}
	if compareRows(want, []string{"PARTITION  LEADER", "0          1       0      1,2,3     3,2,1  0          11              2 KiB"}, relabel{0, 3, 1, 2}) {
		t.Fatal("high watermarks that add up to another total matched")
	}
}
