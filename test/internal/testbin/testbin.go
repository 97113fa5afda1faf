// Package testbin gives process-level tests the strata binary and free
// loopback addresses.
package testbin

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// FreeAddr returns a loopback host:port that was free a moment ago, for a
// process started afterwards to listen on. The port is taken below the
// kernel's ephemeral range (ip_local_port_range), where the kernel picks
// the source ports of outgoing connections: a port from there (what
// listening on :0 gives) can be taken by any client connection before the
// process binds it ("address already in use" at start, seen in the
// cluster tests). Ports handed out once are not handed out again by this
// process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := belowEphemeral()
	for range 1000 {
		port := lo + rand.IntN(hi-lo)
		if !claim(port) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port below the ephemeral range")
	return ""
}

var (
	claimedMu sync.Mutex
	claimed   = map[int]bool{}
)

func claim(port int) bool {
	claimedMu.Lock()
	defer claimedMu.Unlock()
	if claimed[port] {
		return false
	}
	claimed[port] = true
	return true
}

// belowEphemeral is the range ports are picked from: from 10000 up to the
// start of the ephemeral range (32768 when it cannot be read).
func belowEphemeral() (lo, hi int) {
	lo, hi = 10000, 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	if f := strings.Fields(string(b)); len(f) == 2 {
		if n, err := strconv.Atoi(f[0]); err == nil && n > lo+1000 {
			hi = n
		}
	}
	return lo, hi
}
