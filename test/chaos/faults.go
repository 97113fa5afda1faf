package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Timeline is what the harness did, when.
type Timeline struct {
	mu     sync.Mutex
	start  time.Time
	Events []string
}

func (t *Timeline) Add(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.Events = append(t.Events, fmt.Sprintf("%8.3fs  %s", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...)))
}

func (t *Timeline) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.Events, "\n") + "\n"
}

// Injector applies schedule steps to a cluster.
type Injector struct {
	c     *Cluster
	net   Net
	topic string
	tl    *Timeline
	// mu guards applied and crashes: overlapping steps run concurrently.
	mu sync.Mutex
	// applied counts faults by kind.
	applied map[string]int
	// crashes counts nodes found exited on their own.
	crashes int
}

// cuts are the links one step cut, undone by that step alone.
type cuts [][2]int

func (in *Injector) cut(c *cuts, from, to int) error {
	if err := in.net.Cut(from, to); err != nil {
		return err
	}
	*c = append(*c, [2]int{from, to})
	return nil
}

// isolate cuts ids from others, both ways.
func (in *Injector) isolate(c *cuts, ids []int, others []int) error {
	for _, a := range ids {
		for _, b := range others {
			if a == b {
				continue
			}
			if err := in.cut(c, a, b); err != nil {
				return err
			}
			if err := in.cut(c, b, a); err != nil {
				return err
			}
		}
	}
	return nil
}

