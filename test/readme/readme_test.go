package readme

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/test/internal/testbin"
)

// step is one `$ command` of a console block and the lines it prints.
type step struct {
	cmd  string
	want []string
}

// consoleBlock returns the steps of the first ```console block after the
// line containing marker.
func consoleBlock(t *testing.T, readme, marker string) []step {
	t.Helper()
	i := strings.Index(readme, marker)
	if i < 0 {
		t.Fatalf("README.md has no %q", marker)
	}
	rest := readme[i:]
	start := strings.Index(rest, "```console\n")
	if start < 0 {
		t.Fatalf("no console block after %q", marker)
	}
	rest = rest[start+len("```console\n"):]
	end := strings.Index(rest, "\n```")
	if end < 0 {
		t.Fatalf("unterminated console block after %q", marker)
	}
	var steps []step
	for _, line := range strings.Split(rest[:end], "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, step{cmd: cmd})
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("console block after %q: output before the first command: %q", marker, line)
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
	}
	return steps
}

// What varies from one run to the next: ids (topic ids, cluster ids, the
// CLI's member ids) and timestamps.
var placeholders = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`strata-cli-[0-9a-f-]{36}`), "strata-cli-<MEMBER>"},
	{regexp.MustCompile(`\b1[0-9]{12}\b`), "<TIMESTAMP>"},
}

// idRun is a run of the characters of a base64url id (topic and cluster
// ids are 22 of them). Not \b-bounded: '-' is not a word character, so an
// id starting or ending with '-' (one in 32) had no word boundary there.
var idRun = regexp.MustCompile(`[A-Za-z0-9_-]+`)

func normalize(line string) string {
	for _, p := range placeholders {
		line = p.re.ReplaceAllString(line, p.with)
	}
	line = idRun.ReplaceAllStringFunc(line, func(run string) string {
		if len(run) == 22 {
			return "<ID>"
		}
		return run
	})
	return strings.TrimRight(line, " ")
}

// match compares output lines with the README's: a README line "..."
// stands for any number of lines.
func match(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if match(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && normalize(want[0]) == normalize(got[0]) && match(want[1:], got[1:])
}

// unordered says whether a command's lines come in no defined order: a
// consumer reading several partitions interleaves them as fetches return.
func unordered(cmd string) bool {
	return strings.HasPrefix(cmd, "strata consume") && !strings.Contains(cmd, " -p ")
}

// TestCommandLineSession runs the README's session of "The command line"
// (topics, produce, describe, consume, cluster info, a refused config)
// against a fresh broker, command by command, and compares the output,
// stdout and stderr as a terminal shows them, with the README's.
func TestCommandLineSession(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	steps := consoleBlock(t, string(b), "From a real session\nagainst `strata serve`:")
	if len(steps) < 5 {
		t.Fatalf("the session has %d commands; the README changed shape", len(steps))
	}
	bin := testbin.Binary(t)
	addr := testbin.FreeAddr(t)
	dir := t.TempDir()
	srv := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--http-listen", "")
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		srv.Process.Signal(os.Interrupt)
		srv.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Fatalf("strata serve did not listen on %s:\n%s", addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}

	env := append(os.Environ(), "STRATA_BROKERS="+addr, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"), "NO_COLOR=1")
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-c", s.cmd)
		cmd.Env = env
		cmd.Dir = dir
		out, _ := cmd.CombinedOutput() // a refusal's exit code is part of the session
		cancel()
		got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		if len(out) == 0 {
			got = nil
		}
		want := s.want
		if unordered(s.cmd) {
			got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
		}
		if !match(want, got) {
			t.Errorf("$ %s\nREADME shows:\n%s\nit printed:\n%s", s.cmd, strings.Join(s.want, "\n"), strings.Join(got, "\n"))
		}
	}
}

func TestMatch(t *testing.T) {
	want := []string{"CONFIG  VALUE", "a  1", "...", "z  26", "..."}
	if !match(want, []string{"CONFIG  VALUE", "a  1", "b  2", "c  3", "z  26"}) {
		t.Error("... should match the lines between")
	}
	if match(want, []string{"CONFIG  VALUE", "a  2", "z  26"}) {
		t.Error("a changed value matched")
	}
	if !match([]string{"ID  7HO5hLIHxWjlwdiwYGx-DQ", "{\"timestamp\":1795965109480}"}, []string{"ID  96HDAok-mUNOXze4uCVyJQ", "{\"timestamp\":1796305881732}"}) {
		t.Error("ids and timestamps should be placeholders")
	}
}

// Ids are replaced whatever their first and last characters.
func TestNormalizeIDs(t *testing.T) {
	for in, want := range map[string]string{
		"CLUSTER-ID  -dczSftbfMnDXKj6dLKXqA":    "CLUSTER-ID  <ID>",
		"CLUSTER-ID  CZyoQCDvCAD9j8ml6ZgHy-":    "CLUSTER-ID  <ID>",
		"TOPIC orders _ZyoQCDvCAD9j8ml6ZgHyg 3": "TOPIC orders <ID> 3",
		"orders-0 1796408236428":                "orders-0 <TIMESTAMP>",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
