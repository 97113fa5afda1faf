package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Net places the nodes on a network the harness can cut.
type Net interface {
	Mode() string
	// Addrs are node i's (1-based) Kafka and controller listeners, which
	// are also the addresses clients and peers use.
	Addrs(i int) (kafka, ctrl string)
	// Listen are the addresses node i binds (the same unless proxied).
	Listen(i int) (kafka, ctrl string)
	// HTTP is the address of node i's HTTP listener (metrics, pprof),
	// which the harness reaches directly, never through a cut.
	HTTP(i int) string
	// Command wraps node i's command line (into its namespace).
	Command(i int, argv []string) *exec.Cmd
	// Cut drops what node from sends to node to (node 0 is the harness,
	// where the clients run). Cuts are counted: Uncut removes one, and the
	// link carries traffic again when none is left, so that overlapping
	// faults heal independently. Heal removes every cut.
	Cut(from, to int) error
	Uncut(from, to int) error
	Heal() error
	Teardown()
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// netnsNet: one namespace per node, veth pairs on a bridge in the root
// namespace, which carries an address so the harness reaches every node.
type netnsNet struct {
	id     string // unique per run
	n      int
	subnet string // "10.77.K"
	mu     sync.Mutex
	cuts   map[[2]int]int
}

const nsPrefix = "schaos"

func (e *netnsNet) ns(i int) string               { return fmt.Sprintf("%s%s-n%d", nsPrefix, e.id, i) }
func (e *netnsNet) bridge() string                { return "scb" + e.id }
func (e *netnsNet) veth(i int) string             { return fmt.Sprintf("scv%sn%d", e.id, i) }
func (e *netnsNet) peer(i int) string             { return fmt.Sprintf("scp%sn%d", e.id, i) }
func (e *netnsNet) ip(i int) string               { return fmt.Sprintf("%s.%d", e.subnet, i) }
func (e *netnsNet) Mode() string                  { return "netns (bridge " + e.bridge() + ", " + e.subnet + ".0/24)" }
func (e *netnsNet) Listen(i int) (string, string) { return e.Addrs(i) }
func (e *netnsNet) HTTP(i int) string             { return e.ip(i) + ":9644" }
func (e *netnsNet) Addrs(i int) (string, string) {
	return e.ip(i) + ":9092", e.ip(i) + ":9093"
}

// freeSubnet picks a 10.77.K.0/24 no route of this machine uses yet.
func freeSubnet() (string, error) {
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		return "", err
	}
	// Start where this pid points, so that two runs starting together
	// rarely race for the same subnet.
	for i := 0; i < 240; i++ {
		k := 10 + (os.Getpid()+i)%240
		s := fmt.Sprintf("10.77.%d.", k)
		if !strings.Contains(string(out), s) {
			return fmt.Sprintf("10.77.%d", k), nil
		}
	}
	return "", fmt.Errorf("no free 10.77.K.0/24")
}

func newNetns(n int) (*netnsNet, error) {
	e := &netnsNet{id: fmt.Sprint(os.Getpid()), n: n, cuts: map[[2]int]int{}}
	var err error
	if e.subnet, err = freeSubnet(); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"ip", "link", "add", e.bridge(), "type", "bridge"},
		{"ip", "addr", "add", e.ip(254) + "/24", "dev", e.bridge()},
		{"ip", "link", "set", e.bridge(), "up"},
	}
	for i := 1; i <= n; i++ {
		steps = append(steps,
			[]string{"ip", "netns", "add", e.ns(i)},
			[]string{"ip", "link", "add", e.veth(i), "type", "veth", "peer", "name", e.peer(i)},
			[]string{"ip", "link", "set", e.peer(i), "netns", e.ns(i)},
			[]string{"ip", "link", "set", e.veth(i), "master", e.bridge()},
			[]string{"ip", "link", "set", e.veth(i), "up"},
			[]string{"ip", "netns", "exec", e.ns(i), "ip", "addr", "add", e.ip(i) + "/24", "dev", e.peer(i)},
			[]string{"ip", "netns", "exec", e.ns(i), "ip", "link", "set", e.peer(i), "up"},
			[]string{"ip", "netns", "exec", e.ns(i), "ip", "link", "set", "lo", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			e.Teardown()
			return nil, err
		}
	}
	return e, nil
}

func (e *netnsNet) Command(i int, argv []string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", e.ns(i)}, argv...)...)
}

// route is the blackhole that drops from's packets to to: inside from's
// namespace, or in the root namespace (where the clients are) for from 0.
func (e *netnsNet) route(op string, from, to int) []string {
	dst := e.ip(to)
	if to == 0 {
		dst = e.ip(254)
	}
	cmd := []string{"ip", "route", op, "blackhole", dst + "/32"}
	if from == 0 {
		return cmd
	}
	return append([]string{"ip", "netns", "exec", e.ns(from)}, cmd...)
}

func (e *netnsNet) Cut(from, to int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := [2]int{from, to}
	if e.cuts[k] == 0 {
		if err := run(e.route("add", from, to)...); err != nil {
			return err
		}
	}
	e.cuts[k]++
	return nil
}

func (e *netnsNet) Uncut(from, to int) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := [2]int{from, to}
	if e.cuts[k] == 0 {
		return nil
	}
	if e.cuts[k]--; e.cuts[k] > 0 {
		return nil
	}
	delete(e.cuts, k)
	return run(e.route("del", from, to)...)
}

