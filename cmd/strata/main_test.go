package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

// The tests run the real main in a child process (this test binary, with
// STRATA_TEST_MAIN=1) to see what a user or a script sees: the exit code
// and the exact stderr.
func TestMain(m *testing.M) {
	if os.Getenv("STRATA_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type exitResult struct {
	code           int
	stdout, stderr string
}

// strata runs the binary with args; env is added to a clean environment.
func strata(t *testing.T, env []string, stdin string, args ...string) exitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append([]string{"STRATA_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running strata %v: %v", args, err)
	}
	return exitResult{code, out.String(), errOut.String()}
}

func startStrata(t *testing.T) string {
	t.Helper()
	cfg, err := config.LoadBroker("", nil, map[string]string{"listen": "127.0.0.1:0", "data.dir": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv.Addr().String()
}

func TestExitCodes(t *testing.T) {
	addr := startStrata(t)
	env := []string{"STRATA_BROKERS=" + addr}

	ok := strata(t, env, "", "topic", "create", "t", "-p", "2")
	if ok.code != 0 || ok.stderr != "" || !strings.Contains(ok.stdout, "created") {
		t.Fatalf("topic create: exit %d, stdout %q, stderr %q", ok.code, ok.stdout, ok.stderr)
	}
	if r := strata(t, env, "a\nb\n", "produce", "t"); r.code != 0 || r.stdout != "produced 2 records to t: 2 acknowledged, 0 failed\n" {
		t.Errorf("produce: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	tests := []struct {
		name string
		env  []string
		args []string
		want string // the whole stderr
	}{
		{"unreachable broker", nil, []string{"topic", "list", "--brokers", "127.0.0.1:1", "--timeout", "500ms"},
			"strata: list topics: cannot connect to brokers 127.0.0.1:1: unable to dial: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{"--brokers wins over STRATA_BROKERS", env, []string{"cluster", "info", "--brokers", "127.0.0.1:1", "--timeout", "500ms"},
			"strata: load cluster metadata: cannot connect to brokers 127.0.0.1:1: unable to dial: dial tcp 127.0.0.1:1: connect: connection refused\n"},
		{"unknown topic", env, []string{"topic", "describe", "nope"}, "strata: topic \"nope\" does not exist\n"},
		{"bad offset spec", env, []string{"consume", "t", "-o", "yesterday"},
			"strata: bad offset \"yesterday\": want start, end, an offset N, -N (N before the end) or @<unix-ms>\n"},
		{"invalid config value", env, []string{"topic", "alter-config", "t", "-c", "retention.ms=soon", "--json"},
			"strata: alter config of topic t: invalid config: retention.ms=\"soon\" is not a valid long (INVALID_CONFIG)\n"},
		{"unknown command", env, []string{"topc", "list"}, "strata: unknown command \"topc\" for \"strata\" Did you mean this? topic\n"},
		{"unknown flag", env, []string{"consume", "t", "--bogus"}, "strata: unknown flag: --bogus\n"},
		{"missing argument", env, []string{"consume"}, "strata: accepts 1 arg(s), received 0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := strata(t, tt.env, "", tt.args...)
			if r.code != 1 {
				t.Errorf("exit code %d, want 1", r.code)
			}
			if r.stderr != tt.want {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.want)
			}
		})
	}
}

// Without --brokers or STRATA_BROKERS the default is localhost:9092; with
// STRATA_BROKERS set that is the default.
func TestBrokersDefault(t *testing.T) {
	if r := strata(t, nil, "", "topic", "list", "--help"); !strings.Contains(r.stdout, `(default "localhost:9092")`) {
		t.Errorf("help without STRATA_BROKERS lacks the localhost:9092 default:\n%s", r.stdout)
	}
	if r := strata(t, []string{"STRATA_BROKERS=10.1.2.3:9999"}, "", "topic", "list", "--help"); !strings.Contains(r.stdout, `(default "10.1.2.3:9999")`) {
		t.Errorf("help with STRATA_BROKERS lacks it as the default:\n%s", r.stdout)
	}
}

func TestOneLine(t *testing.T) {
	err := errors.New("unknown command \"x\" for \"strata\"\n\nDid you mean this?\n\ttopic\n")
	if got, want := oneLine(err), `unknown command "x" for "strata" Did you mean this? topic`; got != want {
		t.Errorf("oneLine = %q, want %q", got, want)
	}
}

// Flag values that do not parse are explained without Go's wording.
func TestPlainFlagError(t *testing.T) {
	for in, want := range map[string]string{
		`invalid argument "abc" for "-p, --partitions" flag: strconv.ParseInt: parsing "abc": invalid syntax`:        `invalid argument "abc" for "-p, --partitions" flag: "abc" is not a whole number`,
		`invalid argument "99999999999" for "--x" flag: strconv.ParseInt: parsing "99999999999": value out of range`: `invalid argument "99999999999" for "--x" flag: 99999999999 is out of range`,
		`invalid argument "maybe" for "--y" flag: strconv.ParseBool: parsing "maybe": invalid syntax`:                `invalid argument "maybe" for "--y" flag: "maybe" is not true or false`,
		`invalid argument "5x" for "--timeout" flag: time: unknown unit "x" in duration "5x"`:                        `invalid argument "5x" for "--timeout" flag: "5x" is not a duration (write it as 500ms, 10s, 2m or 1h)`,
		`invalid argument "soon" for "--timeout" flag: time: invalid duration "soon"`:                                `invalid argument "soon" for "--timeout" flag: "soon" is not a duration (write it as 500ms, 10s, 2m or 1h)`,
		`unknown flag: --nope`: `unknown flag: --nope`,
	} {
		if got := plainFlagError(errors.New(in)).Error(); got != want {
			t.Errorf("plainFlagError(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestVersion: --version prints one line, `version --json` the fields.
func TestVersion(t *testing.T) {
	r := strata(t, nil, "", "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "strata ") || !strings.Contains(r.stdout, runtime.Version()) || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("--version: %+v", r)
	}
	r = strata(t, nil, "", "version", "--json")
	var info struct {
		Version   string `json:"version"`
		Commit    string `json:"commit"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &info); r.code != 0 || err != nil || info.Version == "" || info.Commit == "" || info.GoVersion != runtime.Version() {
		t.Fatalf("version --json: %+v (%v)", r, err)
	}
}
