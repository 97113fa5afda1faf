package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// coordinatorOf is the node coordinating transactional id (FindCoordinator).
func (c *testCluster) coordinatorOf(ctx context.Context, id string) int32 {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey = 1, id
	resp, err := req.RequestWith(ctx, c.client())
	if err != nil || resp.ErrorCode != 0 {
		return -1
	}
	return resp.NodeID
}

// TestTxnExactlyOnceAcrossKill: two franz-go GroupTransactSession members
// consume "eos-in", produce to "eos-out" and commit their offsets in the
// same transactions, on three nodes with rf=3 topics (and rf=3
// __transaction_state and __consumer_offsets). Midway the node coordinating
// one member's transactional id is killed with SIGKILL (its transaction
// coordination fails over to a replica, which reloads __transaction_state
// and finishes what was prepared) and restarted. A member that fails starts
// a new session, as an application would. Every input record is in the
// read_committed output exactly once.
func TestTxnExactlyOnceAcrossKill(t *testing.T) {
	c := newCluster(t, 3)
	ctx := ctxT(t, 5*time.Minute)
	c.waitBrokers(ctx, 3)
	for _, tp := range []struct {
		name  string
		parts int32
	}{{"eos-in", 4}, {"eos-out", 3}} {
		res, err := c.admin().CreateTopic(ctx, tp.parts, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, tp.name)
		if err != nil || res.Err != nil {
			t.Fatalf("create %s: %v %v", tp.name, err, res.Err)
		}
		c.waitFullISR(tp.name, tp.parts, 30*time.Second)
	}
	total := 20000
	if testing.Short() {
		total = 5000
	}
	// The input arrives while the members work (and across the kill),
	// 100 records every 20 ms.
	in := c.client(kgo.DefaultProduceTopic("eos-in"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	var produced atomic.Int64
	produceErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 100 {
			recs := make([]*kgo.Record, 0, 100)
			for j := i; j < min(i+100, total); j++ {
				recs = append(recs, kgo.StringRecord(strconv.Itoa(j)))
			}
			if err := in.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				produceErr <- err
				return
			}
			produced.Add(int64(len(recs)))
			time.Sleep(20 * time.Millisecond)
		}
		produceErr <- nil
	}()

	var committed atomic.Int64
	var restarts atomic.Int64
	member := func(ctx context.Context, id string) {
		for ctx.Err() == nil {
			err := runMember(ctx, c, id, &committed)
			if ctx.Err() != nil {
				return
			}
			restarts.Add(1)
			t.Logf("%s: session ended (%v); starting a new one", id, err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, id := range []string{"eos-a", "eos-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			member(runCtx, id)
		}()
	}
	defer func() {
		stop()
		wg.Wait()
	}()

	waitFor(t, "a quarter of the input processed", 2*time.Minute, func() bool { return committed.Load() >= int64(total/4) })
	victim := int32(-1)
	waitFor(t, "the coordinator of eos-a", 30*time.Second, func() bool {
		victim = c.coordinatorOf(ctx, "eos-a")
		return victim > 0
	})
	t.Logf("killing node %d, the coordinator of eos-a, at %d committed", victim, committed.Load())
	c.node(victim).kill()
	at := committed.Load()
	// (When the members were fast enough to be near the end already, the
	// rest of the input is the progress to wait for.)
	waitFor(t, "progress without the killed node", 2*time.Minute, func() bool { return committed.Load() >= min(at+int64(total/10), int64(total)) })
	if now := c.coordinatorOf(ctx, "eos-a"); now == victim || now < 0 {
		t.Errorf("eos-a is coordinated by %d after node %d died", now, victim)
	}
	c.node(victim).start()
	if err := <-produceErr; err != nil {
		t.Fatalf("produce the input: %v", err)
	}
	for deadline := time.Now().Add(3 * time.Minute); !c.groupCaughtUp(ctx, "eos", "eos-in"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.logTxnState(ctx, t)
			t.Fatalf("the group's offsets never reached the end of the input (%d committed by members)", committed.Load())
		}
	}
	stop()
	wg.Wait()

	got := readCommitted(ctx, t, c, "eos-out", total)
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	var missing, dup []string
	for i := range total {
		switch n := seen[strconv.Itoa(i)]; {
		case n == 0:
			missing = append(missing, strconv.Itoa(i))
		case n > 1:
			dup = append(dup, fmt.Sprintf("%d(x%d)", i, n))
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(got) != total {
		t.Fatalf("output %d records for %d inputs: %d missing %v, %d duplicated %v", len(got), total, len(missing), head(missing), len(dup), head(dup))
	}
	t.Logf("%d records exactly once; %d committed by members, %d session restarts", total, committed.Load(), restarts.Load())
}

// groupCaughtUp reports whether group's committed offsets of topic are at
// its end offsets.
func (c *testCluster) groupCaughtUp(ctx context.Context, group, topic string) bool {
	adm := c.admin()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	caught := true
	ends.Each(func(o kadm.ListedOffset) {
		got, ok := offs.Lookup(o.Topic, o.Partition)
		caught = caught && o.Err == nil && (o.Offset == 0 || ok && got.Err == nil && got.At == o.Offset)
	})
	return caught
}

// logTxnState logs the transactions and the group's offsets, for a failure.
func (c *testCluster) logTxnState(ctx context.Context, t *testing.T) {
	adm := c.admin()
	if d, err := adm.DescribeTransactions(ctx, "eos-a", "eos-b"); err == nil {
		for _, tx := range d.Sorted() {
			t.Logf("transaction %s at %d: %s pid %d epoch %d partitions %v err %v", tx.TxnID, tx.Coordinator, tx.State, tx.ProducerID, tx.ProducerEpoch, tx.Topics, tx.Err)
		}
	}
	ends, _ := adm.ListEndOffsets(ctx, "eos-in")
	offs, _ := adm.FetchOffsets(ctx, "eos")
	ends.Each(func(o kadm.ListedOffset) {
		got, _ := offs.Lookup(o.Topic, o.Partition)
		t.Logf("eos-in-%d: end %d, group at %d (%v)", o.Partition, o.Offset, got.At, got.Err)
	})
	if g, err := adm.DescribeGroups(ctx, "eos"); err == nil {
		for _, gr := range g {
			t.Logf("group eos: %s, %d members, err %v", gr.State, len(gr.Members), gr.Err)
		}
	}
	ends, _ = adm.ListEndOffsets(ctx, "eos-out")
	stable, _ := adm.ListCommittedOffsets(ctx, "eos-out")
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := stable.Lookup(o.Topic, o.Partition)
		t.Logf("eos-out-%d: end %d, last stable %d", o.Partition, o.Offset, s.Offset)
	})
	for _, topic := range []string{"eos-in", "eos-out"} {
		if p, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: nil}); err == nil {
			p.EachPartition(func(dp kadm.DescribedProducersPartition) {
				for _, ap := range dp.ActiveProducers.Sorted() {
					if ap.CurrentTxnStartOffset >= 0 {
						t.Logf("%s-%d: open transaction of producer %d epoch %d from %d", topic, dp.Partition, ap.ProducerID, ap.ProducerEpoch, ap.CurrentTxnStartOffset)
					}
				}
			})
		}
	}
}

