package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/stratalog/strata/internal/coordinator/runtime"
)

// TestDataDriven runs the scripts in testdata/. Commands:
//
//	new [partitions=N] [max-timeout=MS] [expiration=MS]
//	init id=X [timeout=MS] [expected=PID/EPOCH]     InitProducerId
//	add id=X pid=P epoch=E parts=(t-0,t-1) [tv=2]     AddPartitionsToTxn
//	verify id=X pid=P epoch=E parts=(t-0)             AddPartitionsToTxn VerifyOnly
//	end id=X pid=P epoch=E commit|abort [tv=2]        EndTxn
//	channel ok|fail|fence|stale                       how the fake marker channel answers (fence: TRANSACTION_COORDINATOR_FENCED, stale: INVALID_PRODUCER_EPOCH)
//	markers [wait=N]                                  markers written since the last call (awaiting N of them)
//	isr short|ok                                      the logs' ISR below min.insync.replicas (waits for durability fail at once) or back
//	advance ms=N                                      moves the clock
//	tick                                              timeouts and expiration
//	describe id=X
//	list [states=(Ongoing)] [pids=(1000)] [min-ms=N]
//	state                                             every transaction, as replayed
//	failover                                          a new coordinator (next epoch) loads the same logs
//	force id=X epoch=E                                sets an id's epoch (to reach overflow quickly)
//
// Every command waits until the coordinator is quiet: no marker job left
// that the channel would accept, every shard idle.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var e *env
		defer func() {
			if e != nil {
				e.close()
			}
		}()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd == "new" {
				if e != nil {
					e.close()
				}
				e = newEnv(t, td)
				return ""
			}
			if e == nil {
				t.Fatalf("%s: run new first", td.Pos)
			}
			return e.run(t, td)
		})
	})
}

type fakeChannel struct {
	mu      sync.Mutex
	mode    string
	written []string
	tries   int
	// slow, when set, holds every Write with a partition of topic "slow"
	// until closed (a broker that does not answer); blocked counts the
	// Writes waiting on it.
	slow    chan struct{}
	blocked int
	// slowFailed: the last gate was closed as a timeout; the Writes it
	// held fail their slow partitions.
	slowFailed bool
}

