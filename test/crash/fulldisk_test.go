package crash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/test/internal/testbin"
)

const fullTopic = "full"

// rawProduce sends one batch per partition with a plain Produce request
// (no client retries) and returns each partition's error code and message.
func rawProduce(t *testing.T, ctx context.Context, cl *kgo.Client, seq *int64) map[int32]string {
	t.Helper()
	return rawProduceTo(t, ctx, cl, fullTopic, 2, seq)
}

// rawProduceTo is rawProduce to partitions 0..parts-1 of topic.
func rawProduceTo(t *testing.T, ctx context.Context, cl *kgo.Client, topic string, parts int32, seq *int64) map[int32]string {
	t.Helper()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || td[topic].Err != nil {
		t.Fatalf("list %s: %v %v", topic, err, td[topic].Err)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic, rt.TopicID = topic, td[topic].ID
	for part := range parts {
		*seq++
		b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(),
			[]record.Record{{Value: []byte(fmt.Sprintf("raw%08d", *seq))}})
		if err != nil {
			t.Fatal(err)
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = part, b
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	out := map[int32]string{}
	for _, rp := range resp.Topics[0].Partitions {
		s := "OK"
		if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
			s = err.(*kerr.Error).Message
			if rp.ErrorMessage != nil {
				s += ": " + *rp.ErrorMessage
			}
		}
		out[rp.Partition] = s
	}
	return out
}

// metric returns the value of the sample of name (no labels) in a
// Prometheus text scrape.
func metric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// logLines counts the lines of the broker's log that hold every one of subs.
func logLines(t *testing.T, p *process, subs ...string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "strata.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		ok := len(line) > 0
		for _, s := range subs {
			ok = ok && bytes.Contains(line, []byte(s))
		}
		if ok {
			n++
		}
	}
	return n
}

