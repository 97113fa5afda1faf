// Command coldread measures how a reader catching up on cold data affects
// the end-to-end latency of a tail consumer when the broker's memory is
// capped below the data size (issue 14, "cache pollution").
//
// It runs one broker (bin/strata) in a cgroup v1 memory group with a limit
// (the page cache the broker's reads and writes fault in is charged to
// it), fills a "cold" topic with more data than the limit, then for each
// log.cold.read.bytes setting (0 turns the page-cache drop off) restarts
// the broker with the group's cache emptied and measures a tail
// producer/consumer pair at a fixed rate, first alone, then while a second
// consumer, in a process of its own (coldproc.go), reads the cold topic
// from the start as fast as it can. Needs root (cgroups). Run it by hand: `make bench-coldread`.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	bin       string
	dir       string
	data      int64
	mem       int64
	tailRate  int
	tailSize  int
	phase     time.Duration
	settings  []string
	coldParts int
	lag       bool // lag.go: no live tail consumer; probe residency and a catch-up read instead
	// brokerCPUs pins the broker (taskset -c); pin this program with
	// taskset itself to keep the clients off those CPUs.
	brokerCPUs string
	coldCPUs   string // pin the cold reader's process (coldproc.go)
	coldNice   int    // run the cold reader's process at this niceness
	// inProcess runs the cold reader in the measuring process, as before
	// coldproc.go, to compare.
	inProcess bool
	http      string  // the broker's http.listen (pprof), empty: off
	coldMBps  float64 // the cold reader's rate limit, 0: as fast as it can
	keepCache bool    // do not empty the group's page cache between settings
	// coldFetchBytes is the cold reader's fetch size per partition.
	coldFetchBytes int32
}

func main() {
	var o options
	var settings string
	flag.StringVar(&o.bin, "bin", "bin/strata", "strata binary")
	flag.StringVar(&o.dir, "dir", "/tmp/strata-coldread", "work directory (the broker's data dir is kept between settings)")
	flag.Int64Var(&o.data, "data", 10<<30, "bytes of cold data to write and then read")
	flag.Int64Var(&o.mem, "mem", 1<<30, "memory limit of the broker's cgroup, bytes")
	flag.IntVar(&o.tailRate, "tail-rate", 2000, "tail records per second")
	flag.IntVar(&o.tailSize, "tail-size", 1024, "tail record size, bytes")
	flag.DurationVar(&o.phase, "phase", 30*time.Second, "length of each measured phase")
	flag.StringVar(&settings, "settings", "0,67108864", "log.cold.read.bytes values to compare, in order (0: no page-cache drop)")
	flag.IntVar(&o.coldParts, "cold-partitions", 1, "partitions of the cold topic")
	flag.StringVar(&o.brokerCPUs, "broker-cpus", "", "pin the broker to these CPUs (taskset -c list); run this program under taskset -c with the others to separate the clients from it")
	flag.IntVar(&o.coldNice, "cold-nice", 0, "run the cold reader's process at this niceness (nice -n): it then stands for a client on another host, whose CPU the broker's machine does not pay")
	flag.StringVar(&o.coldCPUs, "cold-cpus", "", "pin the cold reader's process to these CPUs (taskset -c list)")
	flag.Float64Var(&o.coldMBps, "cold-mbps", 0, "limit the cold reader to this many MB/s (10^6 B); 0: as fast as it can")
	var fetchBytes int
	flag.IntVar(&fetchBytes, "cold-fetch-bytes", 16<<20, "the cold reader's fetch.max.partition.bytes")
	flag.BoolVar(&o.keepCache, "keep-cache", false, "do not empty the group's page cache before each setting: with --mem above --data the cold topic stays cached from the fill, and the cold reader reads memory, not the disk (a control: what the cold reader costs the tail without any disk read)")
	flag.StringVar(&o.http, "http", "", "the broker's http.listen address (metrics and /debug/pprof, e.g. for a trace of a phase); empty: off")
	flag.BoolVar(&o.inProcess, "cold-in-process", false, "read the cold topic in this process, beside the tail's clients, instead of a process of its own")
	var child string
	var childFrom, childTo int64
	flag.StringVar(&child, "cold-reader", "", "internal: be the cold reader of a run, reading from this broker address")
	flag.Int64Var(&childFrom, "cold-from", 0, "internal: the cold reader's window start, Unix ns")
	flag.Int64Var(&childTo, "cold-to", 0, "internal: the cold reader's window end, Unix ns")
	flag.BoolVar(&o.lag, "lag", false, "lagging-reader probe: do not read the tail during a phase; report how much of it stays cached and time a catch-up read of it (lag.go)")
	flag.Parse()
	o.coldFetchBytes = int32(fetchBytes)
	if child != "" {
		if err := coldReader(child, childFrom, childTo, o.coldMBps, o.coldFetchBytes); err != nil {
			fmt.Fprintln(os.Stderr, "coldread: cold reader:", err)
			os.Exit(1)
		}
		return
	}
	o.settings = strings.Split(settings, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "coldread:", err)
		os.Exit(1)
	}
}

