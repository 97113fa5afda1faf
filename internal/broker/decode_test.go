package broker

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"

	"github.com/stratalog/strata/internal/network"
)

// The decoding budget: no request may cost more than a small constant
// times its size to decode. The constants are three orders of magnitude
// above what decoding costs on a loaded 2-core machine (a few hundred
// nanoseconds per input) and three below what the unbounded tag loop of
// kmsg v1.15.0 cost (seconds for 20 bytes), so the test separates the two
// without depending on the machine.
const (
	decodeBudgetBase    = 20 * time.Millisecond
	decodeBudgetPerByte = 2 * time.Microsecond
)

// threadCPU is the CPU time consumed by the calling OS thread.
func threadCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decodeCost decodes one request frame as Serve does and returns the CPU
// time it took on this thread.
func decodeCost(tb testing.TB, frame []byte) time.Duration {
	handlers := (&Broker{}).register()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := threadCPU(tb)
	decodeFrame(handlers, frame)
	return threadCPU(tb) - start
}

// decodeFrame decodes one request frame as Serve does.
func decodeFrame(handlers handlerTable, frame []byte) {
	if key, version, _, _, body, err := parseHeader(frame); err == nil {
		if h, ok := handlers[key]; ok && version >= h.min && version <= h.max {
			_, _ = decodeBody(key, version, body)
		}
	}
}

// decodeBudget is the CPU decoding a frame of n bytes may cost.
func decodeBudget(n int) time.Duration {
	return decodeBudgetBase + time.Duration(n)*decodeBudgetPerByte
}

func checkDecodeBudget(t *testing.T, name string, frame []byte) time.Duration {
	t.Helper()
	budget := decodeBudget(len(frame))
	cost := decodeCost(t, frame)
	if cost > budget {
		t.Fatalf("%s: decoding %d bytes (%x) cost %v of CPU, over the budget of %v", name, len(frame), frame, cost, budget)
	}
	return cost
}

// issue16Reproducer is the 20-byte OffsetForLeaderEpoch v4 request whose
// top-level tag count (0xff 0xff 0xfc 0xfe 0x01) made kmsg v1.15.0 loop
// 536 million times with nothing left to read.
var issue16Reproducer = []byte("\x00\x17\x00\x040000\x00\x00\x000000\x01\xff\xff\xfc\xfe\x01")

func TestDecodeBudgetReproducer(t *testing.T) {
	checkDecodeBudget(t, "issue 16 reproducer", issue16Reproducer)
	// And the whole request path: decoded, rejected, connection closed.
	b := newTestBroker(t)
	rec := serveFrame(t, b, issue16Reproducer)
	if rec.closed == nil {
		t.Fatalf("undecodable request was answered instead of closing the connection")
	}
}

// TestDecodeBudgetCorpus runs every input of FuzzRequest's corpus in
// testdata/fuzz/FuzzRequest through the decoder with a CPU budget.
func TestDecodeBudgetCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatalf("no corpus in %s", dir)
	}
	for _, e := range entries {
		frame := readCorpusFile(t, filepath.Join(dir, e.Name()))
		checkDecodeBudget(t, e.Name(), frame)
	}
}

// TestDecodeBudgetHugeCounts takes an encoded request of every key and
// version Strata serves and plants the largest count a uvarint or int32
// can hold at every position of its body, truncating what follows or
// keeping it: whatever the planted bytes land on (a tag count, an array
// length, a string length), decoding stays within budget.
func TestDecodeBudgetHugeCounts(t *testing.T) {
	huge := [][]byte{
		{0xff, 0xff, 0xff, 0xff, 0x0f}, // uvarint 2^32-1
		{0xff, 0xff, 0xfc, 0xfe, 0x01}, // the reproducer's count
		{0x7f, 0xff, 0xff, 0xff},       // int32 max
	}
	n, worst := 0, time.Duration(0)
	for key, h := range (&Broker{}).register() {
		for v := h.min; v <= h.max; v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			frame := frameFor(req, 7)
			hdr := len(frame) - len(req.AppendTo(nil))
			for i := hdr; i <= len(frame); i++ {
				for _, h := range huge {
					name := kmsg.NameForKey(key) + " v" + strconv.Itoa(int(v)) + " @" + strconv.Itoa(i)
					truncated := append(append([]byte(nil), frame[:i]...), h...)
					worst = max(worst, checkDecodeBudget(t, name, truncated))
					kept := append(append(append([]byte(nil), frame[:i]...), h...), frame[i:]...)
					worst = max(worst, checkDecodeBudget(t, name, kept))
					n += 2
				}
			}
		}
	}
	t.Logf("%d adversarial frames decoded within budget; the costliest took %v", n, worst)
}

// readCorpusFile parses a file of Go's fuzz corpus format holding one
// []byte argument.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a one-[]byte fuzz corpus file", path)
	}
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
	s, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return bytes.Clone([]byte(s))
}

// serveFrame serves one frame and waits for it to complete.
func serveFrame(t *testing.T, b *Broker, frame []byte) *recorder {
	t.Helper()
	rec := newRecorder()
	conn := &network.ConnInfo{ID: 1, RemoteAddr: &net.TCPAddr{}, LocalAddr: &net.TCPAddr{}}
	b.Serve(context.Background(), &network.Request{Conn: conn, Data: bytes.Clone(frame)}, rec)
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("request %x never completed", frame)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec
}
