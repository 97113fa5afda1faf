package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The cold reader runs in a process of its own (this binary with
// --cold-reader), as a consumer on another machine would: in the
// measuring process its 200+ MB/s of fetches made garbage and CPU work
// that the tail's clients, sharing the runtime, the garbage collector and
// (with GOMAXPROCS 1 under taskset) the one P, waited behind, and that
// wait was counted as the broker's latency.

// coldChild is a running cold-reader process.
type coldChild struct {
	cmd *exec.Cmd
	out *bufio.Scanner
}

// startCold starts the cold reader; it counts the bytes it reads between
// from and to, then exits after to and prints them with its CPU seconds.
func startCold(o options, addr string, from, to time.Time) (*coldChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{self, "--cold-reader", addr, "--cold-from", strconv.FormatInt(from.UnixNano(), 10), "--cold-to", strconv.FormatInt(to.UnixNano(), 10),
		"--cold-mbps", strconv.FormatFloat(o.coldMBps, 'f', -1, 64), "--cold-fetch-bytes", strconv.Itoa(int(o.coldFetchBytes))}
	if o.coldCPUs != "" {
		args = append([]string{"taskset", "-c", o.coldCPUs}, args...)
	}
	if o.coldNice != 0 {
		args = append([]string{"nice", "-n", strconv.Itoa(o.coldNice)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the cold reader: %w", err)
	}
	return &coldChild{cmd: cmd, out: bufio.NewScanner(out)}, nil
}

// wait returns the bytes the reader read in the window and its CPU
// seconds.
func (c *coldChild) wait() (int64, float64, error) {
	var line string
	for c.out.Scan() {
		line = c.out.Text()
	}
	if err := c.cmd.Wait(); err != nil {
		return 0, 0, fmt.Errorf("cold reader: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("cold reader printed %q, want \"bytes cpu\"", line)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("cold reader bytes %q: %w", f[0], err)
	}
	cpu, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return 0, 0, fmt.Errorf("cold reader cpu %q: %w", f[1], err)
	}
	return n, cpu, nil
}

// coldReader is the child's main: read the cold topic until to, then
// print the bytes read in [from, to) and the CPU seconds the process used.
func coldReader(addr string, fromNs, toNs int64, mbps float64, fetchBytes int32) error {
	to := time.Unix(0, toNs)
	ctx, cancel := context.WithDeadline(context.Background(), to)
	defer cancel()
	var n atomic.Int64
	if err := readCold(ctx, addr, time.Unix(0, fromNs), to, mbps, fetchBytes, &n); err != nil {
		return err
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	fmt.Printf("%d %.2f\n", n.Load(), cpu)
	return nil
}

// readCold reads "cold" from the start as fast as it can (or at mbps MB/s
// when mbps > 0), fetching up to fetchBytes per partition, until ctx ends,
// and adds the bytes it reads between from and to to n. The cold reader
// of both modes (its own process, or --cold-in-process).
func readCold(ctx context.Context, addr string, from, to time.Time, mbps float64, fetchBytes int32, n *atomic.Int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("cold"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(max(64<<20, fetchBytes)), kgo.FetchMaxPartitionBytes(fetchBytes))
	if err != nil {
		return err
	}
	defer cl.Close()
	var total int64
	start := time.Now()
	for ctx.Err() == nil {
		var got int64
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got += int64(len(r.Value)) })
		total += got
		if now := time.Now(); !now.Before(from) && !now.After(to) {
			n.Add(got)
		}
		if mbps > 0 { // a rate-limited reader: wait until its bytes are due
			due := start.Add(time.Duration(float64(total) / (mbps * 1e6) * float64(time.Second)))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
			}
		}
	}
	return nil
}