// cgroup is a cgroup v1 memory group.
type cgroup struct{ path string }

func newCgroup(limit int64) (*cgroup, error) {
	p := filepath.Join("/sys/fs/cgroup/memory", fmt.Sprintf("strata-coldread-%d", os.Getpid()))
	if err := os.Mkdir(p, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v1 memory group (needs root and /sys/fs/cgroup/memory): %w", err)
	}
	g := &cgroup{p}
	return g, g.write("memory.limit_in_bytes", strconv.FormatInt(limit, 10))
}

func (g *cgroup) write(file, v string) error {
	return os.WriteFile(filepath.Join(g.path, file), []byte(v), 0o644)
}

// stat returns a few memory.stat fields in MiB.
func (g *cgroup) stat() string {
	b, err := os.ReadFile(filepath.Join(g.path, "memory.stat"))
	if err != nil {
		return err.Error()
	}
	want := map[string]bool{"cache": true, "rss": true, "active_file": true, "inactive_file": true}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && want[f[0]] {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			out = append(out, fmt.Sprintf("%s=%dMiB", f[0], n>>20))
		}
	}
	return strings.Join(out, " ")
}

func (g *cgroup) remove() { os.Remove(g.path) }

// broker is one strata process in the cgroup.
type broker struct {
	cmd  *exec.Cmd
	addr string
}

