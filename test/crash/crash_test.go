package crash

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/test/internal/testbin"
)

const (
	topic      = "crash"
	partitions = 4
)

// process is one strata serve process.
type process struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

func (p *process) start() {
	p.t.Helper()
	f, err := os.OpenFile(filepath.Join(p.dir, "strata.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.log = f
	args := append([]string{"serve", "--listen", p.addr, "--data-dir", filepath.Join(p.dir, "data")}, p.args...)
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("strata did not start listening on %s; log:\n%s", p.addr, p.tail())
}

func (p *process) kill() {
	p.cmd.Process.Signal(os.Kill)
	p.cmd.Wait()
	p.log.Close()
}

func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		p.t.Errorf("strata exited with %v on SIGINT; log:\n%s", err, p.tail())
	}
	p.log.Close()
}

func (p *process) tail() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "strata.log"))
	lines := strings.Split(string(b), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

func binary(t *testing.T) string { return testbin.Binary(t) }

func freeAddr(t *testing.T) string { return testbin.FreeAddr(t) }

// acked records what the broker acknowledged: per partition, the offset of
// each acknowledged record's value.
type acked struct {
	mu     sync.Mutex
	offset map[string]int64 // value -> offset
	count  int
	twice  []string
}

func (a *acked) add(r *kgo.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.offset[string(r.Value)]; ok {
		a.twice = append(a.twice, fmt.Sprintf("%s at %d and %d", r.Value, prev, r.Offset))
	}
	a.offset[string(r.Value)] = r.Offset
	a.count++
}

// TestCrashKill9DuringProduce kills the broker with SIGKILL during sustained
// acks=all idempotent produce, many times in a row. After each restart the
// whole log is read back: every acknowledged record must be present exactly
// once at the offset it was acknowledged with, each partition's records in
// the order the producer sent them, with no duplicates of anything. One
// producer client lives across all the crashes, so its retries after each
// restart also exercise producer-state recovery (duplicates detected, no
// false sequence errors).
func TestCrashKill9DuringProduce(t *testing.T) {
	for _, mode := range []struct {
		name   string
		rounds int
		args   []string
		logHas string // a line the broker's log must have after the rounds
	}{
		// Without the journal (on by default): every batch goes to its
		// segment before the answer.
		{"page-cache", 20, []string{"--set", "log.journal.enable=false"}, ""},
		{"fsync-always", 5, []string{"--fsync", "always", "--set", "log.journal.enable=false"}, ""},
		// The default settings: the journal with its 1 s write age, the
		// producer's requests to one partition (direct) and to several
		// (journaled) mixed.
		{"default", 10, nil, ""},
		// The shared journal, with tails left in memory for 5 s: a kill
		// finds most of the last seconds' batches only in the journal,
		// and the restart must replay them.
		{"journal", 10, []string{"--set", "log.journal.enable=true", "--set", "log.journal.write.ms=5000"}, "journal replayed"},
		// The journal with log.fsync=always: one fsync of the journal per
		// write instead of one per partition; the replayed batches must
		// count as durable, or the high watermark stays below them.
		{"journal-fsync-always", 5, []string{"--fsync", "always", "--set", "log.journal.enable=true", "--set", "log.journal.write.ms=5000"}, "journal replayed"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			rounds := mode.rounds
			if n, err := strconv.Atoi(os.Getenv("STRATA_CRASH_ROUNDS")); err == nil && n > 0 {
				rounds = n
			}
			p := runCrashRounds(t, rounds, mode.args)
			if mode.logHas != "" {
				b, err := os.ReadFile(filepath.Join(p.dir, "strata.log"))
				if err != nil {
					t.Fatal(err)
				}
				if n := strings.Count(string(b), mode.logHas); n == 0 {
					t.Fatalf("the broker's log has no %q line: the rounds did not exercise what this mode is for", mode.logHas)
				} else {
					t.Logf("%d %q lines in the broker's log", n, mode.logHas)
				}
			}
		})
	}
}

func runCrashRounds(t *testing.T, rounds int, args []string) *process {
	p := &process{t: t, bin: binary(t), dir: t.TempDir(), addr: freeAddr(t), args: args}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	producer := newProducer(t, ctx, p, topic, partitions, nil)

	ack := &acked{offset: map[string]int64{}}
	var failMu sync.Mutex
	var failures []error
	var seq int64
	// Sustained produce at about 20k records/s: every round re-reads the
	// whole log, so an unthrottled producer would make later rounds slow
	// without making the test stronger.
	produceTick := func() {
		for range 20 {
			seq++
			r := &kgo.Record{Key: []byte(strconv.FormatInt(seq%31, 10)), Value: []byte(fmt.Sprintf("r%08d", seq))}
			producer.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					failMu.Lock()
					failures = append(failures, err)
					failMu.Unlock()
					return
				}
				ack.add(r)
			})
		}
	}
	killRounds(t, ctx, p, producer, rounds, produceTick, func(round int) { verify(t, p, ack, round) })
	failMu.Lock()
	defer failMu.Unlock()
	// Records may fail (the broker died under them), but never with a
	// sequence or epoch error: that would mean producer state was lost.
	for _, err := range failures {
		if strings.Contains(err.Error(), "OUT_OF_ORDER_SEQUENCE") || strings.Contains(err.Error(), "INVALID_PRODUCER_EPOCH") {
			t.Fatalf("producer state lost across a crash: %v", err)
		}
	}
	t.Logf("%d rounds: %d records acknowledged, %d failed", rounds, ack.count, len(failures))
	p.stop()
	return p
}

