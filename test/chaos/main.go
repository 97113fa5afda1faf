// Command strata-chaos runs real `strata serve` clusters under seeded
// fault schedules (kill -9, SIGSTOP, network partitions in network
// namespaces, full disks, damaged segment tails, restarts) while
// franz-go clients produce and consume, then checks the history for
// Jepsen's Kafka anomalies. See RELIABILITY.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

type config struct {
	schedules     int
	seed          int64
	nodes         int
	duration      time.Duration
	rf            int
	acks          string
	minISR        int
	partitions    int
	producers     int
	rate          int
	faults        string
	overlap       float64
	txn           int
	control       bool
	unsafeCorrupt bool
	netMode       string
	bin           string
	out           string
	workdir       string
	tmpfsMiB      int
	keep          bool
	verbose       bool
	sets          multi
}

func main() {
	var cfg config
	var cleanup bool
	flag.IntVar(&cfg.schedules, "schedules", 10, "number of schedules (schedule i uses seed+i)")
	flag.Int64Var(&cfg.seed, "seed", 0, "base seed (0: from the clock; printed)")
	flag.IntVar(&cfg.nodes, "nodes", 3, "cluster size (3 or 5; every node is broker and controller)")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "workload and fault time per schedule")
	flag.IntVar(&cfg.rf, "rf", 1, "replication factor of the test topic")
	flag.StringVar(&cfg.acks, "acks", "all", "acks of the main producers: all (idempotent) or 1")
	flag.IntVar(&cfg.minISR, "min-insync", 2, "min.insync.replicas of the test topic (used when rf>1)")
	flag.IntVar(&cfg.partitions, "partitions", 4, "partitions of the test topic")
	flag.IntVar(&cfg.producers, "producers", 2, "main producers")
	flag.IntVar(&cfg.rate, "rate", 40, "records per second per producer")
	flag.StringVar(&cfg.faults, "faults", "all", "comma-separated fault kinds ("+strings.Join(AllFaults, ",")+"), all, or none")
	flag.Float64Var(&cfg.overlap, "overlap", 0.3, "fraction of steps that start while the previous one is held, on other nodes (kill, pause, isolate, asym, restart, clients only; 0: one fault at a time)")
	flag.IntVar(&cfg.txn, "txn", 0, "transactional producers on a topic of their own, read read_committed (0: none)")
	flag.BoolVar(&cfg.control, "control", true, "also run an acks=1 control producer (its anomalies are reported, not failed on)")
	flag.BoolVar(&cfg.unsafeCorrupt, "unsafe-corrupt", false, "allow corrupting segment tails even when that is a majority of replicas (rf<3): a known data loss, to show the checker catches it")
	flag.StringVar(&cfg.netMode, "net", "auto", "netns, proxy, or auto (netns when possible)")
	flag.StringVar(&cfg.bin, "bin", os.Getenv("STRATA_BIN"), "strata binary (default $STRATA_BIN, else bin/strata)")
	flag.StringVar(&cfg.out, "out", "bin/chaos-out", "directory for the records of failing schedules")
	flag.StringVar(&cfg.workdir, "workdir", os.TempDir(), "where data dirs go")
	flag.IntVar(&cfg.tmpfsMiB, "tmpfs-mib", 48, "size of the tmpfs data dir of disk-full targets")
	flag.BoolVar(&cfg.keep, "keep", false, "keep data dirs")
	flag.BoolVar(&cfg.verbose, "v", false, "print each schedule's fault timeline")
	flag.Var(&cfg.sets, "set", "broker setting passed to every node as --set key=value (repeatable)")
	flag.BoolVar(&cleanup, "cleanup", false, "remove namespaces, links and mounts left by earlier runs, then exit")
	flag.Parse()

	if cleanup {
		done := cleanupLeftovers(cfg.workdir)
		for _, d := range done {
			fmt.Println("removed", d)
		}
		fmt.Printf("cleanup: removed %d leftovers of finished runs\n", len(done))
		return
	}
	os.Exit(runAll(cfg))
}

