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
