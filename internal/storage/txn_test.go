package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestTxnDataDriven runs the scripts in testdata/txn: the producer state
// with transactions (markers, fencing, the last stable offset, the aborted
// transaction index), its recovery, truncation, followers and the cleaner.
// Besides the commands of TestCleanerDataDriven (open, append [txn]
// [verified [guard=N]], roll, advance, clean, dump, read, reopen, crash):
//
//	marker pid=N epoch=E commit|abort [coord=C]   append a transaction marker as the leader
//	verify pid=N epoch=E      StartTxnVerification; the guard is kept for "append verified"
//	state [hw=N] [of=follower]   the last stable offset, producers and transaction indexes
//	aborted from=N upper=N [of=follower]   AbortedTxns
//	retention up-to=N         EnforceRetention (retention.ms 0: every segment is due)
//	delete-records before=N   DeleteRecordsBefore
//	follower                  open an empty follower log
//	replicate                 AppendAsFollower of everything the follower lacks
//	truncate to=N [of=follower] | truncate-fully at=N [of=follower]
//	crash [drop-snapshots|tear-snapshots] [tear-txnindex] [drop-txnindex]   kill -9, damaging files
//	files [of=follower]       the .txnindex and .snapshot files
func TestTxnDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata/txn", func(t *testing.T, path string) {
		var e *txnEnv
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd == "open" {
				e = &txnEnv{cleanEnv: newCleanEnv(t, td)}
				if !td.HasArg("compact") {
					e.tl.cfg.Compact = false
					e.tl.SetConfig(e.tl.cfg)
				}
				return ""
			}
			if e == nil {
				t.Fatalf("%s: open first", td.Pos)
			}
			return e.run(t, td)
		})
	})
}

type txnEnv struct {
	*cleanEnv
	follower *testLog
}

func (e *txnEnv) log(t *testing.T, td *datadriven.TestData) *testLog {
	if td.HasArg("of") {
		if e.follower == nil {
			t.Fatalf("%s: no follower", td.Pos)
		}
		return e.follower
	}
	return e.tl
}

