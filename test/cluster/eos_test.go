package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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

// TestEOSSessionChurn is issue 12's exactly-once proof: franz-go
// GroupTransactSession members consume "eosc-in" read_committed, transform
// each record and produce it to "eosc-out", committing their offsets in the
// same transaction, on three strata processes (rf=3, min.insync.replicas=2
// topics of 6 partitions; __consumer_offsets and __transaction_state rf=3)
// while:
//
//   - members join and leave: two start, a third joins, one leaves cleanly
//     (its transaction ended, the client closed), one is closed in the
//     middle of a transaction whose records are written (never ended: the
//     coordinator's timeout aborts it), and a fourth joins;
//   - the node coordinating the group is killed with SIGKILL mid-run and
//     restarted once the others made progress without it;
//   - a member whose session fails starts a new one with the same
//     transactional id (fencing the old epoch), as an application would.
//
// The input is produced while this happens (idempotent, acks=all). Every
// output value carries the transaction that wrote it. At the end a
// read_committed consumer reads all of "eosc-out": each input value is
// there exactly once and nothing else is; no record of a transaction its
// member saw abort (or abandoned) is visible; every record of a committed
// transaction is; and what a read_committed reader saw during the run,
// through the kill, is a prefix of the final log (nothing it saw went
// away).
//
// STRATA_EOS_RECORDS sets the number of input records; `make eos` runs it
// with 1,000,000. Without it the test runs 50,000 in `make cluster`
// (10,000 with -short). STRATA_EOS_KILLS (default 1) repeats the kill and
// restart: the later victims coordinate a live member's transactional id
// (or are the next node), and the last one, after the abrupt close, the
// coordinator of the abandoned transaction before its timeout aborts it.
// STRATA_EOS_CLIENT_LOG names a file for the
// members' franz-go log (info level).
func TestEOSSessionChurn(t *testing.T) {
	total := 50_000
	if testing.Short() {
		total = 10_000
	}
	if s := os.Getenv("STRATA_EOS_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1000 {
			t.Fatalf("STRATA_EOS_RECORDS=%q: want a number of at least 1000", s)
		}
		total = n
	}
	kills := 1
	if s := os.Getenv("STRATA_EOS_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 6 {
			t.Fatalf("STRATA_EOS_KILLS=%q: want 1 to 6", s)
		}
		kills = n
	}
	r := newEOSRun(t, total)
	r.kills = kills
	if path := os.Getenv("STRATA_EOS_CLIENT_LOG"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r.clientLog = &lockedWriter{w: f}
	}
	// Two steps for the members, two per kill before the abrupt close,
	// all within the first 60%.
	r.step = min(0.10, 0.6/float64(2+2*(kills-r.lateKills())))
	r.run()
}

const (
	eosIn    = "eosc-in"
	eosOut   = "eosc-out"
	eosGroup = "eosc"
	eosParts = 6
)

// txnOutcome is what a member learnt of one of its transactions.
type txnOutcome int8

const (
	txnOpen      txnOutcome = iota // begun, not ended (yet)
	txnCommitted                   // End said committed
	txnAborted                     // End said aborted (or the member aborted it)
	txnUnknown                     // End failed: either
	txnAbandoned                   // the member closed without ending it
)

// eosRun is one run of the test: the cluster, the members and what they
// did.
type eosRun struct {
	t     *testing.T
	c     *testCluster
	ctx   context.Context
	total int
	kills int     // rounds of kill -9 and restart
	step  float64 // the fraction of the total processed between steps
	// perTxn is the most input records a transaction processes (the
	// poll's limit): a few hundred to a thousand transactions per run.
	perTxn int

	produced atomic.Int64 // input records acknowledged
	gate     atomic.Int64 // the input is produced up to here
	done     atomic.Int64 // input records processed in committed transactions

	mu       sync.Mutex
	outcomes map[string]txnOutcome // transaction tag -> outcome
	written  map[string]int        // transaction tag -> records produced in it

	committedTxns, abortedTxns, unknownTxns, abandonedTxns atomic.Int64
	assigns, restarts                                      atomic.Int64
	maxGeneration                                          atomic.Int32

	clientLog io.Writer // STRATA_EOS_CLIENT_LOG: the members' franz-go log
}

