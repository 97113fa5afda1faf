package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeBusyPort: `strata serve` on a taken port exits 1 with one line
// naming the address and the setting, and creates no data dir.
func TestServeBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	for _, tc := range []struct {
		flag, key string
	}{
		{"--listen", "listen (--listen)"},
		{"--http-listen", "http.listen"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		args := []string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", tc.flag, addr}
		r := strata(t, nil, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "strata: ") || !strings.Contains(r.stderr, addr) || !strings.Contains(r.stderr, tc.key) {
			t.Errorf("serve %s %s: exit %d, stderr %q; want 1 and an error naming %s and %s", tc.flag, addr, r.code, r.stderr, addr, tc.key)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("serve %s on a busy port: data dir %v, want none", tc.flag, err)
		}
	}
	// A malformed cluster id is refused the same way.
	dir := filepath.Join(t.TempDir(), "data")
	r := strata(t, nil, "", "serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--http-listen", "", "--cluster-id", "my-cluster")
	if r.code != 1 || !strings.Contains(r.stderr, "22 characters") {
		t.Errorf("serve --cluster-id my-cluster: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve with a bad cluster id: data dir %v, want none", err)
	}
}

// TestServeIgnoresProfiles: the commands that connect to no cluster read
// no CLI profile, so a profiles file that cannot be read (another user's
// HOME, as running the broker with setpriv or sudo -u leaves it) does not
// stop them; the client commands still report it.
func TestServeIgnoresProfiles(t *testing.T) {
	bad := t.TempDir() // a directory where the profiles file should be
	env := []string{"STRATA_CONFIG=" + bad}
	if r := strata(t, env, "", "version"); r.code != 0 {
		t.Fatalf("version with an unreadable profiles file: exit %d, %s", r.code, r.stderr)
	}
	if r := strata(t, env, "", "config", "list"); r.code != 0 {
		t.Fatalf("config list with an unreadable profiles file: exit %d, %s", r.code, r.stderr)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r := strata(t, env, "", "serve", "--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", busy.Addr().String(), "--http-listen", "")
	if r.code != 1 || strings.Contains(r.stderr, "profiles") || !strings.Contains(r.stderr, busy.Addr().String()) {
		t.Fatalf("serve with an unreadable profiles file: exit %d, stderr %q; want the busy port, not the profiles", r.code, r.stderr)
	}
	if r := strata(t, env, "", "topic", "list"); r.code == 0 || !strings.Contains(r.stderr, "profiles") {
		t.Fatalf("topic list with an unreadable profiles file: exit %d, stderr %q; want a profiles error", r.code, r.stderr)
	}
}