func (e *txnEnv) run(t *testing.T, td *datadriven.TestData) string {
	tl := e.tl
	switch td.Cmd {
	case "marker":
		pid := intArg(t, td, "pid", 1)
		b := BuildTxnMarker(pid, int16(intArg(t, td, "epoch", 0)), int32(intArg(t, td, "coord", 0)), td.HasArg("commit"), tl.clock.Ms())
		res, err := tl.Append(b, 0)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("marker at %d\n", res.BaseOffset)
	case "verify":
		g, needed := tl.StartTxnVerification(intArg(t, td, "pid", 1), int16(intArg(t, td, "epoch", 0)))
		if !needed {
			return "not needed\n"
		}
		e.guard = g
		return fmt.Sprintf("guard %d\n", g)
	case "state":
		l := e.log(t, td)
		hw := intArg(t, td, "hw", l.LogEndOffset())
		var sb strings.Builder
		fmt.Fprintf(&sb, "lso %d (hw %d, log end %d)\n", l.LastStableOffset(hw), hw, l.LogEndOffset())
		for _, p := range l.ActiveProducers() {
			fmt.Fprintf(&sb, "producer %d epoch %d last-seq %d coord %d txn-start %d\n", p.ProducerID, p.ProducerEpoch, p.LastSequence, p.CoordinatorEpoch, p.CurrentTxnStartOffset)
		}
		l.mu.RLock()
		for _, s := range l.segs {
			for _, a := range s.txn.entries {
				fmt.Fprintf(&sb, "txnindex %d: pid %d [%d, %d] lso %d\n", s.base, a.ProducerID, a.FirstOffset, a.LastOffset, a.LastStableOffset)
			}
		}
		l.mu.RUnlock()
		return sb.String()
	case "aborted":
		l := e.log(t, td)
		var sb strings.Builder
		for _, a := range l.AbortedTxns(intArg(t, td, "from", 0), intArg(t, td, "upper", l.LogEndOffset())) {
			fmt.Fprintf(&sb, "pid %d first %d last %d\n", a.ProducerID, a.FirstOffset, a.LastOffset)
		}
		if sb.Len() == 0 {
			return "none\n"
		}
		return sb.String()
	case "retention":
		tl.cfg.RetentionMs = 0
		tl.SetConfig(tl.cfg)
		tl.clock.Advance(1)
		if err := tl.EnforceRetention(intArg(t, td, "up-to", tl.LogEndOffset())); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		tl.cfg.RetentionMs = -1
		tl.SetConfig(tl.cfg)
		return fmt.Sprintf("log start %d\n", tl.LogStartOffset())
	case "delete-records":
		start, err := tl.DeleteRecordsBefore(intArg(t, td, "before", 0))
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("log start %d\n", start)
	case "follower":
		e.follower = openTestLog(t, tl.cfg)
		return ""
	case "replicate":
		f := e.follower
		res, err := tl.Read(f.LogEndOffset(), tl.LogEndOffset(), 1<<30, true)
		if err != nil {
			t.Fatal(err)
		}
		data := readBytes(t, res)
		ar, err := f.AppendAsFollower(data)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("replicated %d-%d\n", ar.BaseOffset, ar.LastOffset)
	case "truncate":
		l := e.log(t, td)
		if err := l.TruncateTo(intArg(t, td, "to", 0)); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("log end %d\n", l.LogEndOffset())
	case "truncate-fully":
		l := e.log(t, td)
		if err := l.TruncateFullyAndStartAt(intArg(t, td, "at", 0)); err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return fmt.Sprintf("log end %d\n", l.LogEndOffset())
	case "crash":
		tl.crash()
		names, err := readDirNames(tl.dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := filepath.Join(tl.dir, n)
			switch {
			case strings.HasSuffix(n, snapshotSuffix) && td.HasArg("drop-snapshots"),
				strings.HasSuffix(n, txnIndexSuffix) && td.HasArg("drop-txnindex"):
				err = os.Remove(p)
			case strings.HasSuffix(n, txnIndexSuffix) && td.HasArg("tear-txnindex"):
				err = os.Truncate(p, txnEntrySize+txnEntrySize/2)
			case strings.HasSuffix(n, snapshotSuffix) && td.HasArg("tear-snapshots"):
				err = truncateHalf(p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := tl.reopenErr(); err != nil {
			t.Fatal(err)
		}
		return ""
	case "files":
		l := e.log(t, td)
		names, err := readDirNames(l.dir)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		for _, n := range names {
			if strings.HasSuffix(n, txnIndexSuffix) || strings.HasSuffix(n, snapshotSuffix) {
				fi, err := os.Stat(filepath.Join(l.dir, n))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&sb, "%s %d\n", n, fi.Size())
			}
		}
		return sb.String()
	}
	return e.cleanEnv.run(t, td)
}

// The snapshot at the active segment's base outlives newer ones from clean
// shutdowns: recovery after a crash replays the active segment from it
// rather than the whole log.
func TestSnapshotAtActiveBaseKept(t *testing.T) {
	tl := openTestLog(t, testConfig())
	for i := range 3 {
		tl.mustAppend(makeBatch(t, batchSpec{pid: 1, seq: int32(i), ts: tl.clock.Ms()}))
	}
	tl.mu.Lock()
	if err := tl.roll(); err != nil {
		t.Fatal(err)
	}
	base := tl.active().base
	tl.mu.Unlock()
	for round := range 3 {
		tl.mustAppend(makeBatch(t, batchSpec{pid: 1, seq: int32(3 + round), ts: tl.clock.Ms()}))
		tl.reopen() // a snapshot at the log end each time
	}
	snaps, err := listSnapshots(tl.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 3 || snaps[0] != base {
		t.Fatalf("snapshots %v, want the one at the active base %d and the two newest", snaps, base)
	}
	tl.crash()
	if err := tl.reopenErr(); err != nil {
		t.Fatal(err)
	}
	if got := tl.ActiveProducers(); len(got) != 1 || got[0].LastSequence != 5 {
		t.Fatalf("producers after the crash: %+v", got)
	}
}