func (cfg config) rerun(seed int64) string {
	args := []string{"bin/strata-chaos", "--bin", "bin/strata", "--schedules", "1", "--seed", fmt.Sprint(seed), "--nodes", fmt.Sprint(cfg.nodes),
		"--duration", cfg.duration.String(), "--rf", fmt.Sprint(cfg.rf), "--acks", cfg.acks, "--min-insync", fmt.Sprint(cfg.minISR),
		"--partitions", fmt.Sprint(cfg.partitions), "--producers", fmt.Sprint(cfg.producers), "--rate", fmt.Sprint(cfg.rate),
		"--faults", cfg.faults, fmt.Sprintf("--control=%v", cfg.control), "--net", cfg.netMode,
		"--overlap", fmt.Sprint(cfg.overlap), "--txn", fmt.Sprint(cfg.txn)}
	if cfg.unsafeCorrupt {
		args = append(args, "--unsafe-corrupt")
	}
	for _, s := range cfg.sets {
		args = append(args, "--set", s)
	}
	return strings.Join(args, " ")
}

func (cfg config) faultKinds() ([]string, []string, error) {
	var kinds, dropped []string
	switch cfg.faults {
	case "all":
		kinds = append(kinds, AllFaults...)
	case "none", "":
	default:
		for _, k := range strings.Split(cfg.faults, ",") {
			ok := false
			for _, a := range AllFaults {
				ok = ok || a == k
			}
			if !ok {
				return nil, nil, fmt.Errorf("unknown fault kind %q", k)
			}
			kinds = append(kinds, k)
		}
	}
	var out []string
	for _, k := range kinds {
		if k == FCorrupt && cfg.rf < 3 && !cfg.unsafeCorrupt {
			dropped = append(dropped, k+" (needs rf>=3 so that a minority of replicas can be damaged; --unsafe-corrupt forces it)")
			continue
		}
		if k == FDiskFull && os.Geteuid() != 0 {
			dropped = append(dropped, k+" (needs root to mount a tmpfs)")
			continue
		}
		out = append(out, k)
	}
	return out, dropped, nil
}

// Totals are the numbers of the summary table.
type Totals struct {
	Run, Skipped, Errors, Failing int
	Faults                        map[string]int
	OK, Failed, Unknown, Reads    int
	Landed                        int
	ConsumerErrors, Crashes       int
	Main, Control                 map[string]int
	Txns                          map[Outcome]int
}

