package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeTopic reads topic from the start at the isolation level until want
// records arrived (or fails at the deadline), then checks for a short while
// that no more come.
func consumeTopic(t *testing.T, n *testNode, topic string, committed bool, want int) []string {
	t.Helper()
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl := n.client(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read %d of %d records", topic, len(got), want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch %s: %v", topic, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	// Nothing more may come (a duplicate would): poll a little longer.
	// This can only miss an extra record, never invent one.
	extra, cancelExtra := context.WithTimeout(context.Background(), time.Second)
	defer cancelExtra()
	for extra.Err() == nil {
		fs := cl.PollFetches(extra)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// TestTxnProducerCommitAbort: a franz-go transactional producer commits
// one transaction and aborts the next, over two partitions; a
// read_committed consumer sees exactly the committed records, a
// read_uncommitted one sees both.
func TestTxnProducerCommitAbort(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, "txout"); err != nil {
		t.Fatal(err)
	}
	p := n.client(kgo.TransactionalID("e2e-producer"), kgo.DefaultProduceTopic("txout"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	run := func(prefix string, count int, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range count {
			if err := p.ProduceSync(ctx, kgo.StringRecord(fmt.Sprintf("%s-%d", prefix, i))).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("end transaction (commit %v): %v", commit, err)
		}
	}
	run("committed", 10, true)
	run("aborted", 10, false)
	run("last", 5, true)

	got := consumeTopic(t, n, "txout", true, 15)
	sort.Strings(got)
	for _, v := range got {
		if len(v) >= 7 && v[:7] == "aborted" {
			t.Fatalf("read_committed consumer saw an aborted record %q", v)
		}
	}
	if len(got) != 15 {
		t.Fatalf("read_committed: %d records, want 15: %v", len(got), got)
	}
	all := consumeTopic(t, n, "txout", false, 25)
	if len(all) != 25 {
		t.Fatalf("read_uncommitted: %d records, want 25", len(all))
	}
	// The coordinator's view: the id is idle, its last transaction
	// committed.
	d, err := n.admin().DescribeTransactions(ctx, "e2e-producer")
	if err != nil {
		t.Fatal(err)
	}
	if s := d["e2e-producer"].State; s != "CompleteCommit" {
		t.Fatalf("transaction state %q, want CompleteCommit", s)
	}
}

// TestTxnConsumeTransformProduce is the exactly-once loop franz-go's
// GroupTransactSession runs: consume "in", produce to "out" and commit the
// consumed offsets in the same transaction. Two members share the group, one
// leaves midway (its uncommitted work is aborted and redone by the other);
// every input record is in the output exactly once for a read_committed
// consumer.
func TestTxnConsumeTransformProduce(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groupOverrides)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "eos-in"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "eos-out"); err != nil {
		t.Fatal(err)
	}
	const total = 4000
	in := n.client(kgo.DefaultProduceTopic("eos-in"))
	var recs []*kgo.Record
	for i := range total {
		recs = append(recs, kgo.StringRecord(strconv.Itoa(i)))
	}
	if err := in.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var (
		mu        sync.Mutex
		processed int
	)
	member := func(ctx context.Context, id string, stopAfter int) error {
		s, err := kgo.NewGroupTransactSession(
			kgo.SeedBrokers(n.addr()),
			kgo.TransactionalID(id),
			kgo.ConsumerGroup("eos"),
			kgo.ConsumeTopics("eos-in"),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.DefaultProduceTopic("eos-out"),
			kgo.FetchMaxWait(100*time.Millisecond),
			kgo.SessionTimeout(6*time.Second),
		)
		if err != nil {
			return err
		}
		defer s.Close()
		done := 0
		for ctx.Err() == nil {
			fs := s.PollFetches(ctx)
			if ctx.Err() != nil {
				return nil
			}
			var ferr error
			fs.EachError(func(_ string, _ int32, err error) { ferr = err })
			if ferr != nil {
				return ferr
			}
			if fs.NumRecords() == 0 {
				continue
			}
			if err := s.Begin(); err != nil {
				return fmt.Errorf("begin: %w", err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				s.Produce(ctx, kgo.StringRecord(string(r.Value)), func(_ *kgo.Record, err error) {
					if err != nil {
						t.Logf("%s: produce: %v", id, err)
					}
				})
			})
			committed, err := s.End(ctx, kgo.TryCommit)
			if err != nil {
				return fmt.Errorf("end: %w", err)
			}
			if committed {
				mu.Lock()
				processed += fs.NumRecords()
				mu.Unlock()
				done += fs.NumRecords()
			}
			if stopAfter > 0 && done >= stopAfter {
				return nil // leaves the group midway
			}
		}
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 2)
	go func() { errs <- member(runCtx, "eos-a", 0) }()
	go func() { errs <- member(runCtx, "eos-b", total/4) }()

	got := consumeTopic(t, n, "eos-out", true, total)
	stop()
	for range 2 {
		if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("member: %v", err)
		}
	}
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for i := range total {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("input %d is in the output %d times", i, c)
		}
	}
	if len(got) != total {
		t.Fatalf("output has %d records, want %d", len(got), total)
	}
	t.Logf("%d records processed exactly once (%d committed by the members)", total, processed)
}
