package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata")

// result is what one CLI invocation did.
type result struct {
	stdout, stderr string
	err            error // non-nil means a non-zero exit code from main
}

// run executes the strata CLI with args against addr, the way main does,
// with stdin, stdout and stderr as buffers.
func run(t *testing.T, addr, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	root := &cobra.Command{Use: "strata", SilenceUsage: true, SilenceErrors: true}
	addCommands(root, env, func(k string) string {
		if k == "STRATA_BROKERS" {
			return addr
		}
		return ""
	})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return result{out.String(), errOut.String(), err}
}

// mustRun runs the CLI and fails the test on a non-zero exit.
func mustRun(t *testing.T, addr, stdin string, args ...string) string {
	t.Helper()
	r := run(t, addr, stdin, args...)
	if r.err != nil {
		t.Fatalf("strata %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// normalisers replace what changes between runs (ports, topic ids,
// timestamps, member ids) before comparing with golden files.
var normalisers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1(\s+)\d+`), "127.0.0.1${1}PORT"},
	{regexp.MustCompile(`(ID\s+)[A-Za-z0-9_-]{22}\b`), "${1}TOPIC-ID"},
	{regexp.MustCompile(`"id": "[A-Za-z0-9_-]{22}"`), `"id": "TOPIC-ID"`},
	{regexp.MustCompile(`"port": \d+`), `"port": PORT`},
	{regexp.MustCompile(`\b\d{13}\b`), "TIMESTAMP"},
	{regexp.MustCompile(`(CLUSTER-ID\s+)\S+`), "${1}CLUSTER-ID"},
	{regexp.MustCompile(`"cluster_id": "[^"]*"`), `"cluster_id": "CLUSTER-ID"`},
	{regexp.MustCompile(`kgo-[0-9a-f-]+|strata-cli-[0-9a-f-]{36}`), "MEMBER-ID"},
}

func normalise(s string) string {
	for _, n := range normalisers {
		s = n.re.ReplaceAllString(s, n.with)
	}
	return s
}

// golden compares got (normalised) with testdata/name, or rewrites it
// under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenIn(t, testBrokerName, name, got)
}

// goldenIn is golden for output of a given kind of broker (testdata/dir).
func goldenIn(t *testing.T, dir, name, got string) {
	t.Helper()
	got = normalise(got)
	path := filepath.Join("testdata", dir, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// withoutKeys is the newest versions franz-go knows, less keys.
func withoutKeys(keys ...kmsg.Key) *kversion.Versions {
	v := kversion.Stable()
	for _, k := range keys {
		v.SetMaxKeyVersion(int16(k), -1)
	}
	return v
}
