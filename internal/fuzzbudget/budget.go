package fuzzbudget

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The budget: Base plus PerByte for each byte of input. Decoding costs
// microseconds on a loaded 2-core machine (tens under the race detector);
// the bugs this catches cost seconds (issue 16's tag loop: 7.8 s for 21
// bytes). CPU time, not wall time, so a loaded machine does not fail it.
const (
	Base    = 100 * time.Millisecond
	PerByte = 10 * time.Microsecond
)

// Budget is the CPU an input of n bytes may cost.
func Budget(n int) time.Duration { return Base + time.Duration(n)*PerByte }

// ThreadCPU is the CPU time the calling OS thread has used.
func ThreadCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Cost runs f on a locked OS thread and returns the CPU time it took
// there. Work f hands to other goroutines is not counted: f must be the
// synchronous decoding.
func Cost(tb testing.TB, f func()) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := ThreadCPU(tb)
	f()
	return ThreadCPU(tb) - start
}

// Run runs f, the decoding of an n-byte input, and fails tb if it cost
// more than Budget(n).
func Run(tb testing.TB, n int, f func()) {
	tb.Helper()
	if c, b := Cost(tb, f), Budget(n); c > b {
		tb.Fatalf("an input of %d bytes cost %v of CPU, over its budget of %v", n, c, b)
	}
}
