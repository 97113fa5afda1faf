package fuzzbudget

import (
	"testing"
	"time"
)

// TestCostMeasuresCPU: a busy loop of at least 30 ms of CPU is measured
// as such, and an empty function as (almost) nothing.
func TestCostMeasuresCPU(t *testing.T) {
	spin := func() {
		start := ThreadCPU(t)
		for ThreadCPU(t)-start < 30*time.Millisecond {
		}
	}
	if c := Cost(t, spin); c < 30*time.Millisecond {
		t.Fatalf("a 30 ms spin cost %v", c)
	}
	if c := Cost(t, func() {}); c > 20*time.Millisecond {
		t.Fatalf("nothing cost %v", c)
	}
	if Budget(1000) != Base+10*time.Millisecond {
		t.Fatalf("budget of 1000 bytes: %v", Budget(1000))
	}
}