func head(s []string) string {
	if len(s) > 10 {
		s = s[:10]
	}
	return strings.Join(s, " ")
}

// runMember runs one GroupTransactSession until ctx ends or it fails.
func runMember(ctx context.Context, c *testCluster, id string, committed *atomic.Int64) error {
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(c.seeds()...),
		kgo.TransactionalID(id),
		kgo.ConsumerGroup("eos"),
		kgo.ConsumeTopics("eos-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic("eos-out"),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.SessionTimeout(6*time.Second),
		kgo.TransactionTimeout(20*time.Second),
		kgo.RequestRetries(20),
	)
	if err != nil {
		return err
	}
	defer s.Close()
	for ctx.Err() == nil {
		fs := s.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("fetch: %w", ferr)
		}
		if fs.NumRecords() == 0 {
			continue
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			s.Produce(ctx, kgo.StringRecord(string(r.Value)), nil)
		})
		ok, err := s.End(ctx, kgo.TryCommit)
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
		if ok {
			committed.Add(int64(fs.NumRecords()))
		}
	}
	return nil
}

// readCommitted reads topic with read_committed until want records
// arrived, then a second more (a duplicate would show).
func readCommitted(ctx context.Context, t *testing.T, c *testCluster, topic string, want int) []string {
	t.Helper()
	cl := c.client(kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var got []string
	for len(got) < want {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			c.logTxnState(ctx, t)
			t.Fatalf("%s: read %d of %d records", topic, len(got), want)
		}
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("fetch %s: %v", topic, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	extra, cancelExtra := context.WithTimeout(ctx, time.Second)
	defer cancelExtra()
	for extra.Err() == nil {
		cl.PollFetches(extra).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}
