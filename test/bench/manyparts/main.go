package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	bin           string
	dataDir       string
	brokerArgs    []string
	topics        int
	partitions    int
	fewParts      int
	recordSize    int
	bytes         int64
	fewBytes      int64
	linger        time.Duration
	timeout       time.Duration
	pprofDir      string
	pprofSeconds  int
	restarts      bool
	fetch         bool
	stopTimeout   time.Duration
	maxBufRecords int
	maxBufBytes   int
	kind          string
	brokerCPUs    string
	gen           string // kgo or raw
	raw           rawOptions
}

// phase is what one step measured; zero fields did not apply.
type phase struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"mb_per_s,omitempty"`
	CPUsPerGB  float64 `json:"broker_cpu_s_per_gb,omitempty"`
	CPUSeconds float64 `json:"broker_cpu_s"`
	// ClientCPU is this process's own CPU (utime+stime, all its threads:
	// the franz-go client) during the phase.
	ClientCPU      float64 `json:"client_cpu_s,omitempty"`
	ClientCPUPerGB float64 `json:"client_cpu_s_per_gb,omitempty"`
	// FirstWrite is the time the warm-up took: one record to every
	// partition, the first write of each (their logs are created by it).
	FirstWrite float64 `json:"first_write_s,omitempty"`
	FDs        int     `json:"open_fds"`
	RSSMB      float64 `json:"rss_mb"`
	Note       string  `json:"note,omitempty"`
}

type result struct {
	Kind           string  `json:"broker"`
	Gen            string  `json:"generator"`
	LoadAvg        string  `json:"loadavg_start"`
	LoadAvgEnd     string  `json:"loadavg_end"`
	Topics         int     `json:"topics"`
	Partitions     int     `json:"partitions_per_topic"`
	Total          int     `json:"partitions"`
	RecordSize     int     `json:"record_size"`
	RSSPerIdleKB   float64 `json:"rss_per_idle_partition_kb"`
	ManyOverFew    float64 `json:"many_over_few"`
	Phases         []phase `json:"phases"`
	BrokerLog      string  `json:"broker_log"`
	ShutdownSecond float64 `json:"clean_shutdown_s"`
	ShutdownCPU    float64 `json:"clean_shutdown_broker_cpu_s"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "manyparts:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var brokerArgs string
	flag.StringVar(&o.bin, "bin", "bin/strata", "the broker binary (strata, kfakeserver or klite, see --kind)")
	flag.StringVar(&o.kind, "kind", "strata", "what --bin is: strata, kfake (test/bench/kfakeserver) or klite; the restart phases run for strata only")
	flag.StringVar(&o.brokerCPUs, "broker-cpus", "", "pin the broker to these CPUs (taskset -c list), e.g. 1")
	clientCPUs := flag.String("client-cpus", "", "pin this program (the client) to these CPUs: it re-executes itself under taskset -c, e.g. 0")
	flag.StringVar(&o.dataDir, "data-dir", "", "broker data directory (default: a new temporary directory, removed at the end)")
	flag.StringVar(&brokerArgs, "broker-args", "", "extra arguments to the serve command, space-separated (e.g. \"--set log.fd.cache.size=1000\")")
	flag.IntVar(&o.topics, "topics", 100, "topics to create")
	flag.IntVar(&o.partitions, "partitions", 100, "partitions per topic")
	flag.IntVar(&o.fewParts, "few-partitions", 6, "partitions of the reference topic (0: skip the reference)")
	flag.IntVar(&o.recordSize, "record-size", 200, "record value size in bytes")
	flag.Int64Var(&o.bytes, "bytes", 400<<20, "value bytes to produce round-robin over all partitions")
	flag.Int64Var(&o.fewBytes, "few-bytes", 0, "value bytes to produce to the reference topic (default --bytes)")
	flag.DurationVar(&o.linger, "linger", 5*time.Millisecond, "producer linger")
	flag.IntVar(&o.maxBufRecords, "max-buffered-records", 1<<18, "producer max buffered records")
	flag.IntVar(&o.maxBufBytes, "max-buffered-bytes", 64<<20, "producer max buffered value bytes")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up after this long")
	flag.StringVar(&o.pprofDir, "pprof-dir", "", "save CPU profiles of the create, produce and restart phases here")
	flag.IntVar(&o.pprofSeconds, "pprof-seconds", 5, "length of each CPU profile (the phase waits for it to end)")
	flag.DurationVar(&o.stopTimeout, "stop-timeout", 5*time.Minute, "how long a clean shutdown may take")
	flag.BoolVar(&o.restarts, "restarts", true, "measure the clean and the kill -9 restart")
	flag.BoolVar(&o.fetch, "fetch", true, "at the end, consume every partition from its start and check each record's offset and the counts")
	flag.StringVar(&o.gen, "gen", "kgo", "load generator: kgo (franz-go's producer, idempotent, acks=all) or raw (pre-built ProduceRequests written as bytes: rawgen.go)")
	flag.IntVar(&o.raw.conns, "raw-conns", 2, "raw: connections")
	flag.IntVar(&o.raw.inflight, "raw-inflight", 5, "raw: requests in flight per connection")
	flag.IntVar(&o.raw.batchRecords, "batch-records", 4, "raw: records per partition batch in the many-partition phase")
	flag.IntVar(&o.raw.fewBatch, "few-batch-records", 64, "raw: records per partition batch in the reference phase")
	flag.IntVar(&o.raw.partsPerReq, "parts-per-request", 1000, "raw: partitions per ProduceRequest (at most)")
	acks := flag.Int("acks", -1, "raw: -1 (all) or 1 (leader)")
	flag.IntVar(&o.raw.verifyParts, "verify-partitions", 100, "raw: partitions read back after the run (and every end offset checked)")
	maxVersion := flag.Int("raw-max-version", 12, "raw: highest Produce version to use (9-12; 13 needs topic ids)")
	flag.Parse()
	o.raw.acks, o.raw.maxVersion = int16(*acks), int16(*maxVersion)
	fetchSet := false
	flag.Visit(func(f *flag.Flag) { fetchSet = fetchSet || f.Name == "fetch" })
	if *clientCPUs != "" && os.Getenv("MANYPARTS_PINNED") == "" {
		return reexecPinned(*clientCPUs)
	}
	switch o.kind {
	case "strata", "kfake", "klite":
	default:
		return fmt.Errorf("--kind %q: want strata, kfake or klite", o.kind)
	}
	switch {
	case o.gen == "kgo":
	case o.gen != "raw":
		return fmt.Errorf("--gen %q: want kgo or raw", o.gen)
	case o.raw.acks != -1 && o.raw.acks != 1:
		return fmt.Errorf("--acks %d: want -1 or 1", o.raw.acks)
	case o.raw.maxVersion < 9 || o.raw.maxVersion > 12:
		return fmt.Errorf("--raw-max-version %d: want 9 to 12", o.raw.maxVersion)
	case o.raw.conns < 1 || o.raw.inflight < 1 || o.raw.batchRecords < 1 || o.raw.fewBatch < 1 || o.raw.partsPerReq < 1:
		return errors.New("--raw-conns, --raw-inflight, --batch-records, --few-batch-records and --parts-per-request must be positive")
	default:
		// The raw mode checks what was stored with verifyRaw (every end
		// offset, a sample read back) unless a full fetch is asked for.
		if !fetchSet {
			o.fetch = false
		}
	}
	if o.kind != "strata" {
		o.restarts = false
		o.pprofDir = ""
	}
	if o.fewBytes == 0 {
		o.fewBytes = o.bytes
	}
	o.brokerArgs = strings.Fields(brokerArgs)
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	if o.dataDir == "" {
		d, err := os.MkdirTemp("", "manyparts-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dataDir = filepath.Join(d, "data")
	}
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	b := &broker{o: o, addr: "127.0.0.1:" + ports[0], httpAddr: "127.0.0.1:" + ports[1], logPath: o.dataDir + ".log"}
	res := result{Kind: o.kind, Gen: o.gen, LoadAvg: loadAvg(), Topics: o.topics, Partitions: o.partitions, Total: o.topics * o.partitions, RecordSize: o.recordSize, BrokerLog: b.logPath}
	defer b.kill()
	add := func(p phase) {
		p.FDs, p.RSSMB = b.fds(), b.rssMB()
		res.Phases = append(res.Phases, p)
		fmt.Fprintf(os.Stderr, "%-10s %8.3f s  %8.1f MB/s  cpu %6.2f s (%6.3f s/GB)  client cpu %6.2f s (%6.3f s/GB)  fds %6d  rss %7.1f MB  load %s  %s\n",
			p.Name, p.Seconds, p.MBps, p.CPUSeconds, p.CPUsPerGB, p.ClientCPU, p.ClientCPUPerGB, p.FDs, p.RSSMB, loadAvg(), p.Note)
	}

	t0 := time.Now()
	if err := b.start(); err != nil {
		return err
	}
	if err := b.waitReady(ctx); err != nil {
		return err
	}
	add(phase{Name: "start", Seconds: time.Since(t0).Seconds()})

	if o.fewParts > 0 {
		few := []string{"few"}
		if err := createTopics(ctx, b.addr, few, o.fewParts); err != nil {
			return err
		}
		var p phase
		var err error
		if o.gen == "raw" {
			fc := newCounts(1, o.fewParts)
			if p, err = rawProduce(ctx, b, o, few, o.fewParts, o.fewBytes, o.raw.fewBatch, "", fc); err != nil {
				return err
			}
			p.Name = "few"
			p.Note = fmt.Sprintf("%d partitions; %s", o.fewParts, p.Note)
			add(p)
			v, err := verifyRaw(ctx, b, o, few, o.fewParts, 1, fc)
			if err != nil {
				return err
			}
			add(v)
		} else {
			if p, err = produce(ctx, b, o, few, o.fewParts, o.fewBytes, "", nil); err != nil {
				return err
			}
			p.Name = "few"
			p.Note = fmt.Sprintf("%d partitions", o.fewParts)
			add(p)
		}
	}

	topics := make([]string, o.topics)
	for i := range topics {
		topics[i] = fmt.Sprintf("t%03d", i)
	}
	rss0 := b.rssMB() // after the reference phase, so its memory is not counted
	stopProf := b.profile(ctx, "create")
	c0 := b.cpu()
	t0 = time.Now()
	if err := createTopics(ctx, b.addr, topics, o.partitions); err != nil {
		return err
	}
	el := time.Since(t0)
	stopProf()
	add(phase{Name: "create", Seconds: el.Seconds(), CPUSeconds: b.cpu() - c0, Note: fmt.Sprintf("%d x %d partitions", o.topics, o.partitions)})
	res.RSSPerIdleKB = (b.rssMB() - rss0) * 1024 / float64(o.topics*o.partitions)

	counts := newCounts(o.topics, o.partitions)
	var p phase
	if o.gen == "raw" {
		p, err = rawProduce(ctx, b, o, topics, o.partitions, o.bytes, o.raw.batchRecords, "produce", counts)
	} else {
		p, err = produce(ctx, b, o, topics, o.partitions, o.bytes, "produce", counts)
	}
	if err != nil {
		return err
	}
	p.Name = "produce"
	note := fmt.Sprintf("%d partitions round-robin; first write to each took %.2f s", o.topics*o.partitions, p.FirstWrite)
	if p.Note != "" {
		note += "; " + p.Note
	}
	p.Note = note
	add(p)
	if len(res.Phases) > 1 && res.Phases[1].Name == "few" && res.Phases[1].MBps > 0 {
		res.ManyOverFew = p.MBps / res.Phases[1].MBps
	}

	if o.restarts {
		t0 = time.Now()
		if err := b.stop(); err != nil {
			return err
		}
		res.ShutdownSecond = time.Since(t0).Seconds()
		res.ShutdownCPU = b.stopCPU
		p, err := b.restart(ctx, topics, counts, "restart")
		if err != nil {
			return err
		}
		p.Name = "restart"
		p.Note = fmt.Sprintf("clean (shutdown took %.3f s, broker cpu %.2f s)", res.ShutdownSecond, res.ShutdownCPU)
		add(p)

		if err := produceOnePerPartition(ctx, b.addr, topics, o.partitions, counts); err != nil {
			return err
		}
		b.kill()
		p, err = b.restart(ctx, topics, counts, "restart-kill9")
		if err != nil {
			return err
		}
		p.Name = "kill9"
		p.Note = "after kill -9"
		add(p)
	}
	if o.gen == "raw" {
		p, err := verifyRaw(ctx, b, o, topics, o.partitions, o.raw.verifyParts, counts)
		if err != nil {
			return err
		}
		add(p)
	}
	if o.fetch {
		p, err := fetchAll(ctx, b, topics, o.partitions, counts)
		if err != nil {
			return err
		}
		add(p)
	}
	if o.fewParts > 0 && res.ManyOverFew > 0 {
		fmt.Fprintf(os.Stderr, "many/few produce throughput: %.2f; RSS per idle partition %.1f KB\n", res.ManyOverFew, res.RSSPerIdleKB)
	}
	if err := b.stop(); err != nil {
		return err
	}
	res.LoadAvgEnd = loadAvg()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// counts are the acknowledged records per topic index and partition.
type counts struct {
	n [][]atomic.Int64
}

func newCounts(topics, partitions int) *counts {
	c := &counts{n: make([][]atomic.Int64, topics)}
	for i := range c.n {
		c.n[i] = make([]atomic.Int64, partitions)
	}
	return c
}

// broker is the strata process under test.
type broker struct {
	o        options
	addr     string
	httpAddr string
	logPath  string
	cmd      *exec.Cmd
	done     chan error
	// stopCPU is the broker CPU (s) the last stop took: its total from
	// the process's rusage minus what /proc said just before SIGTERM.
	stopCPU float64
}

func (b *broker) start() error {
	var args []string
	switch b.o.kind {
	case "kfake":
		_, port, _ := net.SplitHostPort(b.addr)
		args = []string{"--port", port, "--data-dir", b.o.dataDir}
	case "klite":
		args = []string{"--listen", b.addr, "--data-dir", b.o.dataDir}
	default:
		args = []string{"serve", "--listen", b.addr, "--http-listen", b.httpAddr, "--data-dir", b.o.dataDir, "--log-level", "warn"}
	}
	args = append(args, b.o.brokerArgs...)
	lf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.o.dataDir, 0o755); err != nil {
		return err
	}
	bin := b.o.bin
	if b.o.brokerCPUs != "" {
		// taskset execs the broker, so the pid stays the broker's.
		args = append([]string{"-c", b.o.brokerCPUs, bin}, args...)
		bin = "taskset"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start broker: %w", err)
	}
	b.cmd = cmd
	b.done = make(chan error, 1)
	go func() { b.done <- cmd.Wait(); lf.Close() }()
	return nil
}