func newEOSRun(t *testing.T, total int) *eosRun {
	// The coordinator looks for timed-out transactions every second, so
	// that the abandoned one is aborted soon after its 10 s timeout.
	c := newRolesCluster(t, 3, 0, "", "--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000")
	r := &eosRun{t: t, c: c, total: total, perTxn: max(total/1000, 200), outcomes: map[string]txnOutcome{}, written: map[string]int{}}
	r.gate.Store(int64(total) * 4 / 5)
	return r
}

func (r *eosRun) run() {
	t, c := r.t, r.c
	// Generous: a million records on a loaded two-core machine.
	ctx := ctxT(t, 5*time.Minute+time.Duration(r.total)*time.Millisecond)
	r.ctx = ctx
	c.waitBrokers(ctx, 3)
	for _, name := range []string{eosIn, eosOut} {
		res, err := c.admin().CreateTopic(ctx, eosParts, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, name)
		if err != nil || res.Err != nil {
			t.Fatalf("create %s: %v %v", name, err, res.Err)
		}
		c.waitFullISR(name, eosParts, 30*time.Second)
	}

	start := time.Now()
	// The input: idempotent, acks=all, never more than a fifth of the
	// total ahead of the members, so that it is still arriving during the
	// faults; the last fifth waits for the abrupt close.
	produceErr := make(chan error, 1)
	go func() { produceErr <- r.produceInput(ctx) }()

	// A read_committed reader of the output during the whole run.
	live := newLiveReader(r)
	liveCtx, stopLive := context.WithCancel(ctx)
	liveDone := make(chan struct{})
	go func() {
		defer close(liveDone)
		live.run(liveCtx)
	}()
	defer func() {
		stopLive()
		<-liveDone
	}()

	members := map[string]*eosMember{}
	startMember := func(id string) {
		m := &eosMember{r: r, id: id, done: make(chan struct{})}
		m.ctx, m.cancel = context.WithCancel(ctx)
		members[id] = m
		go m.run()
		t.Logf("%v: member %s joins", time.Since(start).Round(time.Millisecond), id)
	}
	defer func() {
		for _, m := range members {
			m.cancel()
			<-m.done
		}
	}()
	// after waits for another frac of the total to be processed since the
	// last step, so that every phase sees work done.
	mark := int64(0)
	after := func(frac float64, what string) {
		t.Helper()
		// Never past the held-back last fifth.
		n := min(mark+int64(frac*float64(r.total)), r.gate.Load())
		waitFor(t, fmt.Sprintf("%d records processed (%s)", n, what), 5*time.Minute, func() bool {
			return r.done.Load() >= n
		})
		mark = r.done.Load()
	}

	startMember("eosc-a")
	startMember("eosc-b")
	after(r.step, "before the third member")
	startMember("eosc-c")
	after(r.step, "before a member leaves")
	t.Logf("%v: member eosc-a leaves cleanly at %d processed", time.Since(start).Round(time.Millisecond), r.done.Load())
	members["eosc-a"].stopClean()

	for _, internal := range []string{"__consumer_offsets", "__transaction_state"} {
		md, err := c.metadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		td, ok := md.Topics[internal]
		if !ok || len(td.Partitions) == 0 {
			t.Fatalf("%s does not exist", internal)
		}
		for _, p := range td.Partitions {
			if len(p.Replicas) != 3 {
				t.Fatalf("%s-%d has replicas %v, want 3", internal, p.Partition, p.Replicas)
			}
		}
	}
	victim := int32(-1)
	for round := range r.kills - r.lateKills() {
		after(r.step, "before the kill")
		// The first victim coordinates the group; the next ones a live
		// member's transactional id, or else the next node.
		prev := victim
		if round == 0 {
			waitFor(t, "the coordinator of group "+eosGroup, 30*time.Second, func() bool {
				victim = c.findCoordinator(ctx, 0, eosGroup)
				return victim > 0
			})
		} else {
			victim = prev%3 + 1
			for _, id := range []string{"eosc-b", "eosc-c"} {
				if n := c.findCoordinator(ctx, 1, id); n > 0 && n != prev {
					victim = n
					break
				}
			}
		}
		r.killNode(victim, start)
		mark = r.done.Load()
		after(r.step, "without the killed node")
		t.Logf("%v: restart node %d at %d processed", time.Since(start).Round(time.Millisecond), victim, r.done.Load())
		c.node(victim).start()
		// It catches up while the members work.
		c.waitFullISR(eosIn, eosParts, 2*time.Minute)
		c.waitFullISR(eosOut, eosParts, 2*time.Minute)
		t.Logf("%v: node %d back in every ISR at %d processed", time.Since(start).Round(time.Millisecond), victim, r.done.Load())
	}

	// The last fifth of the input is released now: eosc-b closes in the
	// middle of its first transaction of it.
	waitFor(t, "the input up to the gate processed", 5*time.Minute, func() bool { return r.done.Load() >= r.gate.Load() })
	t.Logf("%v: member eosc-b closes in the middle of a transaction at %d processed", time.Since(start).Round(time.Millisecond), r.done.Load())
	members["eosc-b"].abrupt.Store(true)
	r.gate.Store(int64(r.total))
	members["eosc-b"].waitAbrupt()
	startMember("eosc-d")
	if r.lateKills() > 0 {
		// The abandoned transaction is open: its coordinator dies before
		// the timeout aborts it, and the next one must load and abort it.
		abandoned := c.findCoordinator(ctx, 1, "eosc-b")
		if abandoned < 1 {
			t.Fatalf("no coordinator of eosc-b")
		}
		r.killNode(abandoned, start)
		waitFor(t, "another coordinator of eosc-b", time.Minute, func() bool {
			now := c.findCoordinator(ctx, 1, "eosc-b")
			return now > 0 && now != abandoned
		})
		t.Logf("%v: restart node %d at %d processed", time.Since(start).Round(time.Millisecond), abandoned, r.done.Load())
		c.node(abandoned).start()
	}

	if err := <-produceErr; err != nil {
		t.Fatalf("produce the input: %v", err)
	}
	produceTime := time.Since(start)
	for deadline := time.Now().Add(5 * time.Minute); !c.groupCaughtUp(ctx, eosGroup, eosIn); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			r.logState()
			t.Fatalf("the group's offsets never reached the end of the input (%d processed)", r.done.Load())
		}
	}
	elapsed := time.Since(start)
	for _, m := range members {
		m.cancel()
		<-m.done
	}
	stopLive()
	<-liveDone

	// Every transaction is over (the abandoned one aborted by its
	// timeout): the output's last stable offsets are at its ends.
	var ends kadm.ListedOffsets
	waitFor(t, "no open transaction on "+eosOut, 2*time.Minute, func() bool {
		adm := c.admin()
		hw, err1 := adm.ListEndOffsets(ctx, eosOut)
		lso, err2 := kadm.NewClient(c.client(kgo.FetchIsolationLevel(kgo.ReadCommitted()))).ListEndOffsets(ctx, eosOut)
		if err1 != nil || err2 != nil || hw.Error() != nil || lso.Error() != nil {
			return false
		}
		same := true
		hw.Each(func(o kadm.ListedOffset) {
			l, ok := lso.Lookup(o.Topic, o.Partition)
			same = same && ok && l.Offset == o.Offset
		})
		ends = hw
		return same
	})

	var inEnds kadm.ListedOffsets
	waitFor(t, "the end offsets of "+eosIn, time.Minute, func() bool {
		var err error
		inEnds, err = c.admin().ListEndOffsets(ctx, eosIn)
		return err == nil && inEnds.Error() == nil
	})
	input := r.readAll(eosIn, inEnds, false)
	output := r.readAll(eosOut, ends, true)
	r.check(input, output, live)

	for _, nd := range c.nodes {
		if errs := nd.logLines("level=ERROR", 5); len(errs) > 0 {
			t.Logf("node %d logged errors (first %d):\n%s", nd.id, len(errs), strings.Join(errs, "\n"))
		}
	}
	secs := elapsed.Seconds()
	verdict := "exactly once"
	if t.Failed() {
		verdict = "NOT exactly once"
	}
	t.Logf("EOS: %d records through %s -> %s %s in %v (input produced in %v): %.0f records/s; transactions %d committed, %d aborted, %d unknown, %d abandoned; %d partition assignments, group generation %d, %d session restarts; live reader saw %d records",
		r.total, eosIn, eosOut, verdict, elapsed.Round(time.Millisecond), produceTime.Round(time.Millisecond), float64(r.total)/secs,
		r.committedTxns.Load(), r.abortedTxns.Load(), r.unknownTxns.Load(), r.abandonedTxns.Load(),
		r.assigns.Load(), r.maxGeneration.Load(), r.restarts.Load(), live.count())
}

