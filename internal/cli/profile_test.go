package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// runWithEnv runs the CLI with an environment of its own (no STRATA_BROKERS
// unless given), for the profile tests.
func runWithEnv(t *testing.T, environ map[string]string, args ...string) (result, *Env) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	root := &cobra.Command{Use: "strata", SilenceUsage: true, SilenceErrors: true}
	addCommands(root, env, func(k string) string { return environ[k] })
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return result{out.String(), errOut.String(), err}, env
}

// A profile saves the connection flags; commands then use it, a flag or
// variable given explicitly still wins, --profile picks another, and the
// file is readable by its owner only.
func TestProfiles(t *testing.T) {
	addr := startBroker(t)
	cfgPath := filepath.Join(t.TempDir(), "profiles.json")
	environ := map[string]string{"STRATA_CONFIG": cfgPath}
	if r, _ := runWithEnv(t, environ, "--brokers", addr, "profile", "create", "local"); r.err != nil {
		t.Fatalf("create: %v %s", r.err, r.stderr)
	}
	if r, _ := runWithEnv(t, environ, "--brokers", "10.255.255.1:9092", "--tls", "--sasl-mechanism", "SCRAM-SHA-512", "--user", "alice", "--password", "s3cret", "profile", "create", "far"); r.err != nil {
		t.Fatalf("create far: %v", r.err)
	}
	st, err := os.Stat(cfgPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("profiles file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}

	// The first profile created is the current one: no --brokers needed.
	r, env := runWithEnv(t, environ, "topic", "create", "from-profile")
	if r.err != nil {
		t.Fatalf("topic create with the current profile: %v %s", r.err, r.stderr)
	}
	if env.Brokers[0] != addr {
		t.Errorf("brokers %v, want the profile's %s", env.Brokers, addr)
	}
	list, _ := runWithEnv(t, environ, "profile", "list")
	if !strings.Contains(list.stdout, "local*") || !strings.Contains(list.stdout, "SCRAM-SHA-512") || strings.Contains(list.stdout, "s3cret") {
		t.Errorf("profile list:\n%s", list.stdout)
	}

	// --profile picks the other one; its settings apply...
	_, env = runWithEnv(t, environ, "--profile", "far", "profile", "list")
	if env.Brokers[0] != "10.255.255.1:9092" || !env.Security.TLS || env.Security.User != "alice" || env.Security.Password != "s3cret" {
		t.Errorf("--profile far gave %v %+v", env.Brokers, env.Security)
	}
	// ... but an explicit flag or variable wins over the profile.
	_, env = runWithEnv(t, map[string]string{"STRATA_CONFIG": cfgPath, "STRATA_PROFILE": "far", "STRATA_USER": "bob"}, "--brokers", addr, "profile", "list")
	if env.Brokers[0] != addr || env.Security.User != "bob" || env.Security.Mechanism != "SCRAM-SHA-512" {
		t.Errorf("explicit settings over the profile: %v %+v", env.Brokers, env.Security)
	}

	if r, _ := runWithEnv(t, environ, "profile", "use", "nope"); r.err == nil || !strings.Contains(r.err.Error(), `profile "nope" does not exist`) {
		t.Errorf("use of a missing profile: %v", r.err)
	}
	if r, _ := runWithEnv(t, environ, "--profile", "nope", "topic", "list"); r.err == nil || !strings.Contains(r.err.Error(), `profile "nope" does not exist`) {
		t.Errorf("--profile of a missing profile: %v", r.err)
	}
	if r, _ := runWithEnv(t, environ, "profile", "delete", "local"); r.err != nil {
		t.Fatal(r.err)
	}
	_, env = runWithEnv(t, environ, "profile", "list")
	if env.Brokers[0] != DefaultBrokers {
		t.Errorf("with the current profile deleted, brokers %v, want the default", env.Brokers)
	}
}