func (b *broker) pid() int {
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// stop sends SIGTERM and waits for the process to exit.
func (b *broker) stop() error {
	if b.cmd == nil {
		return nil
	}
	before := b.cpu()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-b.done:
		if ps := b.cmd.ProcessState; ps != nil {
			b.stopCPU = (ps.UserTime() + ps.SystemTime()).Seconds() - before
		}
		b.cmd = nil
		if err != nil {
			return fmt.Errorf("broker exited with %w (log %s)", err, b.logPath)
		}
		return nil
	case <-time.After(b.o.stopTimeout):
		return fmt.Errorf("broker did not stop within %v", b.o.stopTimeout)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (b *broker) kill() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	<-b.done
	b.cmd = nil
}

func (b *broker) waitReady(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		if _, err := adm.BrokerMetadata(ctx); err == nil {
			return nil
		}
		select {
		case err := <-b.done:
			b.cmd = nil
			return fmt.Errorf("broker exited: %v (log %s)", err, b.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// restart starts the broker and measures the time until every partition
// answers ListOffsets with the end offset counts says it has.
func (b *broker) restart(ctx context.Context, topics []string, c *counts, prof string) (phase, error) {
	t0 := time.Now()
	if err := b.start(); err != nil {
		return phase{}, err
	}
	stopProf := func() {}
	if b.o.pprofDir != "" {
		// The HTTP listener comes up early in startup; profile from then.
		for time.Since(t0) < 10*time.Second {
			if resp, err := http.Get("http://" + b.httpAddr + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		stopProf = b.profile(ctx, prof)
	}
	defer stopProf()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return phase{}, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	for {
		lo, err := adm.ListEndOffsets(ctx, topics...)
		if err == nil {
			last = checkOffsets(lo, topics, c)
			if last == "" {
				el := time.Since(t0)
				return phase{Seconds: el.Seconds(), CPUSeconds: b.cpu()}, nil
			}
		} else {
			last = err.Error()
		}
		select {
		case err := <-b.done:
			b.cmd = nil
			return phase{}, fmt.Errorf("broker exited: %v (log %s)", err, b.logPath)
		case <-ctx.Done():
			return phase{}, fmt.Errorf("restart: %w (last: %s)", ctx.Err(), last)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(t0) > 2*time.Minute {
			return phase{}, fmt.Errorf("restart: not serving every partition after 2 min: %s", last)
		}
	}
}

// checkOffsets returns "" if every partition's end offset is its count,
// else what is wrong with the first one that is not.
func checkOffsets(lo kadm.ListedOffsets, topics []string, c *counts) string {
	for ti, t := range topics {
		for p := range c.n[ti] {
			o, ok := lo.Lookup(t, int32(p))
			switch {
			case !ok:
				return fmt.Sprintf("%s-%d: missing", t, p)
			case o.Err != nil:
				return fmt.Sprintf("%s-%d: %v", t, p, o.Err)
			case o.Offset != c.n[ti][p].Load():
				return fmt.Sprintf("%s-%d: end offset %d, want %d", t, p, o.Offset, c.n[ti][p].Load())
			}
		}
	}
	return ""
}

// fds counts /proc/PID/fd.
func (b *broker) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", b.pid()))
	if err != nil {
		return -1
	}
	return len(ents)
}

// rssMB is VmRSS in MiB.
func (b *broker) rssMB() float64 {
	bs, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.pid()))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(bs), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return -1
}

// cpu is the broker's utime+stime in seconds.
func (b *broker) cpu() float64 {
	bs, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", b.pid()))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(bs, ')')
	f := strings.Fields(string(bs[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(u+s) / 100 // CLK_TCK
}

// profile starts a CPU profile of the broker of --pprof-seconds and
// returns the function that waits for it and saves it to
// pprofDir/name.pprof. A no-op without --pprof-dir.
func (b *broker) profile(ctx context.Context, name string) func() {
	if b.o.pprofDir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f, err := os.Create(filepath.Join(b.o.pprofDir, name+".pprof"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer f.Close()
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.httpAddr, b.o.pprofSeconds)
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		io.Copy(f, resp.Body)
	}()
	return wg.Wait
}

func freePorts(n int) ([]string, error) {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}

// perRequest is the most partitions one CreateTopics request creates:
// Kafka's controller.max.records.per.batch, which Strata enforces too.
const perRequest = 10000

// createTopics creates the topics, in as few CreateTopics requests as
// perRequest allows, and waits until Metadata shows every partition with a
// leader.
func createTopics(ctx context.Context, addr string, topics []string, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(120_000)
	step := max(1, perRequest/partitions)
	for i := 0; i < len(topics); i += step {
		batch := topics[i:min(i+step, len(topics))]
		resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, batch...)
		if err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		if err := resp.Error(); err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
	}
	for {
		md, err := adm.Metadata(ctx, topics...)
		if err == nil && allLed(md, topics, partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leaders: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func allLed(md kadm.Metadata, topics []string, partitions int) bool {
	for _, t := range topics {
		td, ok := md.Topics[t]
		if !ok || td.Err != nil || len(td.Partitions) != partitions {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

// produce writes n bytes of records round-robin over every partition of
// topics (record i: topic i mod T, partition (i / T) mod P), acks=all, and
// returns the throughput and the broker's CPU. Acknowledged records are
// counted in c (if not nil).
func produce(ctx context.Context, b *broker, o options, topics []string, partitions int, n int64, prof string, c *counts) (phase, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(b.addr),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(o.maxBufRecords),
		kgo.MaxBufferedBytes(o.maxBufBytes),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	if err != nil {
		return phase{}, err
	}
	defer cl.Close()
	value := recordValue(o.recordSize)
	records := n / int64(o.recordSize)
	// Warm up: one record per partition, so connections and producer id
	// are in place and every partition has been written once.
	tw := time.Now()
	if err := produceOne(ctx, cl, topics, partitions, value, c); err != nil {
		return phase{}, err
	}
	firstWrite := time.Since(tw).Seconds()
	records -= int64(len(topics) * partitions)
	stop := func() {}
	if prof != "" {
		stop = b.profile(ctx, prof)
	}
	defer stop()
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	c0, cc0 := b.cpu(), selfCPU()
	t0 := time.Now()
	T := int64(len(topics))
	for i := range records {
		ti := i % T
		part := int32((i / T) % int64(partitions))
		r := &kgo.Record{Topic: topics[ti], Partition: part, Value: value}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			if c != nil {
				c.n[ti][part].Add(1)
			}
		})
		if i%65536 == 0 && failed.Load() != nil {
			break
		}
	}
	wg.Wait()
	el := time.Since(t0).Seconds()
	cpu, ccpu := b.cpu()-c0, selfCPU()-cc0
	if e := failed.Load(); e != nil {
		return phase{}, fmt.Errorf("produce: %w", *e)
	}
	gb := float64(records*int64(o.recordSize)) / 1e9
	return phase{Seconds: el, MBps: gb * 1e3 / el, CPUSeconds: cpu, CPUsPerGB: cpu / gb, ClientCPU: ccpu, ClientCPUPerGB: ccpu / gb, FirstWrite: firstWrite}, nil
}

// recordValue is the value of every record the generators write: size
// pseudo-random bytes, the same in every run.
func recordValue(size int) []byte {
	value := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	return value
}

// produceOne produces one record to every partition and waits for them.
func produceOne(ctx context.Context, cl *kgo.Client, topics []string, partitions int, value []byte, c *counts) error {
	var rs []*kgo.Record
	for p := range partitions {
		for _, t := range topics {
			rs = append(rs, &kgo.Record{Topic: t, Partition: int32(p), Value: value})
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("produce one per partition: %w", err)
	}
	if c != nil {
		for ti := range topics {
			for p := range partitions {
				c.n[ti][p].Add(1)
			}
		}
	}
	return nil
}

// restartValue is the value of the record produceOnePerPartition writes to
// every partition before the kill -9.
const restartValue = "after-restart"

func produceOnePerPartition(ctx context.Context, addr string, topics []string, partitions int, c *counts) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := produceOne(ctx, cl, topics, partitions, []byte(restartValue), c); err != nil {
		return errors.Join(err, errors.New("(before kill -9)"))
	}
	return nil
}

// selfCPU is this process's utime+stime in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	bs, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(bs))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// reexecPinned runs this program again under taskset -c cpus, with the
// same arguments, and exits with its status.
func reexecPinned(cpus string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command("taskset", append([]string{"-c", cpus, self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "MANYPARTS_PINNED=1")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		return err
	}
	return nil
}

// fetchAll consumes every written partition from its start with one
// client, checks that offsets follow each other and that each partition
// holds the acknowledged count, and measures it.
func fetchAll(ctx context.Context, b *broker, topics []string, partitions int, c *counts) (phase, error) {
	index := map[string]int{}
	offs := map[string]map[int32]kgo.Offset{}
	var want int64
	for ti, t := range topics {
		index[t] = ti
		m := map[int32]kgo.Offset{}
		for p := range partitions {
			if n := c.n[ti][p].Load(); n > 0 {
				m[int32(p)] = kgo.NewOffset().AtStart()
				want += n
			}
		}
		offs[t] = m
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumePartitions(offs), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return phase{}, err
	}
	defer cl.Close()
	next := make([][]int64, len(topics))
	for i := range next {
		next[i] = make([]int64, partitions)
	}
	c0 := b.cpu()
	t0 := time.Now()
	var got, nbytes int64
	var bad error
	for got < want && bad == nil {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return phase{}, fmt.Errorf("fetch: %d of %d records before %w", got, want, ctx.Err())
		}
		for _, e := range fs.Errors() {
			return phase{}, fmt.Errorf("fetch %s/%d: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			ti := index[r.Topic]
			if r.Offset != next[ti][r.Partition] && bad == nil {
				bad = fmt.Errorf("fetch %s/%d: offset %d, want %d", r.Topic, r.Partition, r.Offset, next[ti][r.Partition])
			}
			next[ti][r.Partition] = r.Offset + 1
			got++
			nbytes += int64(len(r.Value))
		})
	}
	if bad != nil {
		return phase{}, bad
	}
	el := time.Since(t0)
	for ti, t := range topics {
		for p := range partitions {
			if n := c.n[ti][p].Load(); next[ti][p] != n {
				return phase{}, fmt.Errorf("fetch %s/%d: %d records, %d acknowledged", t, p, next[ti][p], n)
			}
		}
	}
	cpu := b.cpu() - c0
	mb := float64(nbytes) / 1e6
	return phase{Name: "fetch", Seconds: el.Seconds(), MBps: mb / el.Seconds(), CPUSeconds: cpu, CPUsPerGB: cpu / (mb / 1000),
		Note: fmt.Sprintf("%d records from every partition, offsets and counts checked", got)}, nil
}