func freePort() (int, error) {
	for range 100 {
		p := 20000 + rand.IntN(10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port")
}

func startBroker(o options, g *cgroup, setting string) (*broker, error) {
	kp, err := freePort()
	if err != nil {
		return nil, err
	}
	cp, err := freePort()
	if err != nil || cp == kp {
		return nil, fmt.Errorf("controller port: %v", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", kp)
	bin := []string{o.bin}
	if o.brokerCPUs != "" {
		bin = []string{"taskset", "-c", o.brokerCPUs, o.bin} // taskset execs it: one pid
	}
	args := append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, g.path}, bin...)
	args = append(args, "serve",
		"--node-id", "1", "--listen", addr, "--controller-listen", fmt.Sprintf("127.0.0.1:%d", cp),
		"--data-dir", filepath.Join(o.dir, "data"), "--set", "http.listen="+o.http, "--set", "log.cold.read.bytes="+setting)
	cmd := exec.Command("/bin/sh", args...)
	logf, err := os.OpenFile(filepath.Join(o.dir, "strata.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	b := &broker{cmd: cmd, addr: addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := kadm.NewClient(cl).BrokerMetadata(ctx)
		cancel()
		if err == nil {
			return b, nil
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("broker not up after 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *broker) stop() {
	b.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
}

func run(o options) error {
	// A fresh data dir per run: the topics are created and filled anew.
	if err := os.RemoveAll(filepath.Join(o.dir, "data")); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	g, err := newCgroup(o.mem)
	if err != nil {
		return err
	}
	defer g.remove()
	fmt.Printf("coldread: memory limit %d MiB, cold data %d MiB in %d partitions, tail %d records/s of %d B, phases of %v\n",
		o.mem>>20, o.data>>20, o.coldParts, o.tailRate, o.tailSize, o.phase)

	b, err := startBroker(o, g, o.settings[0])
	if err != nil {
		return err
	}
	if err := fill(o, b.addr); err != nil {
		b.stop()
		return err
	}
	b.stop()

	if o.lag {
		fmt.Printf("\n%-22s %-9s %9s %10s %10s %12s %12s %10s  %s\n", "log.cold.read.bytes", "phase", "tail MiB", "resident", "catch-up s", "catch-up MB/s", "", "cold MB/s", "cgroup memory at the end of the phase")
	} else {
		fmt.Printf("\n%-22s %-9s %9s %8s %8s %8s %8s %10s %12s %12s %10s  %s\n", "log.cold.read.bytes", "phase", "records", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "cold MB/s", "broker CPU s", "client CPU s", "cold CPU s", "cgroup memory at the end")
	}
	for _, s := range o.settings {
		// The page cache of the previous setting is emptied (no task is
		// in the group between brokers).
		if !o.keepCache {
			if err := g.write("memory.force_empty", "0"); err != nil {
				return fmt.Errorf("empty the cgroup's page cache: %w", err)
			}
		}
		b, err := startBroker(o, g, s)
		if err != nil {
			return err
		}
		for _, withCold := range []bool{false, true} {
			cpu0, self0 := processCPU(b.cmd.Process.Pid), processCPU(os.Getpid())
			r, err := measure(o, g, b.addr, withCold)
			cpu, self := processCPU(b.cmd.Process.Pid)-cpu0, processCPU(os.Getpid())-self0
			if err != nil {
				b.stop()
				return err
			}
			phase, cold := "alone", "-"
			if withCold {
				phase, cold = "with cold", fmt.Sprintf("%.0f", r.coldMBps)
			}
			if o.lag {
				fmt.Printf("%-22s %-9s %9d %9.1f%% %10.2f %12.0f %12s %10s  %s\n", s, phase, r.tailBytes>>20, 100*r.resident,
					r.catchUp.Seconds(), float64(r.catchBytes)/1e6/r.catchUp.Seconds(), "", cold, r.stat)
				continue
			}
			coldCPU := "-"
			if withCold && r.coldCPU >= 0 {
				coldCPU = fmt.Sprintf("%.2f", r.coldCPU)
			}
			fmt.Printf("%-22s %-9s %9d %8.2f %8.2f %8.2f %8.2f %10s %12.2f %12.2f %10s  %s\n", s, phase, len(r.lat), r.pct(50), r.pct(99), r.pct(99.9), r.pct(100), cold, cpu, self, coldCPU, g.stat())
		}
		b.stop()
	}
	return nil
}

// processCPU is the CPU seconds (user and system) process pid has used,
// from /proc/PID/stat; 0 if it cannot be read. The phase's figure spans
// its warm-up too.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// fill creates the topics and writes o.data bytes to the cold topic.
func fill(o options, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
		kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedBytes(256<<20), kgo.DefaultProduceTopic("cold"),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, int32(o.coldParts), 1, nil, "cold"); err != nil {
		return fmt.Errorf("create cold: %w", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "tail"); err != nil {
		return fmt.Errorf("create tail: %w", err)
	}
	start := time.Now()
	val := make([]byte, 16<<10)
	for i := range val {
		val[i] = byte(rand.Uint32())
	}
	var failed atomic.Value
	for n := int64(0); n < o.data; n += int64(len(val)) {
		cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if err, _ := failed.Load().(error); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	took := time.Since(start)
	fmt.Printf("filled %d MiB in %v (%.0f MB/s)\n", o.data>>20, took.Round(time.Millisecond), float64(o.data)/1e6/took.Seconds())
	return nil
}

type result struct {
	lat      []time.Duration
	coldMBps float64
	coldCPU  float64 // the cold reader's process, whole run; -1: none (in process)
	// --lag only: the tail's bytes written in the phase, the fraction of
	// them resident at its end, the catch-up read, the group's memory
	// before it.
	tailBytes  int64
	resident   float64
	catchBytes int64
	catchUp    time.Duration
	stat       string
}

func (r result) pct(p float64) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat)-1) * p / 100)
	return float64(r.lat[i].Microseconds()) / 1000
}

// measure runs the tail pair for o.phase (after a 5 s warm-up), with the
// cold reader beside it when withCold.
func measure(o options, g *cgroup, addr string, withCold bool) (result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("tail"), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return result{}, err
	}
	defer prod.Close()
	consOpts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(500 * time.Millisecond)}
	if !o.lag { // a lagging reader does not read the tail during the phase
		consOpts = append(consOpts, kgo.ConsumeTopics("tail"))
	}
	cons, err := kgo.NewClient(consOpts...)
	if err != nil {
		return result{}, err
	}
	defer cons.Close()

	var mu sync.Mutex
	var lat []time.Duration
	// The measured window starts 5 s in: the consumer has joined and the
	// cold reader (if any) is streaming.
	measureFrom := time.Now().Add(5 * time.Second)
	end := measureFrom.Add(o.phase)
	// pastEnd closes when the consumer has a record sent after the window:
	// every record of the window that will arrive has arrived.
	pastEnd := make(chan struct{})
	var pastOnce sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // tail consumer
		defer wg.Done()
		for ctx.Err() == nil && !o.lag {
			fs := cons.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 {
					return
				}
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
				if !sent.Before(end) {
					pastOnce.Do(func() { close(pastEnd) })
				}
				if sent.After(measureFrom) && sent.Before(end) {
					mu.Lock()
					lat = append(lat, now.Sub(sent))
					mu.Unlock()
				}
			})
		}
	}()
	var coldBytes atomic.Int64
	var child *coldChild
	if withCold && !o.inProcess {
		if child, err = startCold(o, addr, measureFrom, end); err != nil {
			return result{}, err
		}
		defer func() {
			if child != nil { // an error return: do not leave it reading
				child.cmd.Process.Kill()
				child.cmd.Wait()
			}
		}()
	}
	if withCold && o.inProcess {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := readCold(ctx, addr, measureFrom, end, o.coldMBps, o.coldFetchBytes, &coldBytes); err != nil {
				fmt.Fprintln(os.Stderr, "coldread: cold reader:", err)
			}
		}()
	}
	// Tail producer: open loop, one record every 1/rate.
	interval := time.Second / time.Duration(o.tailRate)
	val := make([]byte, max(o.tailSize, 8))
	next := time.Now()
	var lp lagProbe
	if o.lag {
		lp.start(o)
	}
	for time.Now().Before(end.Add(time.Second)) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		v := slices.Clone(val)
		now := time.Now()
		binary.BigEndian.PutUint64(v, uint64(now.UnixNano()))
		var promise func(*kgo.Record, error)
		if o.lag {
			promise = lp.promise(now.After(measureFrom) && now.Before(end))
		}
		prod.Produce(ctx, &kgo.Record{Value: v}, promise)
		next = next.Add(interval)
		if o.lag {
			lp.mark(measureFrom, end)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return result{}, err
	}
	if o.lag {
		cancel()
		wg.Wait()
		n := coldBytes.Load()
		if child != nil {
			cn, _, err := child.wait()
			child = nil
			if err != nil {
				return result{}, err
			}
			n = cn
		}
		return lp.finish(g, addr, float64(n)/1e6/o.phase.Seconds())
	}
	select {
	case <-pastEnd:
	case <-time.After(30 * time.Second):
		return result{}, errors.New("the tail consumer saw no record sent after the window within 30 s")
	}
	cancel()
	wg.Wait()
	slices.Sort(lat)
	r := result{lat: lat, coldMBps: float64(coldBytes.Load()) / 1e6 / o.phase.Seconds(), coldCPU: -1}
	if child != nil {
		n, cpu, err := child.wait()
		child = nil
		if err != nil {
			return result{}, err
		}
		r.coldMBps, r.coldCPU = float64(n)/1e6/o.phase.Seconds(), cpu
	}
	return r, nil
}