// lateKills is the number of kills after the abrupt close: with more than
// one, the last kills the coordinator of the abandoned transaction.
func (r *eosRun) lateKills() int {
	if r.kills > 1 {
		return 1
	}
	return 0
}

// killNode kills node victim with SIGKILL and waits for the group to be
// coordinated elsewhere if it was there.
func (r *eosRun) killNode(victim int32, start time.Time) {
	t, c, ctx := r.t, r.c, r.ctx
	group := c.findCoordinator(ctx, 0, eosGroup)
	txnCoords := map[string]int32{}
	for _, id := range []string{"eosc-b", "eosc-c"} {
		txnCoords[id] = c.findCoordinator(ctx, 1, id)
	}
	leads := c.leadsOf(ctx, victim, eosIn, eosOut)
	t.Logf("%v: kill -9 node %d at %d processed, %d produced: leader of %v; group coordinator %d, transaction coordinators %v",
		time.Since(start).Round(time.Millisecond), victim, r.done.Load(), r.produced.Load(), leads, group, txnCoords)
	c.node(victim).kill()
	waitFor(t, "a live coordinator of group "+eosGroup, time.Minute, func() bool {
		now := c.findCoordinator(ctx, 0, eosGroup)
		return now > 0 && now != victim
	})
}

// produceInput writes values "0".."total-1" to the input.
func (r *eosRun) produceInput(ctx context.Context) error {
	cl := r.c.client(kgo.DefaultProduceTopic(eosIn), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordDeliveryTimeout(3*time.Minute),
		kgo.MaxBufferedRecords(50_000))
	defer cl.Close()
	ahead := int64(max(r.total/5, 5000))
	var failed atomic.Pointer[error]
	for i := 0; i < r.total; i++ {
		for int64(i)-r.done.Load() > ahead || int64(i) >= r.gate.Load() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		v := strconv.Itoa(i)
		cl.Produce(ctx, &kgo.Record{Key: []byte(v), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			r.produced.Add(1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	if e := failed.Load(); e != nil {
		return *e
	}
	return nil
}

// eosMember is one application instance with its own transactional id.
type eosMember struct {
	r      *eosRun
	id     string
	ctx    context.Context // canceled: leave cleanly between transactions
	cancel context.CancelFunc
	abrupt atomic.Bool // set: close in the middle of the next transaction
	done   chan struct{}
}

func (m *eosMember) stopClean() {
	m.cancel()
	<-m.done
}

func (m *eosMember) waitAbrupt() {
	m.r.t.Helper()
	select {
	case <-m.done:
	case <-time.After(2 * time.Minute):
		m.r.t.Fatalf("member %s never got records to close in the middle of", m.id)
	}
}

func (m *eosMember) run() {
	defer close(m.done)
	for session := 0; m.ctx.Err() == nil; session++ {
		err := m.session(session)
		if err == nil || m.ctx.Err() != nil {
			return
		}
		m.r.restarts.Add(1)
		m.r.t.Logf("%s: session %d ended (%v); starting a new one", m.id, session, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// session runs one GroupTransactSession until the member is told to stop
// (nil) or it fails.
func (m *eosMember) session(n int) error {
	r := m.r
	opts := []kgo.Opt{}
	if r.clientLog != nil {
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(r.clientLog, kgo.LogLevelInfo, func() string {
			return fmt.Sprintf("%s %s.%d ", time.Now().UTC().Format("15:04:05.000"), m.id, n)
		})))
	}
	s, err := kgo.NewGroupTransactSession(append(opts,
		kgo.SeedBrokers(r.c.seeds()...),
		kgo.TransactionalID(m.id),
		kgo.ConsumerGroup(eosGroup),
		kgo.ConsumeTopics(eosIn),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic(eosOut),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
		kgo.TransactionTimeout(10*time.Second),
		kgo.RequestRetries(30),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.MetadataMinAge(200*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
			r.assigns.Add(1)
			if _, gen := cl.GroupMetadata(); gen > r.maxGeneration.Load() {
				r.maxGeneration.Store(gen)
			}
		}),
	)...)
	if err != nil {
		return err
	}
	defer s.Close()
	for txn := 0; ; txn++ {
		fs := s.PollRecords(m.ctx, r.perTxn)
		if m.ctx.Err() != nil {
			return nil // between transactions: Close leaves the group
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
		tag := fmt.Sprintf("%s.%d.%d", m.id, n, txn)
		began := time.Now()
		r.setOutcome(tag, txnOpen, fs.NumRecords())
		var produceErr atomic.Pointer[error]
		fs.EachRecord(func(in *kgo.Record) {
			out := &kgo.Record{Key: in.Key, Value: []byte(string(in.Value) + "|" + tag)}
			s.Produce(r.ctx, out, func(_ *kgo.Record, err error) {
				if err != nil {
					produceErr.CompareAndSwap(nil, &err)
				}
			})
		})
		if m.abrupt.Load() {
			// Written, never ended: the coordinator aborts it after its
			// timeout. Close leaves the group.
			if err := s.Client().Flush(r.ctx); err != nil {
				return fmt.Errorf("flush before the abrupt close: %w", err)
			}
			r.setOutcome(tag, txnAbandoned, 0)
			r.abandonedTxns.Add(1)
			r.t.Logf("%s: closed with transaction %s (%d records) open", m.id, tag, fs.NumRecords())
			return nil
		}
		try := kgo.TryCommit
		if err := s.Client().Flush(r.ctx); err != nil || produceErr.Load() != nil {
			try = kgo.TryAbort // a record failed: the transaction must not commit
		}
		committed, err := s.End(r.ctx, try)
		switch {
		case err != nil:
			r.setOutcome(tag, txnUnknown, 0)
			r.unknownTxns.Add(1)
			return fmt.Errorf("end %s, %v after Begin: %w", tag, time.Since(began).Round(time.Millisecond), err)
		case committed:
			r.setOutcome(tag, txnCommitted, 0)
			r.committedTxns.Add(1)
			r.done.Add(int64(fs.NumRecords()))
		default:
			r.setOutcome(tag, txnAborted, 0)
			r.abortedTxns.Add(1)
		}
	}
}

func (r *eosRun) setOutcome(tag string, o txnOutcome, written int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outcomes[tag] = o
	if written > 0 {
		r.written[tag] = written
	}
}

// liveReader reads the output read_committed while the members work.
type liveReader struct {
	r    *eosRun
	mu   sync.Mutex
	seen map[int32][]eosRec
}

type eosRec struct {
	offset int64
	value  string
}

func newLiveReader(r *eosRun) *liveReader { return &liveReader{r: r, seen: map[int32][]eosRec{}} }

func (l *liveReader) run(ctx context.Context) {
	cl := l.r.c.client(kgo.ConsumeTopics(eosOut), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		l.mu.Lock()
		fs.EachRecord(func(rec *kgo.Record) {
			l.seen[rec.Partition] = append(l.seen[rec.Partition], eosRec{rec.Offset, string(rec.Value)})
		})
		l.mu.Unlock()
	}
}

func (l *liveReader) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		n += len(s)
	}
	return n
}

// readAll reads every partition of topic from its start to its end offset
// in ends. Control records are kept (and dropped here) so that the
// position is known past a trailing commit or abort marker.
func (r *eosRun) readAll(topic string, ends kadm.ListedOffsets, committed bool) map[int32][]eosRec {
	t := r.t
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) != eosParts {
		t.Fatalf("end offsets of %s: %v", topic, want)
	}
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond), kgo.KeepControlRecords()}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := r.c.client(opts...)
	defer cl.Close()
	out := map[int32][]eosRec{}
	next := map[int32]int64{}
	reached := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	rctx, cancel := context.WithTimeout(r.ctx, 5*time.Minute)
	defer cancel()
	for !reached() {
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("read %s: positions %v, ends %v", topic, next, want)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch %s: %v", topic, err) })
		fs.EachRecord(func(rec *kgo.Record) {
			next[rec.Partition] = rec.Offset + 1
			if !rec.Attrs.IsControl() {
				out[rec.Partition] = append(out[rec.Partition], eosRec{rec.Offset, string(rec.Value)})
			}
		})
	}
	return out
}