func (f *fakeChannel) Write(ctx context.Context, ms []Marker) [][]error {
	f.mu.Lock()
	slow := f.slow
	f.mu.Unlock()
	if slow != nil && touchesSlow(ms) {
		f.mu.Lock()
		f.blocked++
		f.mu.Unlock()
		select {
		case <-slow:
		case <-ctx.Done():
		}
		f.mu.Lock()
		f.blocked--
		failSlow := f.slowFailed
		f.mu.Unlock()
		if failSlow {
			out := make([][]error, len(ms))
			var ok []Marker
			for i, m := range ms {
				out[i] = make([]error, len(m.Partitions))
				var rest []TopicPartition
				for k, tp := range m.Partitions {
					if tp.Topic == "slow" {
						out[i][k] = errors.New("request timed out")
					} else {
						rest = append(rest, tp)
					}
				}
				m.Partitions = rest
				ok = append(ok, m)
			}
			// Write the other partitions as usual.
			f.mu.Lock()
			f.tries++
			for _, m := range ok {
				for _, tp := range m.Partitions {
					kind := map[bool]string{true: "COMMIT", false: "ABORT"}[m.Commit]
					f.written = append(f.written, fmt.Sprintf("%s %s-%d pid=%d epoch=%d coordinator-epoch=%d tv=%d",
						kind, tp.Topic, tp.Partition, m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.TransactionVersion))
				}
			}
			f.mu.Unlock()
			return out
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	out := make([][]error, len(ms))
	for i, m := range ms {
		out[i] = make([]error, len(m.Partitions))
		for k, tp := range m.Partitions {
			switch f.mode {
			case "fail":
				out[i][k] = errors.New("broker down")
			case "fence":
				out[i][k] = ErrMarkerFenced
			case "stale":
				out[i][k] = ErrMarkerStaleEpoch
			default:
				kind := map[bool]string{true: "COMMIT", false: "ABORT"}[m.Commit]
				f.written = append(f.written, fmt.Sprintf("%s %s-%d pid=%d epoch=%d coordinator-epoch=%d tv=%d",
					kind, tp.Topic, tp.Partition, m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.TransactionVersion))
			}
		}
	}
	return out
}

func touchesSlow(ms []Marker) bool {
	for _, m := range ms {
		for _, tp := range m.Partitions {
			if tp.Topic == "slow" {
				return true
			}
		}
	}
	return false
}

type env struct {
	t      *testing.T
	mu     sync.Mutex
	now    time.Time
	nextID int64
	parts  int32
	epoch  int32
	logs   map[int32]*runtime.MemLog
	ch     *fakeChannel
	c      *Coordinator
	cancel context.CancelFunc
	opts   Options
	// logFail: the logs refuse appends (log fail), as a partition below
	// min.insync.replicas.
	logFail bool
}

func newEnv(t *testing.T, td *datadriven.TestData) *env {
	e := &env{t: t, now: time.UnixMilli(1_700_000_000_000), nextID: 1000, parts: 1, ch: &fakeChannel{mode: "ok"}, logs: map[int32]*runtime.MemLog{}}
	e.opts = Options{
		Logger:             slog.New(slog.DiscardHandler),
		Now:                e.clock,
		MarkerBackoff:      time.Millisecond,
		WriteTimeout:       10 * time.Second,
		AllocateProducerID: e.alloc,
		Markers:            e.ch,
	}
	for _, a := range td.CmdArgs {
		v, _ := strconv.ParseInt(a.Vals[0], 10, 64)
		switch a.Key {
		case "partitions":
			e.parts = int32(v)
		case "max-timeout":
			e.opts.MaxTimeout = time.Duration(v) * time.Millisecond
		case "expiration":
			e.opts.IDExpiration = time.Duration(v) * time.Millisecond
		case "marker-backoff":
			e.opts.MarkerBackoff = time.Duration(v) * time.Millisecond
		}
	}
	e.opts.NumPartitions = e.parts
	for p := range e.parts {
		e.logs[p] = runtime.NewMemLog(true)
	}
	e.start()
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) alloc() (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	id := e.nextID
	e.nextID++
	return id, nil
}

func (e *env) start() {
	e.epoch++
	e.c = New(e.opts)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.c.Start(ctx)
	for p, l := range e.logs {
		e.c.Load(p, e.epoch, l)
	}
	for p := range e.logs {
		e.waitLoaded(p)
	}
}

func (e *env) waitLoaded(p int32) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.c.rt.Call(p, func(*shard) runtime.Result { return runtime.Result{} })
		if !errors.Is(err, ErrLoadInProgress) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("partition %d never loaded", p)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) close() {
	e.c.Close()
	e.cancel()
}

// quiesce waits until no marker job is left that the channel accepts and
// every shard has run everything submitted before.
func (e *env) quiesce() {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for p := range e.logs {
			e.c.rt.Call(p, func(*shard) runtime.Result { return runtime.Result{} })
		}
		e.ch.mu.Lock()
		slowBlocked := e.ch.slow != nil
		e.ch.mu.Unlock()
		e.c.sender.mu.Lock()
		n, retrying := 0, len(e.c.sender.completes)+e.c.sender.submitting
		for _, j := range e.c.sender.jobs {
			// Jobs held by the unanswering broker cannot settle.
			if !slowBlocked || !touchesSlow([]Marker{{Partitions: j.partitions}}) {
				n++
			}
		}
		e.c.sender.mu.Unlock()
		e.mu.Lock()
		logFail := e.logFail
		e.mu.Unlock()
		if logFail && n == 0 {
			// The Completes cannot be written: settled once every
			// transaction whose markers are written waits for its
			// Complete's retry.
			if retrying > 0 || e.noPrepared() {
				return
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("a prepared transaction never got to retry its Complete")
			}
			time.Sleep(time.Millisecond)
			continue
		}
		n += retrying
		e.ch.mu.Lock()
		mode, tries := e.ch.mode, e.ch.tries
		e.ch.mu.Unlock()
		if n == 0 {
			// One more pass over the shards: a Complete submitted by the
			// last round has run once Call returns.
			for p := range e.logs {
				e.c.rt.Call(p, func(*shard) runtime.Result { return runtime.Result{} })
			}
			return
		}
		if mode != "ok" {
			// Wait until the pending jobs were tried at least once more,
			// or one of them finished (a fenced job is not retried; the
			// round that wrote it may not have dropped it yet).
			for time.Now().Before(deadline) {
				e.ch.mu.Lock()
				more := e.ch.tries > tries
				e.ch.mu.Unlock()
				if more {
					return
				}
				e.c.sender.mu.Lock()
				left := len(e.c.sender.jobs) + len(e.c.sender.completes) + e.c.sender.submitting
				e.c.sender.mu.Unlock()
				if left < n {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("markers never settled (%d jobs left)", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// noPrepared reports whether no transaction is prepared (waiting for its
// markers or its Complete).
func (e *env) noPrepared() bool {
	for p := range e.logs {
		v, err := e.c.rt.Call(p, func(s *shard) runtime.Result {
			for _, t := range s.txns {
				if t.prepared() {
					return runtime.Result{Value: false}
				}
			}
			return runtime.Result{Value: true}
		})
		if err == nil && !v.(bool) {
			return false
		}
	}
	return true
}

func argInt(td *datadriven.TestData, key string, def int64) int64 {
	for _, a := range td.CmdArgs {
		if a.Key == key {
			v, err := strconv.ParseInt(a.Vals[0], 10, 64)
			if err != nil {
				panic(fmt.Sprintf("%s: %s=%s: %v", td.Pos, key, a.Vals[0], err))
			}
			return v
		}
	}
	return def
}

func argStr(td *datadriven.TestData, key string) string {
	for _, a := range td.CmdArgs {
		if a.Key == key {
			return strings.Join(a.Vals, ",")
		}
	}
	return ""
}

func parseParts(s string) []TopicPartition {
	var out []TopicPartition
	for _, f := range strings.Split(s, ",") {
		i := strings.LastIndexByte(f, '-')
		p, _ := strconv.Atoi(f[i+1:])
		out = append(out, TopicPartition{f[:i], int32(p)})
	}
	return out
}

func errName(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{ErrNotCoordinator, "NOT_COORDINATOR"}, {ErrLoadInProgress, "COORDINATOR_LOAD_IN_PROGRESS"},
		{ErrCoordinatorNotAvailable, "COORDINATOR_NOT_AVAILABLE"}, {ErrInvalidRequest, "INVALID_REQUEST"},
		{ErrInvalidTimeout, "INVALID_TRANSACTION_TIMEOUT"}, {ErrConcurrentTransactions, "CONCURRENT_TRANSACTIONS"},
		{ErrProducerFenced, "PRODUCER_FENCED"}, {ErrInvalidProducerIDMap, "INVALID_PRODUCER_ID_MAPPING"},
		{ErrInvalidTxnState, "INVALID_TXN_STATE"}, {ErrTransactionalIDNotFound, "TRANSACTIONAL_ID_NOT_FOUND"},
		{ErrTransactionAbortable, "TRANSACTION_ABORTABLE"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return err.Error()
}

func (e *env) run(t *testing.T, td *datadriven.TestData) string {
	id := argStr(td, "id")
	pid, epoch := argInt(td, "pid", -1), int16(argInt(td, "epoch", -1))
	tv := int16(argInt(td, "tv", 0))
	var out string
	switch td.Cmd {
	case "init":
		var expected *ProducerIDAndEpoch
		if s := argStr(td, "expected"); s != "" {
			a, b, _ := strings.Cut(s, "/")
			p, _ := strconv.ParseInt(a, 10, 64)
			ep, _ := strconv.ParseInt(b, 10, 16)
			expected = &ProducerIDAndEpoch{p, int16(ep)}
		}
		ch := make(chan string, 1)
		e.c.InitProducerID(id, int32(argInt(td, "timeout", 60000)), expected, func(r ProducerIDAndEpoch, err error) {
			if err != nil {
				ch <- errName(err)
				return
			}
			ch <- fmt.Sprintf("pid=%d epoch=%d", r.ProducerID, r.Epoch)
		})
		out = <-ch
	case "add":
		ch := make(chan error, 1)
		e.c.AddPartitions(id, pid, epoch, parseParts(argStr(td, "parts")), tv, func(err error) { ch <- err })
		out = "ok"
		if err := <-ch; err != nil {
			out = errName(err)
		}
	case "verify":
		parts := parseParts(argStr(td, "parts"))
		ch := make(chan string, 1)
		e.c.VerifyPartitions(id, pid, epoch, parts, func(errs []error, err error) {
			if err != nil {
				ch <- errName(err)
				return
			}
			var b strings.Builder
			for i, tp := range parts {
				r := "ok"
				if errs[i] != nil {
					r = errName(errs[i])
				}
				fmt.Fprintf(&b, "%s-%d: %s\n", tp.Topic, tp.Partition, r)
			}
			ch <- strings.TrimSuffix(b.String(), "\n")
		})
		out = <-ch
	case "end":
		commit := td.HasArg("commit")
		ch := make(chan string, 1)
		e.c.EndTxn(id, pid, epoch, commit, tv, func(r ProducerIDAndEpoch, err error) {
			if err != nil {
				ch <- errName(err)
				return
			}
			if tv >= 2 {
				ch <- fmt.Sprintf("ok pid=%d epoch=%d", r.ProducerID, r.Epoch)
				return
			}
			ch <- "ok"
		})
		out = <-ch
	case "channel":
		switch td.CmdArgs[0].Key {
		case "block-slow":
			e.ch.mu.Lock()
			e.ch.slow = make(chan struct{})
			e.ch.mu.Unlock()
			return ""
		case "release-slow":
			e.ch.mu.Lock()
			close(e.ch.slow)
			e.ch.slow, e.ch.slowFailed = nil, false
			e.ch.mu.Unlock()
			e.quiesce()
			return ""
		case "timeout-slow":
			// The held Writes time out on their slow partitions; the
			// broker stays unanswering for the next ones. Returns once
			// no round is in flight.
			e.ch.mu.Lock()
			e.ch.slowFailed = true
			close(e.ch.slow)
			e.ch.mu.Unlock()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				e.ch.mu.Lock()
				n := e.ch.blocked
				e.ch.mu.Unlock()
				e.c.sender.mu.Lock()
				inflight := false
				for _, j := range e.c.sender.jobs {
					inflight = inflight || j.inflight
				}
				e.c.sender.mu.Unlock()
				if n == 0 && !inflight {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the held rounds never finished")
				}
			}
			e.ch.mu.Lock()
			e.ch.slow, e.ch.slowFailed = make(chan struct{}), false
			e.ch.mu.Unlock()
			return ""
		case "await-blocked":
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				e.ch.mu.Lock()
				n := e.ch.blocked
				e.ch.mu.Unlock()
				if n > 0 {
					return ""
				}
				if time.Now().After(deadline) {
					t.Fatal("no marker write ever blocked on the slow broker")
				}
			}
		}
		e.ch.mu.Lock()
		e.ch.mode = td.CmdArgs[0].Key
		e.ch.mu.Unlock()
		if td.CmdArgs[0].Key == "ok" {
			e.c.sender.add() // nothing to add; the retry timer sends
		}
		e.quiesce()
		return ""
	case "log":
		fail := td.CmdArgs[0].Key == "fail"
		e.mu.Lock()
		e.logFail = fail
		e.mu.Unlock()
		for _, l := range e.logs {
			if fail {
				l.FailAppends(errors.New("NOT_ENOUGH_REPLICAS: 1 in-sync replica, min.insync.replicas is 2"))
			} else {
				l.FailAppends(nil)
			}
		}
		return ""
	case "markers":
		if n := int(argInt(td, "wait", 0)); n > 0 {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				e.ch.mu.Lock()
				got := len(e.ch.written)
				e.ch.mu.Unlock()
				if got >= n || time.Now().After(deadline) {
					break
				}
			}
		}
		e.quiesce()
		e.ch.mu.Lock()
		w := e.ch.written
		e.ch.written = nil
		e.ch.mu.Unlock()
		sort.Strings(w)
		if len(w) == 0 {
			return "none"
		}
		return strings.Join(w, "\n")
	case "isr":
		for _, l := range e.logs {
			l.SetShortISR(td.CmdArgs[0].Key == "short")
		}
		return ""
	case "advance":
		e.mu.Lock()
		e.now = e.now.Add(time.Duration(argInt(td, "ms", 0)) * time.Millisecond)
		e.mu.Unlock()
		return ""
	case "tick":
		e.c.Tick()
	case "describe":
		d := e.c.Describe([]string{id})[0]
		if d.Err != nil {
			out = errName(d.Err)
			break
		}
		out = fmt.Sprintf("%s pid=%d epoch=%d timeout=%d start=%s partitions=%v", d.State, d.ProducerID, d.ProducerEpoch, d.TimeoutMs, e.rel(d.StartMs), d.Partitions)
	case "list":
		var f ListFilter
		if s := argStr(td, "states"); s != "" {
			for _, n := range strings.Split(s, ",") {
				st, ok := ParseState(n)
				if !ok {
					t.Fatalf("unknown state %s", n)
				}
				f.States = append(f.States, st)
			}
		}
		if s := argStr(td, "pids"); s != "" {
			for _, n := range strings.Split(s, ",") {
				p, _ := strconv.ParseInt(n, 10, 64)
				f.ProducerIDs = append(f.ProducerIDs, p)
			}
		}
		f.MinDuration = time.Duration(argInt(td, "min-ms", 0)) * time.Millisecond
		l, err := e.c.List(f)
		if err != nil {
			out = errName(err)
			break
		}
		var b strings.Builder
		for _, x := range l {
			fmt.Fprintf(&b, "%s pid=%d %s\n", x.TransactionalID, x.ProducerID, x.State)
		}
		out = strings.TrimSuffix(b.String(), "\n")
		if out == "" {
			out = "none"
		}
	case "state":
		e.quiesce()
		return e.dump()
	case "failover":
		e.close()
		for p, l := range e.logs {
			e.logs[p] = l.Reopen(true)
		}
		e.start()
	case "force":
		p := e.c.PartitionFor(id)
		_, err := e.c.rt.Call(p, func(s *shard) runtime.Result {
			t := s.txns[id].clone()
			t.epoch = epoch
			return s.write(t, nil, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		return ""
	default:
		t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	}
	e.quiesce()
	return out
}

// rel prints a timestamp relative to the start of the test clock.
func (e *env) rel(ms int64) string {
	if ms < 0 {
		return "-"
	}
	return fmt.Sprintf("+%dms", ms-1_700_000_000_000)
}

// dump prints every transaction of every partition, as a reload from the
// logs would find it (checked against the live state).
func (e *env) dump() string {
	var lines []string
	for p, l := range e.logs {
		var mem string
		live, err := e.c.rt.Call(p, func(s *shard) runtime.Result {
			mem = dumpTxns(s.txns, e.rel, true)
			return runtime.Result{Value: dumpTxns(s.txns, e.rel, false)}
		})
		if err != nil {
			e.t.Fatal(err)
		}
		fresh := map[string]*txn{}
		if err := l.ForEachBatch(func(b []byte) error { return replay(fresh, nil, b) }); err != nil {
			e.t.Fatal(err)
		}
		if got, want := dumpTxns(fresh, e.rel, false), live.(string); got != want {
			e.t.Fatalf("partition %d: replaying the log gives\n%s\nbut memory holds\n%s", p, got, want)
		}
		if mem != "" {
			lines = append(lines, mem)
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return "none"
	}
	return strings.Join(lines, "\n")
}

func dumpTxns(txns map[string]*txn, rel func(int64) string, memory bool) string {
	var lines []string
	for _, t := range txns {
		s := fmt.Sprintf("%s: %s pid=%d epoch=%d", t.id, t.state, t.producerID, t.epoch)
		if t.clientTxnVersion >= 2 || memory {
			// Only version 1 records carry them.
			s += fmt.Sprintf(" prev-pid=%d next-pid=%d", t.prevProducerID, t.nextProducerID)
		}
		s += fmt.Sprintf(" timeout=%d start=%s update=%s tv=%d partitions=%v", t.timeoutMs, rel(t.startMs), rel(t.updateMs), t.clientTxnVersion, t.sortedPartitions())
		if memory {
			s += fmt.Sprintf(" last-epoch=%d", t.lastEpoch)
		}
		lines = append(lines, s)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