// verify reads every partition from the start and checks the acknowledged
// records and ordering.
func verify(t *testing.T, p *process, ack *acked, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ends := endOffsets(t, ctx, p, topic, round)
	want := map[int32]int64{}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { want[o.Partition] = o.Offset; total += o.Offset })

	offs := map[int32]kgo.Offset{}
	for part := range int32(partitions) {
		offs[part] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	found := map[string]int64{}
	next := map[int32]int64{}
	lastSeq := map[int32]int64{}
	var got int64
	for got < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("round %d: read %d of %d records before timing out", round, got, total)
		}
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("round %d: fetch %s/%d: %v", round, e.Topic, e.Partition, e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			if r.Offset != next[r.Partition] {
				t.Fatalf("round %d: partition %d offset %d, want %d", round, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			v := string(r.Value)
			if _, dup := found[v]; dup {
				t.Fatalf("round %d: record %s appears twice (offsets %d and %d)", round, v, found[v], r.Offset)
			}
			found[v] = r.Offset
			s, _ := strconv.ParseInt(v[1:], 10, 64)
			if s <= lastSeq[r.Partition] {
				t.Fatalf("round %d: partition %d has %s after r%08d: out of order", round, r.Partition, v, lastSeq[r.Partition])
			}
			lastSeq[r.Partition] = s
		})
	}
	ack.mu.Lock()
	defer ack.mu.Unlock()
	if len(ack.twice) > 0 {
		t.Fatalf("round %d: records acknowledged twice: %v", round, ack.twice)
	}
	for v, off := range ack.offset {
		at, ok := found[v]
		if !ok {
			t.Fatalf("round %d: acknowledged record %s (offset %d) is missing", round, v, off)
		}
		if at != off {
			t.Fatalf("round %d: acknowledged record %s at offset %d, found at %d", round, v, off, at)
		}
	}
	t.Logf("round %d: %d records in the log, %d acknowledged, all present", round, total, len(ack.offset))
}

// newProducer creates topic (partitions, configs) on p and returns an
// acks=all idempotent producer to it that retries quickly across restarts.
func newProducer(t *testing.T, ctx context.Context, p *process, topic string, partitions int32, configs map[string]*string) *kgo.Client {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, partitions, 1, configs, topic); err != nil {
		t.Fatal(err)
	}
	producer, err := kgo.NewClient(
		kgo.SeedBrokers(p.addr),
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(producer.Close)
	return producer
}

// killRounds runs rounds of: call produceTick every millisecond for 0.3 to
// 1 s, kill -9 the broker mid-stream, restart it, let the producer drain
// its retries against the restarted broker, then verify(round).
func killRounds(t *testing.T, ctx context.Context, p *process, producer *kgo.Client, rounds int, produceTick func(), verify func(round int)) {
	t.Helper()
	for round := 1; round <= rounds; round++ {
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				produceTick()
			}
		}()
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		p.kill()
		close(stop)
		p.start()
		<-done // Produce may block on a full buffer until the broker is back
		fctx, fcancel := context.WithTimeout(ctx, 60*time.Second)
		if err := producer.Flush(fctx); err != nil {
			t.Fatalf("round %d: producer could not flush after restart: %v", round, err)
		}
		fcancel()
		verify(round)
	}
}

// endOffsets lists the end offsets of topic's partitions, once every
// partition answers: right after a restart one may not be led yet, and a
// partition's error would count as offset -1.
func endOffsets(t *testing.T, ctx context.Context, p *process, topic string, round int) kadm.ListedOffsets {
	t.Helper()
	adm, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	for {
		ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			return ends
		}
		if ctx.Err() != nil {
			t.Fatalf("round %d: list end offsets: %v", round, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCrashJournalFsyncAlwaysServesReplayed: with log.fsync=always and the
// journal, records acknowledged and then killed -9 before their tails
// reached the segments are replayed at the next start and served at once:
// the end offsets equal the acknowledged counts before any new produce
// (the replayed batches count as durable, so the high watermark is past
// them; a produce would otherwise be what moved it).
func TestCrashJournalFsyncAlwaysServesReplayed(t *testing.T) {
	p := &process{t: t, bin: binary(t), dir: t.TempDir(), addr: freeAddr(t),
		args: []string{"--fsync", "always", "--set", "log.journal.enable=true", "--set", "log.journal.write.ms=600000"}}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	producer := newProducer(t, ctx, p, topic, partitions, nil)
	const n = 400
	for i := range n {
		r := &kgo.Record{Value: []byte(fmt.Sprintf("r%04d", i))}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	producer.Close()
	p.kill()
	p.start()
	ends := endOffsets(t, ctx, p, topic, 1)
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("end offsets after the restart sum to %d, want the %d acknowledged: %v", total, n, ends)
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "strata.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "journal replayed") {
		t.Fatal("no journal replay in the broker's log: the records were in their segments already, and the test shows nothing")
	}
	p.stop()
}