// heal undoes a step's cuts (others' stay).
func (in *Injector) heal(c cuts) error {
	in.tl.Add("heal the links it cut")
	var first error
	for _, l := range c {
		if err := in.net.Uncut(l[0], l[1]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (in *Injector) all() []int {
	var ids []int
	for _, n := range in.c.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

func without(all, drop []int) []int {
	var out []int
	for _, x := range all {
		keep := true
		for _, d := range drop {
			if d == x {
				keep = false
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// Apply injects st, holds it, and heals it (the network, paused or killed
// nodes); ctx ending cuts the hold short.
func (in *Injector) Apply(ctx context.Context, st Step) error {
	hold := func() {
		select {
		case <-ctx.Done():
		case <-time.After(st.Hold):
		}
	}
	bg := context.Background() // restarts must finish even when the run is cut short
	in.mu.Lock()
	in.applied[st.Kind]++
	in.mu.Unlock()
	var cut cuts
	switch st.Kind {
	case FKill:
		n := in.c.node(st.Nodes[0])
		in.tl.Add("kill -9 n%d", n.ID)
		n.Kill()
		hold()
		in.tl.Add("restart n%d", n.ID)
		return in.start(bg, n)
	case FPause:
		n := in.c.node(st.Nodes[0])
		in.tl.Add("SIGSTOP n%d", n.ID)
		if err := n.Pause(); err != nil {
			in.tl.Add("  pause n%d: %v", n.ID, err)
		}
		hold()
		in.tl.Add("SIGCONT n%d", n.ID)
		n.Resume()
	case FIsolate, FIsolateLeader, FIsolateController:
		target := 0
		switch st.Kind {
		case FIsolate:
			target = st.Nodes[0]
		case FIsolateLeader:
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			l, err := in.c.Leaders(cctx, in.topic)
			cancel()
			if err == nil && l[st.Part] > 0 {
				target = int(l[st.Part])
			}
		case FIsolateController:
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			if l := in.c.Controller(cctx); l > 0 {
				target = int(l)
			}
			cancel()
		}
		if target == 0 {
			target = rand.New(rand.NewSource(st.Seed)).Intn(len(in.c.Nodes)) + 1
			in.tl.Add("%s: target unknown now, isolating n%d (from the step seed)", st.Kind, target)
		}
		in.tl.Add("%s: isolate n%d from its peers", st, target)
		if err := in.isolate(&cut, []int{target}, in.all()); err != nil {
			return err
		}
		hold()
		return in.heal(cut)
	case FSplit:
		in.tl.Add("split: minority %v | majority %v", st.Nodes, without(in.all(), st.Nodes))
		if err := in.isolate(&cut, st.Nodes, without(in.all(), st.Nodes)); err != nil {
			return err
		}
		hold()
		return in.heal(cut)
	case FBridge:
		bridge := st.Nodes[len(st.Nodes)-1]
		a := st.Nodes[:len(st.Nodes)-1]
		b := without(in.all(), st.Nodes)
		in.tl.Add("bridge: %v | n%d | %v (n%d sees both sides)", a, bridge, b, bridge)
		if err := in.isolate(&cut, a, b); err != nil {
			return err
		}
		hold()
		return in.heal(cut)
	case FAsym:
		in.tl.Add("asymmetric: drop n%d -> n%d only", st.Nodes[0], st.Peer)
		if err := in.cut(&cut, st.Nodes[0], st.Peer); err != nil {
			return err
		}
		hold()
		return in.heal(cut)
	case FClients:
		id := st.Nodes[0]
		in.tl.Add("%s: the clients cannot reach n%d, nor n%d them (its peers can)", st, id, id)
		if err := in.isolate(&cut, []int{id}, []int{0}); err != nil {
			return err
		}
		hold()
		return in.heal(cut)
	case FDiskFull:
		n := in.c.node(st.Nodes[0])
		in.tl.Add("disk full on n%d", n.ID)
		if err := n.fill(); err != nil {
			in.tl.Add("  fill n%d: %v", n.ID, err)
		}
		hold()
		in.tl.Add("free disk on n%d and restart it", n.ID)
		n.unfill()
		n.Kill()
		return in.start(bg, n)
	case FCorrupt:
		rng := rand.New(rand.NewSource(st.Seed))
		for _, id := range st.Nodes {
			n := in.c.node(id)
			in.tl.Add("kill -9 n%d to damage its segments", id)
			n.Kill()
			for _, msg := range corruptTails(n.dataDir(), in.topic, rng) {
				in.tl.Add("  n%d: %s", id, msg)
			}
		}
		hold()
		for _, id := range st.Nodes {
			in.tl.Add("restart n%d", id)
			if err := in.start(bg, in.c.node(id)); err != nil {
				return err
			}
		}
	case FRestart:
		n := in.c.node(st.Nodes[0])
		in.tl.Add("clean restart n%d", n.ID)
		if err := n.Stop(30 * time.Second); err != nil {
			in.tl.Add("  %v", err)
		}
		return in.start(bg, n)
	case FRolling:
		for _, n := range in.c.Nodes {
			in.tl.Add("rolling restart: n%d", n.ID)
			if err := n.Stop(30 * time.Second); err != nil {
				in.tl.Add("  %v", err)
			}
			if err := in.start(bg, n); err != nil {
				return err
			}
			if err := await(bg, "a controller after restarting n"+fmt.Sprint(n.ID), 30*time.Second,
				func(ctx context.Context) bool { return in.c.Controller(ctx) > 0 }); err != nil {
				in.tl.Add("  %v", err)
			}
		}
	default:
		return fmt.Errorf("unknown fault %q", st.Kind)
	}
	return nil
}

func (in *Injector) start(ctx context.Context, n *Node) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		in.tl.Add("  start n%d: %v", n.ID, err)
		return err
	}
	return nil
}

// HealAll undoes everything: the network, paused nodes, full disks, and
// restarts any node that is down (killed, or crashed on its own).
func (in *Injector) HealAll(ctx context.Context) error {
	in.tl.Add("heal all")
	if err := in.net.Heal(); err != nil {
		return err
	}
	for _, n := range in.c.Nodes {
		n.Resume()
		n.unfill()
		if err := n.Unexpected(); err != nil {
			in.mu.Lock()
			in.crashes++
			in.mu.Unlock()
			in.tl.Add("n%d had %v; log tail:\n%s", n.ID, err, n.Tail(5))
		}
		if !n.Running() {
			in.tl.Add("restart n%d", n.ID)
			if err := in.start(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// corruptTails damages the last segment of every partition of topic in
// dataDir: a random cut of its tail or random flipped bytes near the end.
func corruptTails(dataDir, topic string, rng *rand.Rand) []string {
	var msgs []string
	dirs, _ := filepath.Glob(filepath.Join(dataDir, topic+"-*"))
	sort.Strings(dirs)
	for _, d := range dirs {
		segs, _ := filepath.Glob(filepath.Join(d, "*.log"))
		if len(segs) == 0 {
			continue
		}
		sort.Strings(segs)
		seg := segs[len(segs)-1]
		fi, err := os.Stat(seg)
		if err != nil || fi.Size() == 0 {
			continue
		}
		size := fi.Size()
		span := int64(512)
		if span > size {
			span = size
		}
		if rng.Intn(2) == 0 {
			cut := 1 + rng.Int63n(span)
			if err := os.Truncate(seg, size-cut); err == nil {
				msgs = append(msgs, fmt.Sprintf("truncated %s by %d bytes (of %d)", filepath.Base(d)+"/"+filepath.Base(seg), cut, size))
			}
			continue
		}
		f, err := os.OpenFile(seg, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		flips := 1 + rng.Intn(4)
		var at []int64
		for i := 0; i < flips; i++ {
			off := size - 1 - rng.Int63n(span)
			b := []byte{0}
			f.ReadAt(b, off)
			b[0] ^= byte(1 + rng.Intn(255))
			f.WriteAt(b, off)
			at = append(at, off)
		}
		f.Close()
		msgs = append(msgs, fmt.Sprintf("flipped bytes of %s at %v (size %d)", filepath.Base(d)+"/"+filepath.Base(seg), at, size))
	}
	return msgs
}
