package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stratalog/strata/test/internal/testbin"
)

// startStrata runs one strata serve process on a fresh data directory and
// returns its address once it accepts connections.
func startStrata(t *testing.T) string {
	t.Helper()
	bin := testbin.Binary(t)
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	logf, err := os.Create(filepath.Join(dir, "strata.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--http-listen", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("strata log (tail):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return addr
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("strata did not start listening on %s", addr)
	return ""
}

// TestProduceTransactions runs loadgen's transactional produce (issue 12's
// benchmark: 10,000 records per transaction, several transactions in a
// row, six partitions) against a strata process, and checks what the
// benchmark claims: every record is in a committed transaction, none is
// left in an open one. Before loadgen flushed before EndTransaction, the
// transactions were committed with most of their records still buffered:
// the late batches failed verification (INVALID_TXN_STATE) or were
// re-added by franz-go after the last commit into a transaction that
// nobody committed (its partitions' last stable offsets stuck at their
// first record while loadgen reported success).
func TestProduceTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a strata process")
	}
	addr := startStrata(t)
	seeds := []string{addr}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := options{
		topic: "txbench", partitions: 6, rf: 1, recordSize: 512, records: 30000, txnRecords: 10000,
		acks: "all", compression: "none", linger: 5 * time.Millisecond, batchMaxBytes: 1 << 20,
		maxBufRecords: 1 << 18, maxBufBytes: 64 << 20, fetchMaxPartBytes: 1 << 20, timeout: time.Minute,
	}
	if err := createTopic(ctx, seeds, o.topic, o.partitions, o.rf, 1); err != nil {
		t.Fatal(err)
	}
	var res result
	if err := produce(ctx, seeds, o, &res); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Every transaction ended: each partition's last stable offset is its
	// end (the commit markers are written after EndTxn is answered, so
	// await them).
	var ends, stable kadm.ListedOffsets
	for {
		if ends, err = adm.ListEndOffsets(ctx, o.topic); err == nil {
			stable, err = adm.ListCommittedOffsets(ctx, o.topic)
		}
		if err != nil {
			t.Fatal(err)
		}
		same := true
		ends.Each(func(e kadm.ListedOffset) {
			s, _ := stable.Lookup(e.Topic, e.Partition)
			same = same && s.Offset == e.Offset
		})
		if same {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("a transaction stayed open: end offsets %v, last stable offsets %v", ends.Offsets(), stable.Offsets())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A read_committed consumer sees every record, once.
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(o.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got int64
	for got < o.records {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed: %d of %d records", got, o.records)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		got += int64(fs.NumRecords())
	}
	var total int64
	ends.Each(func(e kadm.ListedOffset) { total += e.Offset })
	// The partitions hold the records and one commit marker per
	// transaction that wrote to them; nothing else.
	if got != o.records || total > o.records+3*int64(o.partitions) {
		t.Fatalf("read_committed %d records (want %d), partitions hold %d offsets", got, o.records, total)
	}
}
