package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fastSettings make elections, heartbeats and fencing quick (as test/cluster).
var fastSettings = []string{
	"--set", "controller.quorum.tick.ms=50",
	"--set", "controller.quorum.election.timeout.ms=500",
	"--set", "broker.heartbeat.interval.ms=200",
	"--set", "broker.session.timeout.ms=2000",
	"--set", "group.initial.rebalance.delay.ms=0",
	"--set", "offsets.topic.num.partitions=6",
}

// Node is one `strata serve` process of the cluster under test.
type Node struct {
	ID     int
	bin    string
	dir    string // holds data/ and strata.log
	net    Net
	voters string
	extra  []string
	tmpfs  int // MiB; >0: data/ is a tmpfs of that size

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan error
	paused  bool
	mounted bool
	log     *os.File
	// unexpected is set when the process exited on its own.
	unexpected error
}

func (n *Node) dataDir() string { return filepath.Join(n.dir, "data") }
func (n *Node) kafka() string   { a, _ := n.net.Addrs(n.ID); return a }

func (n *Node) args() []string {
	lk, lc := n.net.Listen(n.ID)
	ak, _ := n.net.Addrs(n.ID)
	a := []string{n.bin, "serve", "--node-id", fmt.Sprint(n.ID), "--listen", lk, "--advertised-address", ak,
		"--controller-listen", lc, "--controller-quorum", n.voters, "--data-dir", n.dataDir(),
		"--set", "http.listen=" + n.net.HTTP(n.ID)}
	a = append(a, fastSettings...)
	return append(a, n.extra...)
}

func (n *Node) mount() error {
	if n.tmpfs <= 0 || n.mounted {
		return os.MkdirAll(n.dataDir(), 0o755)
	}
	if err := os.MkdirAll(n.dataDir(), 0o755); err != nil {
		return err
	}
	if err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", n.tmpfs), fmt.Sprintf("strata-chaos-%d", os.Getpid()), n.dataDir()); err != nil {
		return err
	}
	n.mounted = true
	return nil
}

func (n *Node) unmount() {
	if n.mounted {
		exec.Command("umount", "-l", n.dataDir()).Run()
		n.mounted = false
	}
}

// Start launches the process and waits until its Kafka listener accepts.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.cmd != nil {
		n.mu.Unlock()
		return nil
	}
	if err := n.mount(); err != nil {
		n.mu.Unlock()
		return err
	}
	f, err := os.OpenFile(filepath.Join(n.dir, "strata.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	fmt.Fprintf(f, "=== chaos: start %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cmd := n.net.Command(n.ID, n.args())
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		n.mu.Unlock()
		return err
	}
	exited := make(chan error, 1)
	n.cmd, n.exited, n.log, n.paused = cmd, exited, f, false // unexpected stays until HealAll reads it
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		if n.cmd == cmd { // not stopped by us
			n.unexpected = fmt.Errorf("exited on its own: %v", err)
			n.cmd = nil
			f.Close()
		}
		n.mu.Unlock()
		exited <- err
	}()
	n.mu.Unlock()
	addr := n.kafka()
	for {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("node %d exited at start: %v; log tail:\n%s", n.ID, err, n.Tail(20))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Running reports whether the process is up (paused counts as up).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Paused reports whether the process is stopped with SIGSTOP.
func (n *Node) Paused() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// take detaches the process for stopping it; nil when none.
func (n *Node) take() (*exec.Cmd, chan error, *os.File) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd, ch, f := n.cmd, n.exited, n.log
	n.cmd = nil
	return cmd, ch, f
}

// Kill sends SIGKILL and waits for the exit.
func (n *Node) Kill() {
	cmd, ch, f := n.take()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-ch
	f.Close()
	n.paused = false
}

// Stop sends SIGTERM and waits up to timeout for a clean exit, then kills.
func (n *Node) Stop(timeout time.Duration) error {
	n.Resume()
	cmd, ch, f := n.take()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	defer f.Close()
	select {
	case err := <-ch:
		if err != nil {
			return fmt.Errorf("node %d: unclean exit on SIGTERM: %v", n.ID, err)
		}
		return nil
	case <-time.After(timeout):
		cmd.Process.Signal(syscall.SIGKILL)
		<-ch
		return fmt.Errorf("node %d did not stop within %v of SIGTERM; killed", n.ID, timeout)
	}
}

// Pause sends SIGSTOP; Resume SIGCONT.
func (n *Node) Pause() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return errors.New("not running")
	}
	n.paused = true
	return n.cmd.Process.Signal(syscall.SIGSTOP)
}

func (n *Node) Resume() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil && n.paused {
		n.cmd.Process.Signal(syscall.SIGCONT)
	}
	n.paused = false
}

// Unexpected returns (and clears) an exit the harness did not cause.
func (n *Node) Unexpected() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	err := n.unexpected
	n.unexpected = nil
	return err
}

// Tail returns the last lines of the node's log.
func (n *Node) Tail(lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "strata.log"))
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// fill writes a file into the data dir until the filesystem is full.
func (n *Node) fill() error {
	if !n.mounted {
		return errors.New("data dir is not a tmpfs")
	}
	f, err := os.Create(filepath.Join(n.dataDir(), "chaos-filler"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

func (n *Node) unfill() { os.Remove(filepath.Join(n.dataDir(), "chaos-filler")) }
