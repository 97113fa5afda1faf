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
	if c, over := check(tb, Budget(n), f); over {
		tb.Helper()
		tb.Fatalf("an input of %d bytes cost %v of CPU, over its budget of %v", n, c, Budget(n))
	}
}

// Check runs f on a locked OS thread and fails tb if f cost more than
// budget of that thread's CPU time. A thread cannot use more CPU than the
// wall time that passes, so when f returns within budget by the
// monotonic clock (a vDSO read, no system call) it passed; only an input
// that took longer than its budget in wall time (a slow input, or a
// preempted one on a loaded machine) has its thread's CPU time read
// again to decide. That keeps one getrusage per input instead of two.
// An input over budget is run again (see Attempts) and fails only if it
// is over budget every time.
func Check(tb testing.TB, budget time.Duration, f func()) {
	if c, over := check(tb, budget, f); over {
		tb.Helper()
		tb.Fatalf("an input cost %v of CPU, over its budget of %v", c, budget)
	}
}

// Attempts is how many times an input must be over budget before it fails.
// A thread's CPU time also counts what the runtime does on it while the
// input decodes: a GC mark assist, or page faults on heap the VM had
// handed back to its host. One such blip charged 30 ms to a 246 ns
// decode (FuzzRequest, input 4f5bef228278c51e, at 4.67M executions).
// Decoding is deterministic, so an input that is really slow is slow
// each time; it is measured again, and only an input over budget every
// time fails, with the least it cost.
const Attempts = 3

// check runs f and reports whether it cost more than budget, and then
// what it cost (unmeasured when it returned within budget by the clock).
// f must be safe to run more than once: it is, when it only decodes.
func check(tb testing.TB, budget time.Duration, f func()) (time.Duration, bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	least := time.Duration(-1)
	for range Attempts {
		startCPU := ThreadCPU(tb)
		start := time.Now()
		f()
		if time.Since(start) <= budget {
			return 0, false
		}
		c := ThreadCPU(tb) - startCPU
		if c <= budget {
			return c, false
		}
		if least < 0 || c < least {
			least = c
		}
	}
	return least, true
}
