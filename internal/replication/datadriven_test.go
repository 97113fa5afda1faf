package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/record"
	"github.com/stratalog/strata/internal/storage"
)

// TestPartitionDataDriven drives one replica of a partition (node 1) through
// the scripts in testdata/partition/, with a manual clock and a scripted
// controller. Commands:
//
//	leader epoch=E [pepoch=P] isr=1/2/3 [replicas=1/2/3]   (becomes or stays leader)
//	follower leader=L epoch=E [pepoch=P] isr=.. [replicas=..]
//	append [n=N] [acks=-1|1]     (a produced batch of N records, as the leader)
//	fetch replica=R offset=O [last-epoch=E] [epoch=C]   (a follower's fetch at the leader)
//	consume offset=O [committed] (a consumer's fetch at the leader: what it may read; read_committed shows the LSO and aborted transactions)
//	append-txn pid=P [epoch=E] [seq=S] [n=N]   (a transactional batch, acks=all)
//	marker pid=P [epoch=E] [coord=C] [tv=V] commit|abort   (WriteTxnMarkers' append; tv: transaction version)
//	advance ms=N                 (the manual clock)
//	shrink                       (the periodic ISR check)
//	controller [err=fenced|version|ineligible]   (answers the ISR change in flight)
//	leader-send [n=N] epoch=E    (batches the leader of another epoch wrote, as the follower receives them)
//	diverge epoch=E end=O        (a leader's diverging-epoch answer: truncate)
//	wait-replicated offset=O     (acks=all: is offset in every ISR member?)
//	state                        (role, epochs, ISR, pending change, LEO, HW)
//	counters                     (the partition's and the broker's metrics counters)
//	disk [full] [fail-fsync]     (the injected disk: writes fail with ENOSPC after a short write, fsyncs with EIO; neither: healthy)
//	flush                        (the periodic flush of the maintenance loop, fsyncing everything)
//	storage                      (the storage error state, the storage error counter and the ERROR / recovered log lines so far)
func TestPartitionDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/partition", func(t *testing.T, path string) {
		h := newHarness(t)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return h.run(t, td)
		})
	})
}

type harness struct {
	now     time.Time
	p       *Partition
	ctrl    *scriptedController
	queued  []func()
	builder func(n int) []byte
	disk    *disk     // faults_test.go
	logs    *logLines // the partition's log, as text
}

// scriptedController answers ISR changes as the script says: it records
// the request; the harness decides the answer when "controller" runs.
type scriptedController struct {
	req    *ISRChange
	answer error
}

func (c *scriptedController) AlterPartition(_ context.Context, req ISRChange) (ISRChange, error) {
	c.req = &req
	if c.answer != nil {
		return req, c.answer
	}
	req.PartitionEpoch++
	return req, nil
}