// TestCrashFullDisk runs a broker on a small tmpfs and fills it: produce
// answers KAFKA_STORAGE_ERROR (one ERROR line per partition, however many
// requests fail), a topic created meanwhile is reported as failed and
// leaves no directory, and once space is freed an idempotent producer's
// retries succeed; every acknowledged record is read back, and after a
// kill -9 the recovered log ends at the same offsets with every batch
// whole and CRC-valid.
func TestCrashFullDisk(t *testing.T) {
	httpAddr := freeAddr(t)
	// The direct path: TestCrashFullDiskJournal is this test with the
	// journal (on by default), whose write fails first.
	run := startFullDisk(t, "--http-listen", httpAddr, "--set", "log.journal.enable=false")
	p, ctx, producer, raw, data := run.p, run.ctx, run.producer, run.raw, run.data
	ack, produce := run.fp.ack, run.fp.produce
	adm := kadm.NewClient(raw)

	// Logs are created on disk by their first write (storage.Options.Lazy,
	// docs/design-notes.md "Many partitions"): a topic created before the
	// disk fills has no directory yet.
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "late"); err != nil || res.Err != nil {
		t.Fatalf("create late: %v %v", err, res.Err)
	}

	// The disk fills up.
	filler := testbin.Fill(t, data)
	// A batch may still fit in the last page of a segment file: produce
	// until both partitions fail, then every request must fail.
	for i := 0; ; i++ {
		got := rawProduce(t, ctx, raw, &run.rawSeq)
		if got[0] != "OK" && got[1] != "OK" {
			break
		}
		if i == 1000 {
			t.Fatalf("produce still succeeds on a full disk: %v", got)
		}
	}
	for i := range 5 {
		got := rawProduce(t, ctx, raw, &run.rawSeq)
		for part, s := range got {
			if !strings.HasPrefix(s, "KAFKA_STORAGE_ERROR") || !strings.Contains(s, "no space left on device") {
				t.Fatalf("produce %d to partition %d on a full disk: %s, want KAFKA_STORAGE_ERROR naming ENOSPC", i, part, s)
			}
		}
	}
	produce(500) // retried by the client until space returns
	for part := range 2 {
		tp := fmt.Sprintf("partition=%s-%d", fullTopic, part)
		if n := logLines(t, p, "level=ERROR", "partition storage failed", tp, "no space left on device", "dir="); n != 1 {
			t.Fatalf("%d ERROR lines for %s, want 1; log:\n%s", n, tp, p.tail())
		}
	}
	if v := metric(t, httpAddr, "strata_partitions_failed"); v != 2 {
		t.Fatalf("strata_partitions_failed = %v, want 2", v)
	}
	if v := metric(t, httpAddr, "strata_log_dirs_offline"); v != 1 {
		t.Fatalf("strata_log_dirs_offline = %v on a full disk, want 1", v)
	}
	if v := metric(t, httpAddr, "strata_storage_errors_total"); v < 10 {
		t.Fatalf("strata_storage_errors_total = %v, want at least 10", v)
	}

	// The failed writes took the log directory offline (KIP-858): the
	// controller places no new replica on this node, so a topic created
	// now is refused, naming the directory, and leaves nothing behind.
	// (The partitions keep their leader: there is no other replica.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := adm.CreateTopic(ctx, 1, 1, nil, "refused")
		if errors.Is(err, kerr.InvalidReplicationFactor) || errors.Is(res.Err, kerr.InvalidReplicationFactor) {
			if !strings.Contains(res.ErrMessage, data) || !strings.Contains(res.ErrMessage, "offline") {
				t.Fatalf("CreateTopics on a full disk says %q: it should name the offline log directory %s", res.ErrMessage, data)
			}
			break
		}
		if err == nil && res.Err == nil {
			t.Fatalf("CreateTopics on a node whose only log directory is offline succeeded")
		}
		if time.Now().After(deadline) {
			t.Fatalf("CreateTopics on a full disk: %v %v (%s), want INVALID_REPLICATION_FACTOR", err, res.Err, res.ErrMessage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(data, "refused-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused topic left a directory: %v", err)
	}
	// The topic created before: its first produce cannot create the log,
	// KAFKA_STORAGE_ERROR naming ENOSPC, and nothing left behind.
	var lateSeq int64
	for i := range 2 {
		got := rawProduceTo(t, ctx, raw, "late", 1, &lateSeq)
		if !strings.HasPrefix(got[0], "KAFKA_STORAGE_ERROR") || !strings.Contains(got[0], "no space left on device") {
			t.Fatalf("produce %d to a new topic on a full disk: %s, want KAFKA_STORAGE_ERROR naming ENOSPC", i, got[0])
		}
	}
	if _, err := os.Stat(filepath.Join(data, "late-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the failed first write left a directory: %v", err)
	}

	// Space returns: the client's retries go through, and so do new
	// requests; each partition says it recovered.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatalf("producer could not flush once space returned: %v", err)
	}
	if got := rawProduce(t, ctx, raw, &run.rawSeq); got[0] != "OK" || got[1] != "OK" {
		t.Fatalf("produce after space returned: %v", got)
	}
	for part := range 2 {
		tp := fmt.Sprintf("partition=%s-%d", fullTopic, part)
		if n := logLines(t, p, "level=INFO", "partition storage recovered", tp); n != 1 {
			t.Fatalf("%d recovered lines for %s, want 1", n, tp)
		}
	}
	if got := rawProduceTo(t, ctx, raw, "late", 1, &lateSeq); got[0] != "OK" {
		t.Fatalf("produce to the new topic after space returned: %v", got)
	}
	if _, err := os.Stat(filepath.Join(data, "late-0", "00000000000000000000.log")); err != nil {
		t.Fatalf("the new topic's first write did not create its log: %v", err)
	}
	if v := metric(t, httpAddr, "strata_partitions_failed"); v != 0 {
		t.Fatalf("strata_partitions_failed = %v after recovery, want 0", v)
	}
	// The directory is online again after a probe write (within a
	// second or so, then a heartbeat): topics are placed here again.
	deadline = time.Now().Add(10 * time.Second)
	for {
		res, err := adm.CreateTopic(ctx, 1, 1, nil, "later")
		if err == nil && res.Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create after space returned: %v, %v (%s)", err, res.Err, res.ErrMessage)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := logLines(t, p, "level=INFO", "log directory online again", "dir="+data); n != 1 {
		t.Fatalf("%d online-again lines, want 1", n)
	}
	if v := metric(t, httpAddr, "strata_log_dirs_offline"); v != 0 {
		t.Fatalf("strata_log_dirs_offline = %v once space returned, want 0", v)
	}
	run.fp.noFailures(t)

	// Everything acknowledged is there; the raw batches too.
	after := verifyAcrossKill(t, ctx, p, ack, data)
	t.Logf("%d records acknowledged, %d raw batches; end offsets %v", ack.count, run.rawSeq, after)
	b, _ := os.ReadFile(filepath.Join(p.dir, "strata.log"))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Log(line) // for the record: what an operator saw
		}
	}
	p.stop()
}

// fullDiskRun is what startFullDisk leaves the full-disk tests with.
type fullDiskRun struct {
	p             *process
	ctx           context.Context
	producer, raw *kgo.Client
	fp            *fullProducer
	rawSeq        int64  // raw batches produced (rawProduce)
	data          string // the data dir, a 64 MiB tmpfs
}