func (e *netnsNet) Heal() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var first error
	for c := range e.cuts {
		if err := run(e.route("del", c[0], c[1])...); err != nil && first == nil {
			first = err
		}
		delete(e.cuts, c)
	}
	return first
}

func (e *netnsNet) Teardown() {
	for i := 1; i <= e.n; i++ {
		killNamespace(e.ns(i))
		exec.Command("ip", "link", "del", e.veth(i)).Run()
	}
	exec.Command("ip", "link", "del", e.bridge()).Run()
}

// killNamespace kills whatever still runs in ns (processes this harness
// started there) and deletes it.
func killNamespace(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
			p, _ := os.FindProcess(pid)
			p.Kill()
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// ownerPid extracts the harness pid from a name made of prefix, the pid,
// and a suffix that starts with a non-digit.
func ownerPid(name, prefix string) (int, bool) {
	if !strings.HasPrefix(name, prefix) {
		return 0, false
	}
	rest := name[len(prefix):]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:i]) // not Sscan: a leading 0 would read as octal
	return pid, err == nil
}

// harnessAlive reports whether pid is a running strata-chaos (whose
// namespaces, links and mounts must be left alone).
func harnessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(b)) == "strata-chaos"
}

// stale reports whether name belongs to a strata-chaos run that is gone.
func stale(name, prefix string) bool {
	pid, ok := ownerPid(name, prefix)
	return ok && !harnessAlive(pid)
}

// cleanupLeftovers removes the namespaces (and what runs in them), links,
// mounts and work directories of strata-chaos runs that are no longer
// running; a live run's are left alone.
func cleanupLeftovers(workdir string) []string {
	var done []string
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && stale(f[0], nsPrefix) {
			killNamespace(f[0])
			done = append(done, "netns "+f[0])
		}
	}
	out, _ = exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
		if stale(name, "scb") || stale(name, "scv") {
			exec.Command("ip", "link", "del", name).Run()
			done = append(done, "link "+name)
		}
	}
	mounts, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && stale(f[0], "strata-chaos-") {
			exec.Command("umount", "-l", f[1]).Run()
			done = append(done, "mount "+f[1])
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(workdir, "strata-chaos-*"))
	for _, d := range dirs {
		if stale(filepath.Base(d), "strata-chaos-") {
			os.RemoveAll(d)
			done = append(done, "dir "+d)
		}
	}
	return done
}

// proxyNet: every node on loopback, peers and clients reach node i only
// through a TCP proxy the harness runs. A cut cannot know the sender
// (every connection comes from 127.0.0.1), so Cut(from, to) blocks
// everything to `to`, clients included: partitions degrade to "node
// unreachable".
type proxyNet struct {
	n       int
	listen  map[int][2]string
	public  map[int][2]string
	http    map[int]string
	mu      sync.Mutex
	blocked map[int]int // cuts towards node i, counted
	conns   map[int]map[net.Conn]bool
	lns     []net.Listener
}

func newProxyNet(n int) (*proxyNet, error) {
	e := &proxyNet{n: n, listen: map[int][2]string{}, public: map[int][2]string{}, http: map[int]string{}, blocked: map[int]int{}, conns: map[int]map[net.Conn]bool{}}
	free := func() (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer ln.Close()
		return ln.Addr().String(), nil
	}
	for i := 1; i <= n; i++ {
		var l, p [2]string
		for j := 0; j < 2; j++ {
			a, err := free()
			if err != nil {
				return nil, err
			}
			l[j] = a
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				e.Teardown()
				return nil, err
			}
			e.lns = append(e.lns, ln)
			p[j] = ln.Addr().String()
			go e.serve(i, ln, a)
		}
		e.listen[i], e.public[i] = l, p
		h, err := free()
		if err != nil {
			e.Teardown()
			return nil, err
		}
		e.http[i] = h
	}
	return e, nil
}

func (e *proxyNet) Mode() string {
	return "loopback TCP proxies (partitions block a node for everyone)"
}
func (e *proxyNet) Addrs(i int) (string, string)           { return e.public[i][0], e.public[i][1] }
func (e *proxyNet) Listen(i int) (string, string)          { return e.listen[i][0], e.listen[i][1] }
func (e *proxyNet) HTTP(i int) string                      { return e.http[i] }
func (e *proxyNet) Command(_ int, argv []string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }

func (e *proxyNet) serve(i int, ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		if e.blocked[i] > 0 {
			e.mu.Unlock()
			c.Close()
			continue
		}
		if e.conns[i] == nil {
			e.conns[i] = map[net.Conn]bool{}
		}
		e.conns[i][c] = true
		e.mu.Unlock()
		go func() {
			defer func() {
				e.mu.Lock()
				delete(e.conns[i], c)
				e.mu.Unlock()
				c.Close()
			}()
			up, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, c); done <- struct{}{} }()
			go func() { io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}

func (e *proxyNet) Cut(from, to int) error {
	if to == 0 { // the harness's side cannot be proxied: block the node
		to = from
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.blocked[to]++
	for c := range e.conns[to] {
		c.Close()
	}
	return nil
}

func (e *proxyNet) Uncut(from, to int) error {
	if to == 0 {
		to = from
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.blocked[to] > 0 {
		e.blocked[to]--
	}
	return nil
}

func (e *proxyNet) Heal() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.blocked = map[int]int{}
	return nil
}

func (e *proxyNet) Teardown() {
	for _, ln := range e.lns {
		ln.Close()
	}
}
