package main

import (
	"reflect"
	"testing"
	"time"
)

func TestGenerateIsReproducible(t *testing.T) {
	a := Generate(42, 5, 30*time.Second, AllFaults, 3, 4, 0.3)
	b := Generate(42, 5, 30*time.Second, AllFaults, 3, 4, 0.3)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different schedules:\n%v\n%v", a, b)
	}
	c := Generate(43, 5, 30*time.Second, AllFaults, 3, 4, 0.3)
	if reflect.DeepEqual(a.Steps, c.Steps) {
		t.Fatalf("seeds 42 and 43 gave the same schedule")
	}
	if len(a.Steps) == 0 {
		t.Fatal("no steps in 30s")
	}
	for _, s := range a.Steps {
		if s.At+s.Hold > 30*time.Second {
			t.Errorf("step %v ends after the duration", s)
		}
		for _, n := range append(append([]int{}, s.Nodes...), s.Peer) {
			if n < 0 || n > 5 {
				t.Errorf("step %v targets node %d", s, n)
			}
		}
		if s.Kind == FSplit && len(s.Nodes) != 2 {
			t.Errorf("5-node split minority %v", s.Nodes)
		}
		if s.Kind == FBridge && len(s.Nodes) != 3 {
			t.Errorf("5-node bridge %v", s.Nodes)
		}
	}
}

func TestOwnerPid(t *testing.T) {
	for name, want := range map[string]int{"schaos1234-n1": 1234, "schaos03728-n2": 3728, "scb99": 99, "scv4242n3": 4242, "strata-chaos-77-123": 77} {
		var prefix string
		for _, p := range []string{"schaos", "scb", "scv", "strata-chaos-"} {
			if len(name) > len(p) && name[:len(p)] == p {
				prefix = p
			}
		}
		if got, ok := ownerPid(name, prefix); !ok || got != want {
			t.Errorf("ownerPid(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	if _, ok := ownerPid("scbridge", "scb"); ok {
		t.Error("scbridge has no pid")
	}
}

// Overlapping steps start inside their predecessor's hold, only for the
// kinds that may overlap, on nodes no step of the chain touches; overlap
// 0 keeps one fault at a time.
func TestGenerateOverlap(t *testing.T) {
	overlapped := 0
	for seed := int64(1); seed <= 200; seed++ {
		s := Generate(seed, 5, 40*time.Second, AllFaults, 3, 4, 0.5)
		for i, st := range s.Steps {
			if !st.Overlap {
				if i > 0 && st.At < s.Steps[i-1].At+s.Steps[i-1].Hold {
					t.Fatalf("seed %d: step %d %v starts before %v heals", seed, i, st, s.Steps[i-1])
				}
				continue
			}
			overlapped++
			prev := s.Steps[i-1]
			if !overlapKinds[st.Kind] || !overlapKinds[prev.Kind] {
				t.Fatalf("seed %d: %v overlaps %v", seed, st, prev)
			}
			if st.At < prev.At || st.At >= prev.At+prev.Hold {
				t.Fatalf("seed %d: %v at %v, outside %v's hold [%v, %v)", seed, st, st.At, prev, prev.At, prev.At+prev.Hold)
			}
			for _, a := range st.touched() {
				for _, b := range chainTouched(s.Steps[:i]) {
					if a == b {
						t.Fatalf("seed %d: %v touches n%d, as its chain of overlaps does", seed, st, a)
					}
				}
			}
		}
		for _, st := range Generate(seed, 5, 40*time.Second, AllFaults, 3, 4, 0).Steps {
			if st.Overlap {
				t.Fatalf("seed %d: overlap 0 gave %v", seed, st)
			}
		}
	}
	if overlapped == 0 {
		t.Fatal("no step overlapped in 200 schedules at 0.5")
	}
}