// startFullDisk starts a broker with args whose data dir is a 64 MiB tmpfs
// (the metadata log stays off it), and produces 2,000 records through an
// idempotent producer and one raw batch per partition, which must succeed,
// before the disk fills.
func startFullDisk(t *testing.T, args ...string) *fullDiskRun {
	t.Helper()
	p := &process{t: t, bin: binary(t), dir: t.TempDir(), addr: freeAddr(t), args: args}
	data := filepath.Join(p.dir, "data")
	testbin.MountTmpfs(t, data, 64<<20)
	p.start()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.kill()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	producer := newProducer(t, ctx, p, fullTopic, 2, nil)
	raw, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	run := &fullDiskRun{p: p, ctx: ctx, producer: producer, raw: raw, data: data,
		fp: &fullProducer{ctx: ctx, cl: producer, ack: &acked{offset: map[string]int64{}}}}
	run.fp.produce(2000)
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := rawProduce(t, ctx, raw, &run.rawSeq); got[0] != "OK" || got[1] != "OK" {
		t.Fatalf("produce before the disk is full: %v", got)
	}
	return run
}

// fullProducer is the full-disk tests' producer: produce sends records with
// increasing values and keys, recording the acknowledged ones in ack and
// the failures.
type fullProducer struct {
	ctx      context.Context
	cl       *kgo.Client
	ack      *acked
	seq      int64
	mu       sync.Mutex
	failures []error
}

func (fp *fullProducer) produce(n int) {
	for range n {
		fp.seq++
		r := &kgo.Record{Key: []byte(strconv.FormatInt(fp.seq, 10)), Value: []byte(fmt.Sprintf("r%08d", fp.seq))}
		fp.cl.Produce(fp.ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				fp.mu.Lock()
				fp.failures = append(fp.failures, err)
				fp.mu.Unlock()
				return
			}
			fp.ack.add(r)
		})
	}
}

// noFailures fails the test if a record failed for good (call after a
// Flush).
func (fp *fullProducer) noFailures(t *testing.T) {
	t.Helper()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if len(fp.failures) > 0 {
		t.Fatalf("%d records failed for good, first: %v", len(fp.failures), fp.failures[0])
	}
}

// verifyAcrossKill checks every acknowledged record of topic full, kills
// the broker with SIGKILL, restarts it, and checks that the log ends at
// the same offsets with the same records and every batch of the data dir
// whole; it returns the end offsets.
func verifyAcrossKill(t *testing.T, ctx context.Context, p *process, ack *acked, data string) kadm.ListedOffsets {
	t.Helper()
	verifyFull(t, p, ack, "before the crash")
	ends := endOffsets(t, ctx, p, fullTopic, 0)
	p.kill()
	p.start()
	after := endOffsets(t, ctx, p, fullTopic, 1)
	ends.Each(func(o kadm.ListedOffset) {
		if a, _ := after.Lookup(fullTopic, o.Partition); a.Offset != o.Offset {
			t.Fatalf("partition %d ends at %d after kill -9, %d before", o.Partition, a.Offset, o.Offset)
		}
	})
	verifyFull(t, p, ack, "after kill -9")
	for part := range 2 {
		checkSegments(t, filepath.Join(data, fmt.Sprintf("%s-%d", fullTopic, part)))
	}
	return after
}

// verifyFull reads topic full from the start to its end offsets and checks
// that every acknowledged record is at its offset.
func verifyFull(t *testing.T, p *process, ack *acked, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends := endOffsets(t, ctx, p, fullTopic, 0)
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		fullTopic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	found := map[string]int64{}
	for int64(len(found)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read %d of %d records", when, len(found), total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if _, dup := found[string(r.Value)]; dup {
				t.Fatalf("%s: %s appears twice", when, r.Value)
			}
			found[string(r.Value)] = r.Offset
		})
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	for v, off := range ack.offset {
		if at, ok := found[v]; !ok || at != off {
			t.Fatalf("%s: acknowledged %s at %d, found at %d (present: %v)", when, v, off, at, ok)
		}
	}
	t.Logf("%s: %d records read, %d acknowledged, all present", when, total, len(ack.offset))
}

// checkSegments fails unless every segment of the partition directory is
// a sequence of whole, CRC-valid batches with contiguous offsets.
func checkSegments(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	next := int64(-1)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos < len(data); {
			n, err := record.PeekSize(data[pos:])
			if err != nil || pos+n > len(data) {
				t.Fatalf("%s: torn batch at byte %d of %d: %v", name, pos, len(data), err)
			}
			h, err := record.Validate(data[pos : pos+n])
			if err != nil {
				t.Fatalf("%s: invalid batch at byte %d: %v", name, pos, err)
			}
			if next >= 0 && h.BaseOffset != next {
				t.Fatalf("%s: batch at offset %d follows one that ended before %d", name, h.BaseOffset, next)
			}
			next = h.LastOffset() + 1
			pos += n
		}
	}
}
