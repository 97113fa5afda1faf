package crash

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stratalog/strata/test/internal/testbin"
)

// TestCrashFullDiskJournal is TestCrashFullDisk's core with the shared
// journal on (log.journal.enable), tails held 5 s: the disk fills while
// batches are journaled. Produce then answers KAFKA_STORAGE_ERROR naming
// ENOSPC (the journal's write or, once it failed and batches go to their
// segments directly, the segment's); once space returns an idempotent
// producer's retries succeed; every acknowledged record is read back,
// before and after a kill -9, with every batch whole.
func TestCrashFullDiskJournal(t *testing.T) {
	run := startFullDisk(t, "--set", "log.journal.enable=true", "--set", "log.journal.write.ms=5000")
	p, ctx, producer, raw, data := run.p, run.ctx, run.producer, run.raw, run.data
	ack, produce := run.fp.ack, run.fp.produce

	filler := testbin.Fill(t, data)
	// Batches may still fit in pages already allocated (the journal's,
	// then a segment's): produce until both partitions fail.
	for i := 0; ; i++ {
		got := rawProduce(t, ctx, raw, &run.rawSeq)
		if got[0] != "OK" && got[1] != "OK" {
			for part, s := range got {
				if !strings.HasPrefix(s, "KAFKA_STORAGE_ERROR") || !strings.Contains(s, "no space left on device") {
					t.Fatalf("produce to partition %d on a full disk: %s, want KAFKA_STORAGE_ERROR naming ENOSPC", part, s)
				}
			}
			break
		}
		if i == 5000 {
			t.Fatalf("produce still succeeds on a full disk: %v", got)
		}
	}
	produce(500) // retried by the client until space returns
	if n := logLines(t, p, "level=ERROR", "journal write failed"); n != 1 {
		t.Fatalf("%d journal write failure lines, want 1; log:\n%s", n, p.tail())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatalf("producer could not flush once space returned: %v", err)
	}
	// Produce works again, to the segments directly until a restart.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := rawProduce(t, ctx, raw, &run.rawSeq)
		if got[0] == "OK" && got[1] == "OK" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce after space returned: %v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	run.fp.noFailures(t)

	after := verifyAcrossKill(t, ctx, p, ack, data)
	t.Logf("%d records acknowledged, %d raw batches; end offsets %v", ack.count, run.rawSeq, after)
}