// check compares the input, the final read_committed output and what the
// live reader saw.
func (r *eosRun) check(input, output map[int32][]eosRec, live *liveReader) {
	t := r.t
	inputs := map[string]int{}
	for _, recs := range input {
		for _, rec := range recs {
			inputs[rec.value]++
		}
	}
	for i := range r.total {
		if n := inputs[strconv.Itoa(i)]; n != 1 {
			t.Errorf("input value %d is in %s %d times (idempotent producer)", i, eosIn, n)
		}
	}
	if len(inputs) != r.total {
		t.Errorf("%s holds %d distinct values, want %d", eosIn, len(inputs), r.total)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]int{}
	perTxn := map[string]int{}
	var foreign, aborted []string
	for p, recs := range output {
		for _, rec := range recs {
			in, tag, ok := strings.Cut(rec.value, "|")
			if !ok {
				foreign = append(foreign, fmt.Sprintf("%d@%d:%q", p, rec.offset, rec.value))
				continue
			}
			seen[in]++
			perTxn[tag]++
			switch o, known := r.outcomes[tag]; {
			case !known:
				foreign = append(foreign, fmt.Sprintf("%d@%d:%q", p, rec.offset, rec.value))
			case o == txnAborted || o == txnAbandoned:
				aborted = append(aborted, fmt.Sprintf("%d@%d:%q", p, rec.offset, rec.value))
			}
		}
	}
	var missing, dup []string
	for i := range r.total {
		switch n := seen[strconv.Itoa(i)]; {
		case n == 0:
			missing = append(missing, strconv.Itoa(i))
		case n > 1:
			dup = append(dup, fmt.Sprintf("%d(x%d)", i, n))
		}
	}
	for in := range seen {
		if inputs[in] == 0 {
			foreign = append(foreign, in)
		}
	}
	if len(missing)+len(dup)+len(foreign)+len(aborted) > 0 {
		r.logState()
		t.Errorf("output of %d inputs: %d missing %v, %d duplicated %v, %d foreign %v, %d from aborted transactions %v",
			r.total, len(missing), head(missing), len(dup), head(dup), len(foreign), head(foreign), len(aborted), head(aborted))
	}
	// A transaction its member saw commit is in the output whole; one
	// whose End failed is there whole or not at all.
	var partial []string
	for tag, o := range r.outcomes {
		switch got, want := perTxn[tag], r.written[tag]; {
		case o == txnCommitted && got != want,
			o == txnUnknown && got != 0 && got != want:
			partial = append(partial, fmt.Sprintf("%s(%d of %d)", tag, got, want))
		case o == txnUnknown:
			r.t.Logf("transaction %s ended with an error: %d of its %d records are in the output", tag, got, want)
		}
	}
	slices.Sort(partial)
	if len(partial) > 0 {
		t.Errorf("%d transactions committed or of unknown outcome are not whole nor absent in the output: %v", len(partial), head(partial))
	}

	// What the live reader saw is still there, at the same offsets.
	live.mu.Lock()
	defer live.mu.Unlock()
	for p, recs := range live.seen {
		final := output[p]
		if len(recs) > len(final) {
			t.Errorf("%s-%d: the live reader saw %d records, the final read %d", eosOut, p, len(recs), len(final))
			continue
		}
		for i, rec := range recs {
			if final[i] != rec {
				t.Errorf("%s-%d: the live reader saw %d:%q as its record %d, the final read %d:%q", eosOut, p, rec.offset, rec.value, i, final[i].offset, final[i].value)
				break
			}
		}
	}
}

