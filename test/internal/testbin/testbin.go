// Package testbin gives process-level tests the strata binary and free
// loopback addresses.
package testbin

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary returns $STRATA_BIN, or builds strata into a temporary directory.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("STRATA_BIN"); b != "" {
		return b
	}
	bin := filepath.Join(t.TempDir(), "strata")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/stratalog/strata/cmd/strata").CombinedOutput()
	if err != nil {
		t.Fatalf("build strata: %v\n%s", err, out)
	}
	return bin
}

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
