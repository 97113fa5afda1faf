package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	brokers           string
	topic             string
	partitions        int
	recordSize        int
	records           int64
	bytes             int64
	acks              string
	compression       string
	linger            time.Duration
	batchMaxBytes     int
	maxBufRecords     int
	maxBufBytes       int
	fetchMaxPartBytes int
	timeout           time.Duration
	brokerPIDs        []int
	floorDir          string
	rf                int
	rate              float64
	consume           bool
	waitBrokers       int
	warmup            bool
	latencyFile       string
	txnRecords        int64
}

// result is the JSON line printed at the end. Byte counts are record value
// bytes; MB is 10^6 bytes.
type result struct {
	RecordSize     int     `json:"record_size"`
	Partitions     int     `json:"partitions"`
	RF             int     `json:"rf"`
	TargetRate     float64 `json:"target_records_s,omitempty"`
	Acks           string  `json:"acks"`
	Compression    string  `json:"compression"`
	Records        int64   `json:"records"`
	ProduceBytes   int64   `json:"produce_bytes"`
	ProduceSeconds float64 `json:"produce_seconds"`
	ProduceMBs     float64 `json:"produce_mb_s"`
	ProduceRecs    float64 `json:"produce_records_s"`
	ProduceErrors  int64   `json:"produce_errors"`
	LatP50ms       float64 `json:"produce_p50_ms"`
	LatP90ms       float64 `json:"produce_p90_ms"`
	LatP99ms       float64 `json:"produce_p99_ms"`
	LatP999ms      float64 `json:"produce_p999_ms"`
	LatMaxms       float64 `json:"produce_max_ms"`
	// Warm-up: one record per partition, produced and acknowledged before
	// the measured produce phase (--warmup); the time from the first send
	// to the last acknowledgement.
	WarmupRecords  int64   `json:"warmup_records"`
	WarmupMs       float64 `json:"warmup_ms"`
	ConsumeRecords int64   `json:"consume_records"`
	ConsumeBytes   int64   `json:"consume_bytes"`
	ConsumeSeconds float64 `json:"consume_seconds"`
	ConsumeMBs     float64 `json:"consume_mb_s"`
	BytesMoved     int64   `json:"bytes_moved"`
	// Broker CPU (utime+stime ticks from /proc/<pid>/stat, summed over the
	// --broker-pid list) per phase, only with --broker-pid.
	ProduceCPUTicks int64 `json:"produce_cpu_ticks,omitempty"`
	ConsumeCPUTicks int64 `json:"consume_cpu_ticks,omitempty"`
	// The load generator's own CPU (utime+stime ticks) per phase: on a
	// machine whose cores the client shares with the broker, produce
	// throughput is bounded by client + broker CPU per GB.
	ClientProduceCPUTicks int64 `json:"client_produce_cpu_ticks"`
	ClientConsumeCPUTicks int64 `json:"client_consume_cpu_ticks"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	freePort := flag.Bool("free-port", false, "print a free loopback TCP port and exit")
	freePorts := flag.Int("free-ports", 0, "print this many distinct free loopback TCP ports on one line and exit")
	flag.StringVar(&o.brokers, "brokers", "127.0.0.1:9092", "comma-separated seed brokers")
	flag.StringVar(&o.topic, "topic", "bench", "topic to create and use")
	flag.IntVar(&o.partitions, "partitions", 6, "partitions of the topic")
	flag.IntVar(&o.rf, "rf", 1, "replication factor of the topic")
	flag.Float64Var(&o.rate, "rate", 0, "target records/s, open loop: record i is due at start + i/rate and its latency counts from then (0: closed loop, as fast as the broker takes them)")
	flag.IntVar(&o.waitBrokers, "wait-brokers", 1, "before creating the topic, wait until the cluster's metadata lists this many brokers")
	flag.BoolVar(&o.warmup, "warmup", true, "after creating the topic, produce one record to each partition and wait for their acknowledgements before measuring (a new topic's followers may not be fetching yet)")
	flag.StringVar(&o.latencyFile, "latency-file", "", "write one line per produced record to this file: its send (or due) time since the start and its latency, both in ms, in completion order")
	flag.Int64Var(&o.txnRecords, "txn-records", 0, "produce in transactions of this many records each, committed one after another (0: idempotent, no transactions)")
	flag.BoolVar(&o.consume, "consume", true, "after producing, consume the topic from the start (false: produce only)")
	flag.IntVar(&o.recordSize, "record-size", 1024, "record value size in bytes (records have no key)")
	flag.Int64Var(&o.records, "records", 0, "records to produce (overrides --bytes)")
	flag.Int64Var(&o.bytes, "bytes", 1<<30, "value bytes to produce (rounded down to whole records)")
	flag.StringVar(&o.acks, "acks", "all", "all, 1 or 0 (1 and 0 disable idempotence)")
	flag.StringVar(&o.compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	flag.DurationVar(&o.linger, "linger", 5*time.Millisecond, "producer linger")
	flag.IntVar(&o.batchMaxBytes, "batch-max-bytes", 1<<20, "producer batch max bytes")
	flag.IntVar(&o.maxBufRecords, "max-buffered-records", 1<<18, "producer max buffered records")
	flag.IntVar(&o.maxBufBytes, "max-buffered-bytes", 64<<20, "producer max buffered value bytes")
	flag.IntVar(&o.fetchMaxPartBytes, "fetch-max-partition-bytes", 1<<20, "consumer fetch max bytes per partition")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	brokerPIDs := flag.String("broker-pid", "", "comma-separated broker PIDs: if set, report their CPU ticks (/proc/PID/stat, summed) per phase")
	flag.StringVar(&o.floorDir, "page-cache-floor", "", "instead of using a broker: write --bytes to a new file in this dir in 1 MiB writes, report this process's CPU per GB, delete the file")
	flag.Parse()

	for _, f := range strings.Split(*brokerPIDs, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return fmt.Errorf("--broker-pid %q: want comma-separated PIDs", *brokerPIDs)
		}
		o.brokerPIDs = append(o.brokerPIDs, pid)
	}
	if *freePort {
		return printFreePort()
	}
	if *freePorts > 0 {
		return printFreePorts(*freePorts)
	}
	if o.floorDir != "" {
		return pageCacheFloor(o.floorDir, o.bytes)
	}
	if o.recordSize <= 0 || o.partitions <= 0 || o.rf <= 0 {
		return errors.New("--record-size, --partitions and --rf must be positive")
	}
	if o.rate < 0 {
		return errors.New("--rate must not be negative")
	}
	if o.records <= 0 {
		o.records = o.bytes / int64(o.recordSize)
	}
	if o.records <= 0 {
		return errors.New("nothing to produce: --records or --bytes too small")
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	seeds := strings.Split(o.brokers, ",")

	if err := createTopic(ctx, seeds, o.topic, o.partitions, o.rf, o.waitBrokers); err != nil {
		return err
	}
	res := result{
		RecordSize: o.recordSize, Partitions: o.partitions, RF: o.rf, TargetRate: o.rate, Acks: o.acks,
		Compression: o.compression, Records: o.records,
	}
	if o.warmup {
		if err := warmup(ctx, seeds, o, &res); err != nil {
			return err
		}
	}
	self := os.Getpid()
	t0, err := cpuTicksSum(o.brokerPIDs)
	if err != nil {
		return err
	}
	c0, err := cpuTicks(self)
	if err != nil {
		return err
	}
	if err := produce(ctx, seeds, o, &res); err != nil {
		return err
	}
	t1, err := cpuTicksSum(o.brokerPIDs)
	if err != nil {
		return err
	}
	c1, err := cpuTicks(self)
	if err != nil {
		return err
	}
	if o.consume {
		if err := consume(ctx, seeds, o, &res); err != nil {
			return err
		}
	}
	t2, err := cpuTicksSum(o.brokerPIDs)
	if err != nil {
		return err
	}
	c2, err := cpuTicks(self)
	if err != nil {
		return err
	}
	res.ProduceCPUTicks, res.ConsumeCPUTicks = t1-t0, t2-t1
	res.ClientProduceCPUTicks, res.ClientConsumeCPUTicks = c1-c0, c2-c1
	res.BytesMoved = res.ProduceBytes + res.ConsumeBytes
	return json.NewEncoder(os.Stdout).Encode(res)
}

// cpuTicksSum returns the sum of cpuTicks over pids.
func cpuTicksSum(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		t, err := cpuTicks(pid)
		if err != nil {
			return 0, err
		}
		sum += t
	}
	return sum, nil
}

// cpuTicks returns utime+stime of pid in clock ticks, or 0 if pid is 0.
func cpuTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("broker cpu: %w", err)
	}
	// Fields after the parenthesised command name start at field 3 (state);
	// utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("broker cpu: unexpected /proc/%d/stat: %q", pid, b)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("broker cpu: /proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// pageCacheFloor measures what it costs this machine, in CPU, to put n new
// bytes into the page cache: the floor under any broker that persists what
// it is sent (both brokers write every batch to a segment file). It prints
// one JSON line.
func pageCacheFloor(dir string, n int64) error {
	f, err := os.CreateTemp(dir, "page-cache-floor-*")
	if err != nil {
		return fmt.Errorf("page cache floor: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	c0, err := cpuTicks(os.Getpid())
	if err != nil {
		return err
	}
	start := time.Now()
	for off := int64(0); off < n; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), n-off)], off); err != nil {
			return fmt.Errorf("page cache floor: %w", err)
		}
	}
	elapsed := time.Since(start).Seconds()
	c1, err := cpuTicks(os.Getpid())
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(struct {
		Bytes    int64   `json:"bytes"`
		Seconds  float64 `json:"seconds"`
		CPUTicks int64   `json:"cpu_ticks"`
	}{n, elapsed, c1 - c0})
}

// printFreePorts holds n listeners open at once, so the ports differ.
func printFreePorts(n int) error {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("find free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return nil
}

func printFreePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	return nil
}

// createTopic creates the topic with replication factor rf and waits until
// every partition has a leader and rf in-sync replicas in the broker's
// metadata. A cluster that has just started may not have every broker
// registered yet (InvalidReplicationFactor) or no controller yet: those are
// retried until ctx ends.
func createTopic(ctx context.Context, seeds []string, topic string, partitions, rf, brokers int) error {
	for {
		// A new cluster registers (and unfences) its brokers one by one: a
		// topic created before all are there would be placed on fewer
		// brokers. A new client each time, so no cached metadata answers.
		n, err := brokerCount(ctx, seeds)
		if err == nil && n >= brokers {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d brokers: %w (last error %v)", brokers, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		resp, err := adm.CreateTopic(ctx, int32(partitions), int16(rf), nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err == nil {
			break
		}
		var ke *kerr.Error
		if ctx.Err() != nil || !errors.As(err, &ke) || !(ke.Retriable || ke == kerr.InvalidReplicationFactor) {
			return fmt.Errorf("create topic %q: %w", topic, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topic %q: %w (last error %v)", topic, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if t, ok := md.Topics[topic]; ok && t.Err == nil && len(t.Partitions) == partitions && allLed(t, rf) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for topic %q leaders: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// brokerCount asks the cluster how many brokers it offers clients.
func brokerCount(ctx context.Context, seeds []string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return 0, fmt.Errorf("admin client: %w", err)
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return 0, err
	}
	return len(md.Brokers), nil
}

func allLed(t kadm.TopicDetail, rf int) bool {
	for _, p := range t.Partitions {
		if p.Err != nil || p.Leader < 0 || len(p.ISR) < rf {
			return false
		}
	}
	return true
}

func producerOpts(seeds []string, o options) ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.ProducerLinger(o.linger),
		kgo.ProducerBatchMaxBytes(int32(o.batchMaxBytes)),
		kgo.MaxBufferedRecords(o.maxBufRecords),
		kgo.MaxBufferedBytes(o.maxBufBytes),
	}
	switch o.acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("--acks %q: want all, 1 or 0", o.acks)
	}
	var codec kgo.CompressionCodec
	switch o.compression {
	case "none":
		codec = kgo.NoCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "zstd":
		codec = kgo.ZstdCompression()
	default:
		return nil, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", o.compression)
	}
	opts = append(opts, kgo.ProducerBatchCompression(codec))
	if o.txnRecords > 0 {
		if o.acks != "all" && o.acks != "-1" {
			return nil, fmt.Errorf("--txn-records needs --acks all")
		}
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("loadgen-%d", os.Getpid())))
	}
	return opts, nil
}

// produce writes o.records records and fills the produce fields of res.
// Records are recycled through a free list once their promise has run, so
// the client does not allocate one per record.
func produce(ctx context.Context, seeds []string, o options, res *result) error {
	opts, err := producerOpts(seeds, o)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("producer client: %w", err)
	}
	defer cl.Close()

	value := make([]byte, o.recordSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	lat := make([]uint32, o.records) // microseconds, indexed by completion order
	var sent []uint32                // with --latency-file: send time since start, µs, same order
	if o.latencyFile != "" {
		sent = make([]uint32, o.records)
	}
	var start time.Time
	var (
		done     atomic.Int64
		failed   atomic.Int64
		firstErr error
		errOnce  sync.Once
		free     = make(chan *kgo.Record, o.maxBufRecords+1024)
	)
	promise := func(r *kgo.Record, err error) {
		us := time.Since(r.Timestamp).Microseconds()
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = err })
		}
		i := done.Add(1) - 1
		lat[i] = uint32(min(us, 1<<32-1))
		if sent != nil {
			sent[i] = uint32(max(r.Timestamp.Sub(start).Microseconds(), 0))
		}
		select {
		case free <- r:
		default:
		}
	}

	fmt.Fprintf(os.Stderr, "loadgen: producing %d records of %d B to %s\n", o.records, o.recordSize, o.topic)
	var interval float64 // ns between due times, with --rate
	if o.rate > 0 {
		interval = 1e9 / o.rate
		fmt.Fprintf(os.Stderr, "loadgen: open loop at %.0f records/s (%.1f MB/s)\n", o.rate, o.rate*float64(o.recordSize)/1e6)
	}
	var txns, failedBefore int64
	// endTxn ends the current transaction as a transactional producer
	// must: franz-go's EndTransaction does not flush (Java's
	// commitTransaction does), so the buffered records are flushed first;
	// ending with records still in flight commits a transaction without
	// them, and the late batches fail verification (INVALID_TXN_STATE)
	// or, re-added by the client after the end, land in a transaction
	// nobody commits. A record that failed makes the transaction
	// abortable (franz-go fails the records but still lets a commit
	// through): abort it and fail the run, never commit around the hole.
	endTxn := func() error {
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush of transaction %d: %w", txns+1, err)
		}
		if n := failed.Load() - failedBefore; n > 0 {
			abortErr := cl.EndTransaction(ctx, kgo.TryAbort)
			return fmt.Errorf("transaction %d: %d records failed (first error: %w), aborted it (abort error: %v)", txns+1, n, firstErr, abortErr)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit of transaction %d: %w", txns+1, err)
		}
		txns++
		failedBefore = failed.Load()
		return nil
	}
	start = time.Now()
	for i := int64(0); i < o.records; i++ {
		if o.txnRecords > 0 && i%o.txnRecords == 0 {
			if i > 0 {
				if err := endTxn(); err != nil {
					return err
				}
			}
			if err := cl.BeginTransaction(); err != nil {
				return fmt.Errorf("begin transaction: %w", err)
			}
		}
		var r *kgo.Record
		select {
		case r = <-free:
			*r = kgo.Record{}
		default:
			r = new(kgo.Record)
		}
		r.Value = value
		if interval > 0 {
			// Open loop: the latency counts from when the record was due,
			// so a stall shows up as latency, not as a lower send rate
			// (no coordinated omission).
			due := start.Add(time.Duration(float64(i) * interval))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			r.Timestamp = due
		} else {
			r.Timestamp = time.Now()
		}
		cl.Produce(ctx, r, promise)
		if ctx.Err() != nil {
			break
		}
	}
	if o.txnRecords > 0 && o.records > 0 {
		if err := endTxn(); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "loadgen: %d transactions of up to %d records committed\n", txns, o.txnRecords)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush after %s, %d of %d records acknowledged (%d failed): %w",
			time.Since(start).Round(time.Millisecond), done.Load(), o.records, failed.Load(), err)
	}
	elapsed := time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("produce: %d of %d records failed, first error: %w", n, o.records, firstErr)
	}
	lat = lat[:done.Load()]
	if sent != nil {
		if err := writeLatencies(o.latencyFile, sent[:len(lat)], lat); err != nil {
			return err
		}
	}
	slices.Sort(lat)
	res.ProduceBytes = int64(len(lat)) * int64(o.recordSize)
	res.ProduceSeconds = elapsed
	res.ProduceMBs = float64(res.ProduceBytes) / 1e6 / elapsed
	res.ProduceRecs = float64(len(lat)) / elapsed
	res.LatP50ms = quantileMs(lat, 0.50)
	res.LatP90ms = quantileMs(lat, 0.90)
	res.LatP99ms = quantileMs(lat, 0.99)
	res.LatP999ms = quantileMs(lat, 0.999)
	res.LatMaxms = quantileMs(lat, 1)
	fmt.Fprintf(os.Stderr, "loadgen: produced %.1f MB in %.2fs (%.1f MB/s)\n",
		float64(res.ProduceBytes)/1e6, elapsed, res.ProduceMBs)
	return nil
}

func writeLatencies(name string, sent, lat []uint32) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("latency file: %w", err)
	}
	w := bufio.NewWriter(f)
	for i := range lat {
		fmt.Fprintf(w, "%.3f %.3f\n", float64(sent[i])/1000, float64(lat[i])/1000)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("latency file: %w", err)
	}
	return f.Close()
}

// warmup produces one record to each partition with the run's producer
// settings and waits until all are acknowledged.
func warmup(ctx context.Context, seeds []string, o options, res *result) error {
	o.txnRecords = 0 // the warm-up is plain idempotent produce
	opts, err := producerOpts(seeds, o)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("warm-up client: %w", err)
	}
	defer cl.Close()
	value := make([]byte, o.recordSize)
	start := time.Now()
	var rs []*kgo.Record
	for p := range o.partitions {
		rs = append(rs, &kgo.Record{Value: value, Partition: int32(p)})
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		return fmt.Errorf("warm-up produce: %w", err)
	}
	res.WarmupRecords = int64(len(rs))
	res.WarmupMs = float64(time.Since(start).Microseconds()) / 1000
	fmt.Fprintf(os.Stderr, "loadgen: warm-up: %d records acknowledged in %.1f ms\n", len(rs), res.WarmupMs)
	return nil
}

// quantileMs returns the q-quantile (nearest rank) of sorted microsecond
// samples, in milliseconds.
func quantileMs(sorted []uint32, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1000
}

// consume reads the topic from the start with a fresh, group-less consumer
// until it has seen every produced record, and fills the consume fields.
func consume(ctx context.Context, seeds []string, o options, res *result) error {
	want := res.ProduceBytes/int64(o.recordSize) + res.WarmupRecords
	start := time.Now()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumeTopics(o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(int32(o.fetchMaxPartBytes)),
	)
	if err != nil {
		return fmt.Errorf("consumer client: %w", err)
	}
	defer cl.Close()
	var recs, nbytes int64
	for recs < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("consume: %d of %d records after %s: %w", recs, want, time.Since(start), ctx.Err())
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("%s[%d]: %w", t, p, err))
		})
		if ferr != nil {
			return fmt.Errorf("consume: %w", ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			recs++
			nbytes += int64(len(r.Value))
		})
	}
	elapsed := time.Since(start).Seconds()
	if recs != want {
		return fmt.Errorf("consume: read %d records, produced %d", recs, want)
	}
	// The warm-up records are read too; count only the measured ones.
	recs -= res.WarmupRecords
	nbytes -= res.WarmupRecords * int64(o.recordSize)
	res.ConsumeRecords = recs
	res.ConsumeBytes = nbytes
	res.ConsumeSeconds = elapsed
	res.ConsumeMBs = float64(nbytes) / 1e6 / elapsed
	fmt.Fprintf(os.Stderr, "loadgen: consumed %.1f MB in %.2fs (%.1f MB/s)\n",
		float64(nbytes)/1e6, elapsed, res.ConsumeMBs)
	return nil
}