func runAll(cfg config) (code int) {
	if cfg.bin == "" {
		cfg.bin = "bin/strata"
	}
	if abs, err := filepath.Abs(cfg.bin); err == nil {
		cfg.bin = abs
	}
	if _, err := os.Stat(cfg.bin); err != nil {
		fmt.Fprintf(os.Stderr, "strata-chaos: no strata binary at %s (build it: make build)\n", cfg.bin)
		return 1
	}
	if cfg.nodes != 3 && cfg.nodes != 5 {
		fmt.Fprintln(os.Stderr, "strata-chaos: --nodes must be 3 or 5")
		return 1
	}
	if cfg.acks != "all" && cfg.acks != "1" {
		fmt.Fprintln(os.Stderr, "strata-chaos: --acks must be all or 1")
		return 1
	}
	if cfg.seed == 0 {
		cfg.seed = time.Now().UnixNano() % 1000000
	}
	kinds, dropped, err := cfg.faultKinds()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-chaos:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Everything set up is torn down, on return, on panic, and (through ctx)
	// on Ctrl-C.
	var cleanups []func()
	defer func() {
		r := recover()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if r != nil {
			panic(r)
		}
	}()

	var nw Net
	mode := cfg.netMode
	if mode == "auto" || mode == "netns" {
		e, err := newNetns(cfg.nodes)
		if err == nil {
			nw = e
		} else if mode == "netns" {
			fmt.Fprintln(os.Stderr, "strata-chaos: network namespaces:", err)
			return 1
		} else {
			fmt.Printf("network namespaces unavailable (%v); falling back to loopback proxies\n", err)
		}
	}
	if nw == nil {
		e, err := newProxyNet(cfg.nodes)
		if err != nil {
			fmt.Fprintln(os.Stderr, "strata-chaos: proxies:", err)
			return 1
		}
		nw = e
	}
	cleanups = append(cleanups, nw.Teardown)

	work, err := os.MkdirTemp(cfg.workdir, fmt.Sprintf("strata-chaos-%d-", os.Getpid()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-chaos:", err)
		return 1
	}
	if !cfg.keep {
		cleanups = append(cleanups, func() { os.RemoveAll(work) })
	}

	fmt.Printf("strata-chaos: %d schedules from seed %d, %d nodes, %v each, rf=%d acks=%s min.insync=%d, network: %s\n",
		cfg.schedules, cfg.seed, cfg.nodes, cfg.duration, cfg.rf, cfg.acks, cfg.minISR, nw.Mode())
	fmt.Printf("faults: %s\n", strings.Join(kinds, " "))
	for _, d := range dropped {
		fmt.Printf("not injected: %s\n", d)
	}

	tot := Totals{Faults: map[string]int{}, Main: map[string]int{}, Control: map[string]int{}, Txns: map[Outcome]int{}}
	start := time.Now()
	for i := 0; i < cfg.schedules && ctx.Err() == nil; i++ {
		seed := cfg.seed + int64(i)
		s := &scheduleRun{cfg: cfg, seed: seed, kinds: kinds, nw: nw, dir: filepath.Join(work, fmt.Sprintf("s%d", seed))}
		res := s.run(ctx, &cleanups)
		line := fmt.Sprintf("schedule %d/%d seed=%d %6.1fs faults=[%s] writes ok=%d unknown=%d (landed %d) failed=%d reads=%d",
			i+1, cfg.schedules, seed, res.elapsed.Seconds(), strings.Join(res.faults, " "), res.ok, res.unknown, res.landed, res.failed, res.reads)
		if cfg.txn > 0 {
			line += fmt.Sprintf(" txns committed=%d aborted=%d unknown=%d", res.txns[TxnCommitted], res.txns[TxnAborted], res.txns[TxnUnknown])
			if res.txnStuck > 0 {
				line += fmt.Sprintf(" (given up unanswered: %d; client logs and goroutine dumps in %s)", res.txnStuck,
					filepath.Join(cfg.out, fmt.Sprintf("stall-seed-%d", seed)))
			}
		}
		switch {
		case res.skipped != "":
			tot.Skipped++
			fmt.Printf("schedule %d/%d seed=%d SKIPPED: %s\n", i+1, cfg.schedules, seed, res.skipped)
			if errors.Is(res.err, ErrRefused) {
				fmt.Printf("the cluster refuses rf=%d topics (replication is not there yet); skipping the remaining schedules\n", cfg.rf)
				i = cfg.schedules
			}
			continue
		case res.err != nil && ctx.Err() != nil:
			fmt.Printf("schedule %d/%d seed=%d interrupted\n", i+1, cfg.schedules, seed)
			continue
		}
		tot.Run++
		for k, n := range res.applied {
			tot.Faults[k] += n
		}
		tot.OK += res.ok
		tot.Failed += res.failed
		tot.Unknown += res.unknown
		tot.Landed += res.landed
		tot.Reads += res.reads
		tot.ConsumerErrors += res.consumerErrors
		tot.Crashes += res.crashes
		for o, n := range res.txns {
			tot.Txns[o] += n
		}
		for _, a := range res.anomalies {
			if a.Class == "control" {
				tot.Control[a.Kind]++
			} else {
				tot.Main[a.Kind]++
			}
		}
		failing := len(Result{Anomalies: res.anomalies}.Failing())
		status := "OK"
		if res.err != nil {
			tot.Errors++
			status = "ERROR: " + res.err.Error()
		}
		if failing > 0 {
			tot.Failing++
			status = fmt.Sprintf("ANOMALIES: %d", failing)
		}
		if res.crashes > 0 {
			status += fmt.Sprintf(" (nodes exited by themselves: %d)", res.crashes)
		}
		if c := len(res.anomalies) - failing; c > 0 {
			status += fmt.Sprintf(" (control acks=1: %d)", c)
		}
		fmt.Printf("%s %s\n", line, status)
		if res.saved != "" {
			fmt.Printf("  saved to %s\n  rerun: %s\n", res.saved, cfg.rerun(seed))
		}
	}
	printSummary(cfg, tot, time.Since(start))
	if ctx.Err() != nil {
		fmt.Println("interrupted: the cluster, namespaces and mounts are torn down")
		return 130
	}
	switch {
	case tot.Failing > 0 || tot.Errors > 0:
		return 1
	case tot.Run == 0 && tot.Skipped > 0:
		return 2
	}
	return 0
}

func printSummary(cfg config, t Totals, took time.Duration) {
	fmt.Printf("\n== summary (seed %d, %d nodes, rf=%d acks=%s, %v) ==\n", cfg.seed, cfg.nodes, cfg.rf, cfg.acks, took.Round(time.Second))
	fmt.Printf("%-28s %d\n", "schedules run", t.Run)
	fmt.Printf("%-28s %d\n", "schedules skipped", t.Skipped)
	fmt.Printf("%-28s %d\n", "schedules with errors", t.Errors)
	fmt.Printf("%-28s %d\n", "schedules with anomalies", t.Failing)
	var ks []string
	for k := range t.Faults {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Printf("%-28s %d\n", "fault "+k, t.Faults[k])
	}
	fmt.Printf("%-28s %d ok, %d unknown (%d of them read: they landed), %d failed\n", "writes", t.OK, t.Unknown, t.Landed, t.Failed)
	fmt.Printf("%-28s %d (consumer fetch errors %d)\n", "records polled", t.Reads, t.ConsumerErrors)
	fmt.Printf("%-28s %d\n", "nodes that exited by themselves", t.Crashes)
	if cfg.txn > 0 {
		fmt.Printf("%-28s %d committed, %d aborted, %d unknown\n", "transactions", t.Txns[TxnCommitted], t.Txns[TxnAborted], t.Txns[TxnUnknown])
	}
	fmt.Printf("%-28s %-8s %s\n", "anomaly", "main", "control(acks=1)")
	for _, k := range AnomalyKinds {
		fmt.Printf("%-28s %-8d %d\n", k, t.Main[k], t.Control[k])
	}
	if cfg.txn > 0 {
		fmt.Printf("%-28s %s\n", "transactional anomaly", "txn (counted in main above when shared)")
		for _, k := range []string{AbortedRead, LostCommitted, NonAtomic, HangingTxn} {
			fmt.Printf("%-28s %d\n", k, t.Main[k])
		}
	}
}

type scheduleResult struct {
	elapsed                    time.Duration
	faults                     []string
	applied                    map[string]int
	ok, failed, unknown, reads int
	consumerErrors             int
	crashes                    int
	landed                     int
	anomalies                  []Anomaly
	txns                       map[Outcome]int
	txnStuck                   int
	skipped                    string
	err                        error
	saved                      string
}

type scheduleRun struct {
	cfg   config
	seed  int64
	kinds []string
	nw    Net
	dir   string
}

func (s *scheduleRun) run(ctx context.Context, cleanups *[]func()) (res scheduleResult) {
	start := time.Now()
	defer func() { res.elapsed = time.Since(start) }()
	cfg := s.cfg
	sched := Generate(s.seed, cfg.nodes, cfg.duration, s.kinds, cfg.rf, int32(cfg.partitions), cfg.overlap)
	tmpfs := map[int]int{}
	for _, st := range sched.Steps {
		res.faults = append(res.faults, st.String())
		if st.Kind == FDiskFull {
			tmpfs[st.Nodes[0]] = cfg.tmpfsMiB
		}
	}
	var extra []string
	for _, kv := range cfg.sets {
		extra = append(extra, "--set", kv)
	}
	tl := &Timeline{start: time.Now()}
	c := newCluster(cfg.bin, s.dir, s.nw, cfg.nodes, extra, tmpfs)
	*cleanups = append(*cleanups, c.Shutdown)
	h := newHistory()
	defer func() {
		c.Shutdown()
		s.nw.Heal()
		if cfg.verbose {
			fmt.Print(tl.String())
		}
		// A node that exited by itself is saved too (its log says why),
		// though it fails nothing: Kafka halts on some errors as well.
		if (res.err != nil && ctx.Err() == nil) || len(Result{Anomalies: res.anomalies}.Failing()) > 0 || res.crashes > 0 {
			res.saved = s.save(sched, tl, h, res)
			c.copyLogs(res.saved)
		}
		if !cfg.keep {
			os.RemoveAll(s.dir)
		}
	}()

	tl.Add("schedule seed=%d: %s", s.seed, strings.Join(res.faults, " "))
	if err := c.Start(ctx); err != nil {
		res.err = fmt.Errorf("start: %w", err)
		return
	}
	if err := c.Ready(ctx, 60*time.Second); err != nil {
		res.err = fmt.Errorf("cluster not ready: %w", err)
		return
	}
	topic := fmt.Sprintf("chaos-%d", s.seed)
	if err := c.CreateTopic(ctx, topic, int32(cfg.partitions), int16(cfg.rf), cfg.minISR); err != nil {
		if errors.Is(err, ErrRefused) {
			res.skipped = fmt.Sprintf("creating a topic with rf=%d: %v", cfg.rf, err)
		}
		res.err = err
		return
	}
	tl.Add("topic %s: %d partitions, rf=%d", topic, cfg.partitions, cfg.rf)

	var tw *TxnWorkload
	if cfg.txn > 0 {
		h.Txn = newTxnHistory(topic + "-txn")
		if err := c.CreateTopic(ctx, h.Txn.Topic, int32(cfg.partitions), int16(cfg.rf), cfg.minISR); err != nil {
			res.err = fmt.Errorf("transactional topic: %w", err)
			return
		}
		tw = &TxnWorkload{c: c, h: h.Txn, parts: int32(cfg.partitions), producers: cfg.txn, seed: s.seed,
			stalls: &stallRecorder{c: c, tl: tl, dir: filepath.Join(cfg.out, fmt.Sprintf("stall-seed-%d", s.seed))}}
		tl.Add("transactions: %d producers on %s, one read_committed reader", cfg.txn, h.Txn.Topic)
	}
	w := &Workload{c: c, h: h, topic: topic, parts: int32(cfg.partitions), acks: cfg.acks, producers: cfg.producers, rate: cfg.rate,
		group: "chaos-group-" + topic}
	in := &Injector{c: c, net: s.nw, topic: topic, tl: tl, applied: map[string]int{}}
	wctx, stopWork := context.WithTimeout(ctx, cfg.duration)
	defer stopWork()
	faultsDone := make(chan error, 1)
	go func() { faultsDone <- runSteps(wctx, in, sched.Steps) }()
	tl.Add("workload: %d producers acks=%s, control=%v, 2 group consumers, 1 assigned reader", cfg.producers, cfg.acks, cfg.control)
	txnDone := make(chan error, 1)
	if tw != nil {
		go func() { txnDone <- tw.Run(wctx) }()
	} else {
		txnDone <- nil
	}
	werr := w.Run(wctx, cfg.control)
	if terr := <-txnDone; werr == nil {
		werr = terr
	}
	ferr := <-faultsDone
	tl.Add("workload stopped")
	res.applied = in.applied
	if ctx.Err() != nil {
		res.err = ctx.Err()
		return
	}
	if werr != nil {
		res.err = werr
		return
	}
	if ferr != nil {
		tl.Add("fault injection failed: %v", ferr)
	}
	hctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	err := in.HealAll(hctx)
	res.crashes = in.crashes
	if err != nil {
		res.err = fmt.Errorf("heal: %w", err)
		return
	}
	if err := c.Ready(hctx, 60*time.Second); err != nil {
		res.err = fmt.Errorf("after healing: %w", err)
		return
	}
	if err := c.AwaitLeaders(hctx, topic, 60*time.Second); err != nil {
		tl.Add("after healing: %v", err)
	}
	if err := w.FinalRead(hctx, 60*time.Second); err != nil {
		tl.Add("%v", err)
	}
	tl.Add("final read: end offsets %v", h.FinalEnd)
	if tw != nil {
		// The coordinator aborts what a fault left open after the
		// transaction timeout (10 s): wait a little longer than that.
		if err := tw.FinalRead(hctx, 45*time.Second); err != nil {
			tl.Add("%v", err)
		}
		tl.Add("transactional final read: end offsets %v", h.Txn.FinalEnd)
		res.txnStuck = h.Txn.Stuck
		res.txns = map[Outcome]int{}
		for _, t := range h.Txn.Txns {
			res.txns[t.Outcome]++
		}
	}
	res.ok, res.failed, res.unknown, res.landed, res.reads = h.counts()
	res.consumerErrors = h.ConsumerErrors
	res.anomalies = Check(h).Anomalies
	if h.Txn != nil {
		res.anomalies = append(res.anomalies, CheckTxn(h.Txn)...)
	}
	if cfg.rf > 1 {
		// Replicas agree below the high watermark once they have all
		// caught up; one restarted at the end of the schedule may still
		// be fetching.
		if err := c.AwaitFullISR(hctx, topic, 60*time.Second); err != nil {
			tl.Add("after healing: %v", err)
		}
		if h.Txn != nil {
			if err := c.AwaitFullISR(hctx, h.Txn.Topic, 60*time.Second); err != nil {
				tl.Add("after healing: %v", err)
			}
		}
	}
	for _, n := range c.Nodes {
		if err := n.Stop(30 * time.Second); err != nil {
			tl.Add("stop: %v", err)
		}
	}
	res.anomalies = append(res.anomalies, CompareReplicas(c, topic, cfg.rf, h.FinalEnd)...)
	if h.Txn != nil {
		res.anomalies = append(res.anomalies, CompareReplicas(c, h.Txn.Topic, cfg.rf, h.Txn.FinalEnd)...)
	}
	if ferr != nil && res.err == nil {
		res.err = ferr
	}
	return
}

// save writes what a rerun needs: the seed and command, the schedule, the
// fault timeline, the anomalies with their operations, and the history.
func (s *scheduleRun) save(sched Schedule, tl *Timeline, h *History, res scheduleResult) string {
	dir := filepath.Join(s.cfg.out, fmt.Sprintf("seed-%d-%s", s.seed, time.Now().UTC().Format("20060102T150405")))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "save:", err)
		return ""
	}
	errText := ""
	if res.err != nil {
		errText = res.err.Error()
	}
	os.WriteFile(filepath.Join(dir, "rerun.txt"), []byte(fmt.Sprintf("seed %d\n%s\nerror: %s\n", s.seed, s.cfg.rerun(s.seed), errText)), 0o644)
	os.WriteFile(filepath.Join(dir, "timeline.txt"), []byte(tl.String()), 0o644)
	write := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	write("schedule.json", sched)
	write("anomalies.json", res.anomalies)
	h.mu.Lock()
	write("history.json", h)
	h.mu.Unlock()
	return dir
}

// runSteps applies the schedule's steps at their times. A step waits for
// every earlier one to heal unless it overlaps its predecessor, in which
// case both are held at once. The first error stops new steps.
func runSteps(ctx context.Context, in *Injector, steps []Step) error {
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return first
	}
steps:
	for _, st := range steps {
		if !st.Overlap {
			wg.Wait()
		}
		if failed() != nil {
			break
		}
		select {
		case <-ctx.Done():
			break steps
		case <-time.After(time.Until(t0.Add(st.At))):
		}
		wg.Add(1)
		go func(st Step) {
			defer wg.Done()
			if err := in.Apply(ctx, st); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", st, err)
				}
				mu.Unlock()
			}
		}(st)
	}
	wg.Wait()
	return failed()
}
