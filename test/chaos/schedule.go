package main

import (
	"fmt"
	"math/rand"
	"strings"
	"time"
)

// Fault kinds a schedule composes.
const (
	FKill              = "kill"               // kill -9, hold, restart
	FPause             = "pause"              // SIGSTOP, hold, SIGCONT
	FIsolate           = "isolate"            // one node cut from every peer, both ways
	FIsolateLeader     = "isolate-leader"     // the leader of a partition of the topic (resolved when applied)
	FIsolateController = "isolate-controller" // the active controller (resolved when applied)
	FSplit             = "split"              // majority/minority
	FBridge            = "bridge"             // two sides that only one node sees both of
	FAsym              = "asym"               // one node's packets to one peer dropped, not the reverse
	FDiskFull          = "disk-full"          // fill the node's tmpfs data dir; heal frees it and restarts the node
	FCorrupt           = "corrupt"            // kill a minority of replicas, damage their last segments' tails, restart
	FRestart           = "restart"            // clean stop (SIGTERM) and start
	FRolling           = "rolling-restart"    // clean restart of every node, one at a time
	FClients           = "clients"            // the clients cut from one node, both ways; its peers still reach it
)

// AllFaults lists every fault kind.
var AllFaults = []string{FKill, FPause, FIsolate, FIsolateLeader, FIsolateController, FSplit, FBridge, FAsym, FDiskFull, FCorrupt, FRestart, FRolling, FClients}

// overlapKinds may start while the previous step (also of these kinds) is
// still held, on other nodes. Kinds that damage data (corrupt, disk-full),
// touch every node (split, bridge, rolling-restart) or resolve their target
// only when applied are never overlapped, so that overlapping never damages
// a majority of replicas by construction.
var overlapKinds = map[string]bool{FKill: true, FPause: true, FIsolate: true, FAsym: true, FRestart: true, FClients: true}

// Step is one fault of a schedule: applied at At (from the start of the
// workload), held for Hold, then healed.
type Step struct {
	At    time.Duration `json:"at"`
	Kind  string        `json:"kind"`
	Nodes []int         `json:"nodes,omitempty"` // targets (1-based); for split and bridge the first side, then the bridge node
	Peer  int           `json:"peer,omitempty"`  // asym: the peer the node cannot reach
	Part  int32         `json:"part,omitempty"`  // isolate-leader: which partition's leader
	Hold  time.Duration `json:"hold"`
	Seed  int64         `json:"seed"` // for choices made when applied (corruption offsets)
	// Overlap: the step starts while the previous one is held (at At,
	// not after the previous step has healed).
	Overlap bool `json:"overlap,omitempty"`
}

func (s Step) String() string {
	var b strings.Builder
	if s.Overlap {
		b.WriteString("+")
	}
	fmt.Fprintf(&b, "%s", s.Kind)
	switch s.Kind {
	case FIsolateLeader:
		fmt.Fprintf(&b, "(p%d)", s.Part)
	case FIsolateController, FRolling:
	case FAsym:
		fmt.Fprintf(&b, "(n%d-/->n%d)", s.Nodes[0], s.Peer)
	default:
		fmt.Fprintf(&b, "(n%s)", joinInts(s.Nodes))
	}
	return b.String()
}

func joinInts(xs []int) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprint(x))
	}
	return strings.Join(parts, ",n")
}

// Schedule is the fault plan of one run, a pure function of its inputs.
type Schedule struct {
	Seed  int64  `json:"seed"`
	Nodes int    `json:"nodes"`
	Steps []Step `json:"steps"`
}

// Generate builds the schedule for seed: faults of the enabled kinds, one
// after another with quiet gaps, until dur is used up. rf and parts bound
// the choices (corruption damages a minority of rf replicas). With overlap
// > 0, that fraction of the steps of overlapKinds that follow a step of
// overlapKinds start during its hold instead, on nodes that no step of the
// chain of overlaps touches; overlap 0 draws nothing extra from the seed.
func Generate(seed int64, nodes int, dur time.Duration, kinds []string, rf int, parts int32, overlap float64) Schedule {
	rng := rand.New(rand.NewSource(seed))
	s := Schedule{Seed: seed, Nodes: nodes}
	if len(kinds) == 0 {
		return s
	}
	t := time.Duration(1000+rng.Intn(1000)) * time.Millisecond
	for {
		kind := kinds[rng.Intn(len(kinds))]
		hold := time.Duration(1000+rng.Intn(3000)) * time.Millisecond
		st := Step{At: t, Kind: kind, Hold: hold, Seed: rng.Int63()}
		perm := rng.Perm(nodes)
		for i := range perm {
			perm[i]++
		}
		var prev *Step
		if n := len(s.Steps); n > 0 {
			prev = &s.Steps[n-1]
		}
		if overlap > 0 && prev != nil && overlapKinds[kind] && overlapKinds[prev.Kind] && rng.Float64() < overlap {
			// Start inside the previous hold, on nodes it leaves alone.
			st.Overlap = true
			st.At = prev.At + time.Duration(rng.Int63n(int64(prev.Hold)))
			perm = without(perm, chainTouched(s.Steps))
			if len(perm) < 2 {
				st.Overlap, st.At, perm = false, t, rng.Perm(nodes)
				for i := range perm {
					perm[i]++
				}
			}
		}
		switch kind {
		case FKill, FPause, FIsolate, FDiskFull, FRestart, FClients:
			st.Nodes = perm[:1]
		case FIsolateLeader:
			st.Part = int32(rng.Intn(int(parts)))
		case FSplit:
			st.Nodes = perm[:(nodes-1)/2] // the minority side
		case FBridge:
			side := (nodes - 1) / 2
			st.Nodes = append(append([]int{}, perm[:side]...), perm[nodes-1])
		case FAsym:
			st.Nodes, st.Peer = perm[:1], perm[1]
		case FCorrupt:
			minority := (rf - 1) / 2
			if minority < 1 {
				minority = 1 // only reached with --unsafe-corrupt
			}
			st.Nodes = perm[:minority]
		}
		if st.At+hold > dur {
			break
		}
		s.Steps = append(s.Steps, st)
		if end := st.At + hold; end > t {
			t = end
		}
		t += time.Duration(500+rng.Intn(1500)) * time.Millisecond
	}
	return s
}

// chainTouched lists the nodes touched by the trailing run of overlapping
// steps (back to the last step that did not overlap): a step's apply can
// outlast its hold (restarts), so every step of a chain counts as active.
func chainTouched(steps []Step) []int {
	var out []int
	for i := len(steps) - 1; i >= 0; i-- {
		out = append(out, steps[i].touched()...)
		if !steps[i].Overlap {
			break
		}
	}
	return out
}

// touched lists the nodes a step acts on (asym: both ends).
func (s Step) touched() []int {
	out := append([]int{}, s.Nodes...)
	if s.Peer > 0 {
		out = append(out, s.Peer)
	}
	return out
}
