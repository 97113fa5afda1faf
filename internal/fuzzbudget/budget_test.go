package fuzzbudget

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// spin burns at least d of the calling thread's CPU.
func spin(tb testing.TB, d time.Duration) {
	start := ThreadCPU(tb)
	for ThreadCPU(tb)-start < d {
	}
}

// TestCostMeasuresCPU: a busy loop of at least 30 ms of CPU is measured
// as such, and an empty function as (almost) nothing.
func TestCostMeasuresCPU(t *testing.T) {
	if c := Cost(t, func() { spin(t, 30*time.Millisecond) }); c < 30*time.Millisecond {
		t.Fatalf("a 30 ms spin cost %v", c)
	}
	if c := Cost(t, func() {}); c > 20*time.Millisecond {
		t.Fatalf("nothing cost %v", c)
	}
	if Budget(1000) != Base+10*time.Millisecond {
		t.Fatalf("budget of 1000 bytes: %v", Budget(1000))
	}
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

// TestCheckTripsOnSlowInput: an input that burns more CPU than its budget
// fails, whether through Check or Run; one within it passes.
func TestCheckTripsOnSlowInput(t *testing.T) {
	r := &recorder{TB: t}
	Check(r, 5*time.Millisecond, func() { spin(t, 20*time.Millisecond) })
	if !strings.Contains(r.fatal, "over its budget of 5ms") {
		t.Fatalf("a 20 ms input under a 5 ms budget: %q", r.fatal)
	}
	r = &recorder{TB: t}
	Run(r, 0, func() { spin(t, Base+20*time.Millisecond) })
	if !strings.Contains(r.fatal, "an input of 0 bytes cost") {
		t.Fatalf("a %v input under Run's budget of %v: %q", Base+20*time.Millisecond, Budget(0), r.fatal)
	}
	r = &recorder{TB: t}
	Check(r, time.Second, func() { spin(t, 5*time.Millisecond) })
	if r.fatal != "" {
		t.Fatalf("a 5 ms input under a 1 s budget: %q", r.fatal)
	}
}

// TestCheckCountsCPUNotWallTime: an input that takes longer than its
// budget by the clock without using the CPU (here it sleeps: the wall
// time passing is the point, not a wait for something) passes, so that a
// loaded machine preempting a fuzz worker does not fail an input.
func TestCheckCountsCPUNotWallTime(t *testing.T) {
	r := &recorder{TB: t}
	Check(r, 2*time.Millisecond, func() { time.Sleep(20 * time.Millisecond) })
	if r.fatal != "" {
		t.Fatalf("a sleeping input failed its CPU budget: %q", r.fatal)
	}
}

// TestCheckForgivesOneBlip: an input whose first run is charged more than
// its budget (as a GC assist or page faults can charge a thread) but whose
// later runs are cheap passes; one over budget on every run fails with the
// least it cost.
func TestCheckForgivesOneBlip(t *testing.T) {
	r := &recorder{TB: t}
	runs := 0
	Check(r, 5*time.Millisecond, func() {
		runs++
		if runs == 1 {
			spin(t, 20*time.Millisecond)
		}
	})
	if r.fatal != "" || runs != 2 {
		t.Fatalf("a one-off 20 ms blip under a 5 ms budget: fatal %q after %d runs", r.fatal, runs)
	}
	runs = 0
	c, over := check(t, 5*time.Millisecond, func() {
		runs++
		spin(t, []time.Duration{50, 40, 15}[runs-1]*time.Millisecond)
	})
	// The least is the last run's 15 ms (and what the runtime charged the
	// thread besides), well under the others'.
	if !over || runs != Attempts || c < 15*time.Millisecond || c >= 40*time.Millisecond {
		t.Fatalf("an input over budget on each of %d runs (50, 40, 15 ms): over %v, least cost %v, after %d runs", Attempts, over, c, runs)
	}
}