// findCoordinator is the node coordinating key (type 0: group, 1:
// transaction), or -1.
func (c *testCluster) findCoordinator(ctx context.Context, typ int8, key string) int32 {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey = typ, key
	cl := c.client()
	defer cl.Close()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || resp.ErrorCode != 0 {
		return -1
	}
	return resp.NodeID
}

// leadsOf lists the partitions of topics that node leads, as "topic-p".
func (c *testCluster) leadsOf(ctx context.Context, node int32, topics ...string) []string {
	var out []string
	for _, topic := range topics {
		led, err := c.leaders(ctx, topic)
		if err != nil {
			continue
		}
		for p, l := range led {
			if l == node {
				out = append(out, fmt.Sprintf("%s-%d", topic, p))
			}
		}
	}
	slices.Sort(out)
	return out
}

// logState logs the transactions, the group and its offsets, for a failure.
func (r *eosRun) logState() {
	ctx, t := r.ctx, r.t
	adm := r.c.admin()
	if d, err := adm.DescribeTransactions(ctx, "eosc-a", "eosc-b", "eosc-c", "eosc-d"); err == nil {
		for _, tx := range d.Sorted() {
			t.Logf("transaction %s at %d: %s pid %d epoch %d partitions %v err %v", tx.TxnID, tx.Coordinator, tx.State, tx.ProducerID, tx.ProducerEpoch, tx.Topics, tx.Err)
		}
	}
	ends, _ := adm.ListEndOffsets(ctx, eosIn)
	offs, _ := adm.FetchOffsets(ctx, eosGroup)
	ends.Each(func(o kadm.ListedOffset) {
		got, _ := offs.Lookup(o.Topic, o.Partition)
		t.Logf("%s-%d: end %d, group at %d (%v)", eosIn, o.Partition, o.Offset, got.At, got.Err)
	})
	if g, err := adm.DescribeGroups(ctx, eosGroup); err == nil {
		for _, gr := range g {
			t.Logf("group %s: %s, %d members, err %v", eosGroup, gr.State, len(gr.Members), gr.Err)
		}
	}
	var errs []error
	if p, err := adm.DescribeProducers(ctx, kadm.TopicsSet{eosOut: nil}); err == nil {
		p.EachPartition(func(dp kadm.DescribedProducersPartition) {
			for _, ap := range dp.ActiveProducers.Sorted() {
				if ap.CurrentTxnStartOffset >= 0 {
					t.Logf("%s-%d: open transaction of producer %d epoch %d from %d", eosOut, dp.Partition, ap.ProducerID, ap.ProducerEpoch, ap.CurrentTxnStartOffset)
				}
			}
		})
	} else {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		t.Logf("describe producers: %v", err)
	}
}

// lockedWriter serializes the members' log lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logLines returns up to limit lines of the node's log containing substr.
func (n *node) logLines(substr string, limit int) []string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "strata.log"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) && len(out) < limit {
			out = append(out, l)
		}
	}
	return out
}
