package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCleanShutdownRecorded: a clean stop leaves the broker epoch in the
// data dir; the next start takes it (and registers with it as
// PreviousBrokerEpoch), so a crash after that start counts as unclean.
func TestCleanShutdownRecorded(t *testing.T) {
	n := startNode(t, "", nil)
	path := filepath.Join(n.dir, cleanShutdownFile)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("clean-shutdown file while running: %v", err)
	}
	epoch := n.srv.link.Epoch()
	n.stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "0" || epoch != 0 {
		t.Fatalf("recorded %q, registered epoch %d", got, epoch)
	}
	n.start()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("clean-shutdown file after the start: %v", err)
	}
	if got, err := takeCleanShutdown(n.dir); err != nil || got != -1 {
		t.Fatalf("takeCleanShutdown with no record = %d, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := takeCleanShutdown(n.dir); err != nil || got != -1 {
		t.Fatalf("takeCleanShutdown of garbage = %d, %v", got, err)
	}
}