func newHarness(t *testing.T) *harness {
	h := &harness{now: time.Unix(1_700_000_000, 0), ctrl: &scriptedController{}, disk: &disk{}, logs: &logLines{}}
	e := &env{nodeID: 1, now: func() time.Time { return h.now }, lagMax: 30 * time.Second, ctrl: h.ctrl,
		logger: slog.New(slog.NewTextHandler(h.logs, nil)), spawn: func(f func()) { h.queued = append(h.queued, f) }}
	l, err := storage.Open(t.TempDir(), storage.DefaultConfig(), storage.Options{Now: e.now, IO: h.disk.io()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := config.ResolveTopicConfig(config.Layers{Topic: map[string]string{"min.insync.replicas": "2"}})
	h.p = newPartition(e, "t", metadata.NewUUID(), 0, l, &cfg)
	h.builder = func(n int) []byte { return buildBatch(t, n) }
	return h
}

func ids(s string) []int32 {
	if s == "" {
		return nil
	}
	var out []int32
	for _, f := range strings.Split(s, "/") {
		n, _ := strconv.Atoi(f)
		out = append(out, int32(n))
	}
	return out
}

func (h *harness) run(t *testing.T, td *datadriven.TestData) string {
	arg := func(k, def string) string {
		for _, a := range td.CmdArgs {
			if a.Key == k {
				return strings.Join(a.Vals, ",")
			}
		}
		return def
	}
	num := func(k string, def int64) int64 {
		n, err := strconv.ParseInt(arg(k, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %s: %v", td.Pos, k, err)
		}
		return n
	}
	st := func() state {
		isr := ids(arg("isr", "1/2/3"))
		return state{leader: int32(num("leader", 1)), leaderEpoch: int32(num("epoch", 0)), partitionEpoch: int32(num("pepoch", 0)),
			replicas: ids(arg("replicas", "1/2/3")), isr: isr}
	}
	p := h.p
	switch td.Cmd {
	case "leader":
		s := st()
		s.leader = 1
		p.becomeLeader(s)
		return h.state()
	case "follower":
		p.becomeFollower(st())
		return h.state()
	case "append":
		res, err := p.AppendAsLeader(h.builder(int(num("n", 1))), int16(num("acks", 1)))
		if err != nil {
			return "error: " + errName(err)
		}
		return fmt.Sprintf("offsets %d..%d\n%s", res.BaseOffset, res.LastOffset, h.state())
	case "fetch":
		fr, err := p.Read(FetchParams{Offset: num("offset", 0), MaxBytes: 1 << 20, MinOneBatch: true, ReplicaID: int32(num("replica", 2)),
			LastFetchedEpoch: int32(num("last-epoch", -1)), CurrentLeaderEpoch: int32(num("epoch", -1))})
		defer fr.Release()
		if err != nil {
			return "error: " + errName(err)
		}
		out := fmt.Sprintf("bytes %d, hw %d", fr.Records.Size, fr.HighWatermark)
		if fr.Diverging {
			out = fmt.Sprintf("diverging: epoch %d ends at %d", fr.DivergingEpoch, fr.DivergingEndOffset)
		}
		return out + "\n" + h.state()
	case "consume":
		iso := ReadUncommitted
		if td.HasArg("committed") {
			iso = ReadCommitted
		}
		fr, err := p.Read(FetchParams{Offset: num("offset", 0), MaxBytes: 1 << 20, MinOneBatch: true, ReplicaID: -1, LastFetchedEpoch: -1, CurrentLeaderEpoch: -1, Isolation: iso})
		defer fr.Release()
		if err != nil {
			return "error: " + errName(err)
		}
		if iso == ReadCommitted {
			return fmt.Sprintf("bytes %d, records to %d, hw %d, lso %d, aborted %v", fr.Records.Size, fr.Records.End, fr.HighWatermark, fr.LastStableOffset, fr.AbortedTxns)
		}
		return fmt.Sprintf("bytes %d, hw %d", fr.Records.Size, fr.HighWatermark)
	case "append-txn":
		opts := record.NewBatchOptions(record.CodecNone)
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence, opts.Transactional = num("pid", 1), int16(num("epoch", 0)), int32(num("seq", 0)), true
		recs := make([]record.Record, num("n", 1))
		for i := range recs {
			recs[i] = record.Record{OffsetDelta: int32(i), Value: []byte("v")}
		}
		b, err := record.Build(nil, opts, h.now.UnixMilli(), recs)
		if err != nil {
			t.Fatal(err)
		}
		res, err := p.AppendAsLeader(b, -1)
		if err != nil {
			return "error: " + errName(err)
		}
		return fmt.Sprintf("offsets %d..%d, lso %d\n%s", res.BaseOffset, res.LastOffset, p.LastStableOffset(), h.state())
	case "marker":
		res, err := p.AppendTxnMarkerVersion(num("pid", 1), int16(num("epoch", 0)), int32(num("coord", 0)), td.HasArg("commit"), int8(num("tv", 0)))
		if err != nil {
			return "error: " + errName(err)
		}
		dup := ""
		if res.Duplicate {
			dup = " (already written)"
		}
		return fmt.Sprintf("marker at %d%s, lso %d\n%s", res.BaseOffset, dup, p.LastStableOffset(), h.state())
	case "advance":
		h.now = h.now.Add(time.Duration(num("ms", 0)) * time.Millisecond)
		return ""
	case "shrink":
		p.maybeShrinkISR()
		return h.state()
	case "controller":
		switch arg("err", "") {
		case "fenced":
			h.ctrl.answer = errors.New("FENCED_LEADER_EPOCH")
		case "version":
			h.ctrl.answer = errors.New("INVALID_UPDATE_VERSION")
		case "":
			h.ctrl.answer = nil
		default:
			h.ctrl.answer = errors.New(arg("err", ""))
		}
		if len(h.queued) == 0 {
			return "nothing in flight"
		}
		for _, f := range h.queued {
			f()
		}
		h.queued = nil
		r := h.ctrl.req
		return fmt.Sprintf("asked: isr %v at leader epoch %d partition epoch %d\n%s", r.ISR, r.LeaderEpoch, r.PartitionEpoch, h.state())
	case "leader-send":
		// Batches as a leader of another epoch wrote them.
		b := h.builder(int(num("n", 1)))
		setBase(b, p.LogEndOffset(), int32(num("epoch", 0)))
		if err := p.appendAsFollower(b, num("hw", 0)); err != nil {
			if errors.Is(err, ErrStorage) {
				return "error: " + errName(err) // without the temp dir's path
			}
			return "error: " + err.Error()
		}
		return h.state()
	case "diverge":
		to := min(num("end", 0), p.localEndOffsetForEpoch(int32(num("epoch", 0))))
		if err := p.truncateTo(to); err != nil {
			return "error: " + err.Error()
		}
		return h.state()
	case "counters":
		c, b := p.Counters(), &p.env.stats
		return fmt.Sprintf("in %d bytes, %d messages; out %d bytes, %d to followers; errors produce %d fetch %d; isr shrinks %d expands %d",
			c.BytesIn, c.MessagesIn, c.BytesOut, b.replicationBytesOut.Load(), c.ProduceFailures, c.FetchFailures, b.isrShrinks.Load(), b.isrExpands.Load())
	case "wait-replicated":
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // answer from the current state: replicated or not yet
		if err := p.WaitReplicated(ctx, num("offset", 0)); err != nil {
			return "not acknowledged: " + errName(err)
		}
		return "acknowledged"
	case "disk":
		h.disk.set(td.HasArg("full"), td.HasArg("fail-fsync"))
		return ""
	case "flush":
		if err := p.noteMaintenance("flush", p.log.Flush()); err != nil {
			return "error: " + errName(err)
		}
		return "flushed"
	case "storage":
		state := "ok"
		if err := p.StorageError(); err != nil {
			p.ioMu.Lock()
			state = "in error after " + p.ioOp
			p.ioMu.Unlock()
		}
		if p.log.Failed() != nil {
			state += ", log failed until reopened"
		}
		return fmt.Sprintf("%s; storage errors %d; ERROR lines %d, recovered lines %d", state, p.env.stats.storageErrors.Load(),
			h.logs.count("level=ERROR", "partition storage failed"), h.logs.count("level=INFO", "partition storage recovered"))
	case "state":
		return h.state()
	}
	t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	return ""
}

func (h *harness) state() string {
	p := h.p
	p.mu.Lock()
	defer p.mu.Unlock()
	role := "follower"
	if p.leader.Load() {
		role = "leader"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s epoch=%d pepoch=%d isr=%v", role, p.st.leaderEpoch, p.st.partitionEpoch, p.st.isr)
	if p.pending != nil {
		fmt.Fprintf(&b, " pending=%v", p.pending)
	}
	fmt.Fprintf(&b, " leo=%d hw=%d", p.log.LogEndOffset(), p.hw.Load())
	if p.leader.Load() {
		var fs []string
		for _, id := range slices.Sorted(func(yield func(int32) bool) {
			for id := range p.followers {
				if !yield(id) {
					return
				}
			}
		}) {
			f := p.followers[id]
			fs = append(fs, fmt.Sprintf("%d@%d", id, f.leo))
		}
		if len(fs) > 0 {
			fmt.Fprintf(&b, " followers=%s", strings.Join(fs, ","))
		}
	}
	return b.String()
}

// errName is the sentinel an error wraps, for stable script output.
func errName(err error) string {
	for _, e := range []error{ErrStorage, ErrNotLeader, ErrFencedLeaderEpoch, ErrUnknownLeaderEpoch, ErrNotEnoughReplicas,
		ErrNotEnoughReplicasAfterAppend, ErrReplicationTimeout, ErrOffsetOutOfRange, ErrInvalidProducerEpoch, ErrCoordinatorFenced, ErrInvalidTxnState} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}

// setBase stamps a built batch as a leader of epoch would have written it
// at base.
func setBase(b []byte, base int64, epoch int32) {
	record.SetBaseOffset(b, base)
	record.SetPartitionLeaderEpoch(b, epoch)
}
