package crash

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCrashKill9LazyLogs: partition logs are created by their first write
// and, after a clean shutdown, loaded by their first use (storage's lazy
// and deferred logs); a crash after a kill -9 is recovered with one syncfs
// for all logs. Each stage is crashed before the first write or use:
//
//  1. a topic created, the broker killed before any produce: after the
//     restart it serves produce and fetch from offset 0;
//  2. records acknowledged, a clean shutdown, a restart (logs pending), a
//     kill -9 before anything touches them: after the restart every
//     acknowledged record is there at its offset;
//  3. more records acknowledged (the first writes after the clean
//     restart, which remove the clean shutdown markers without an fsync),
//     and the first records of a second topic (whose directories are
//     created by those writes, without fsyncs), kill -9 right after: the
//     same, for both topics.
func TestCrashKill9LazyLogs(t *testing.T) {
	const lazyTopic, newTopic, parts = "lazy", "lazy-new", 6
	p := &process{t: t, bin: binary(t), dir: t.TempDir(), addr: freeAddr(t)}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	adm, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, lazyTopic); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	p.kill() // 1: before any produce
	p.start()

	ackedBy := map[string]map[string]int64{lazyTopic: {}, newTopic: {}} // topic -> value -> offset
	produceTo := func(topic string, stage, perPartition int) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		for part := range int32(parts) {
			for i := range perPartition {
				recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: fmt.Appendf(nil, "s%d-p%d-%d", stage, part, i)})
			}
		}
		for _, r := range cl.ProduceSync(ctx, recs...) {
			if r.Err != nil {
				t.Fatalf("stage %d: produce: %v", stage, r.Err)
			}
			ackedBy[topic][string(r.Record.Value)] = r.Record.Offset
		}
	}
	produce := func(stage, perPartition int) { produceTo(lazyTopic, stage, perPartition) }
	checkTopic := func(topic string, stage int) {
		t.Helper()
		acked := ackedBy[topic]
		ends := endOffsets(t, ctx, p, topic, stage)
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
		if total != int64(len(acked)) {
			t.Fatalf("stage %d: %d records in the log, %d acknowledged", stage, total, len(acked))
		}
		offs := map[int32]kgo.Offset{}
		for part := range int32(parts) {
			offs[part] = kgo.NewOffset().AtStart()
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		found := map[string]int64{}
		for int64(len(found)) < total {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("stage %d: read %d of %d records before timing out", stage, len(found), total)
			}
			for _, e := range fs.Errors() {
				if !errors.Is(e.Err, context.DeadlineExceeded) {
					t.Fatalf("stage %d: fetch %s/%d: %v", stage, e.Topic, e.Partition, e.Err)
				}
			}
			fs.EachRecord(func(r *kgo.Record) { found[string(r.Value)] = r.Offset })
		}
		for v, off := range acked {
			if at, ok := found[v]; !ok || at != off {
				t.Fatalf("stage %d: acknowledged record %s at offset %d: found at %d (present: %v)", stage, v, off, at, ok)
			}
		}
		t.Logf("stage %d: %s: %d acknowledged records, all present", stage, topic, len(acked))
	}
	check := func(stage int) { checkTopic(lazyTopic, stage) }

	check(1) // empty, every partition answers
	produce(1, 20)
	check(1)

	p.stop() // 2: a clean shutdown, then a kill before any use
	p.start()
	p.kill()
	p.start()
	check(2)
	adm, err = kgo.NewClient(kgo.SeedBrokers(p.addr))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kadm.NewClient(adm).CreateTopic(ctx, parts, 1, nil, newTopic); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	produce(2, 20)
	produceTo(newTopic, 2, 3)

	p.kill() // 3: a kill right after acknowledged writes
	p.start()
	check(3)
	checkTopic(newTopic, 3)
	produce(3, 5)
	produceTo(newTopic, 3, 2)
	check(3)
	checkTopic(newTopic, 3)
	p.stop()
}
