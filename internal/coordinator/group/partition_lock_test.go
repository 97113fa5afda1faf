package group

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// blockingLog is a Log whose appends wait until released: a
// __consumer_offsets partition whose high watermark does not move (a
// follower stopped fetching and has not left the ISR yet).
type blockingLog struct {
	entered chan struct{} // one value per append that started waiting
	release chan struct{} // closed to let every append finish

	mu  sync.Mutex
	log memLog
}

func newBlockingLog() *blockingLog {
	return &blockingLog{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (l *blockingLog) Append(b []byte) error {
	l.entered <- struct{}{}
	<-l.release
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.Append(b)
}

func (l *blockingLog) ForEachBatch(fn func([]byte) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.ForEachBatch(fn)
}

// groupOn returns a group id placed on partition p of n.
func groupOn(t *testing.T, p, n int32) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		id := fmt.Sprintf("group-%d", i)
		if PartitionFor(id, n) == p {
			return id
		}
	}
	t.Fatalf("no group id on partition %d", p)
	return ""
}

// A partition whose append waits stalls only the groups placed on it:
// commits, fetches, joins, heartbeats and ticks of another partition's
// groups go on (DESIGN.md 7.4: no lock spans partitions).
func TestStuckPartitionStallsOnlyItsGroups(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := New(Options{Now: func() time.Time { return now }, NumPartitions: 2, MinSessionTimeout: time.Millisecond})
	stuck, free := newBlockingLog(), &memLog{}
	if err := c.Load(0, stuck); err != nil {
		t.Fatal(err)
	}
	if err := c.Load(1, free); err != nil {
		t.Fatal(err)
	}
	g0, g1 := groupOn(t, 0, 2), groupOn(t, 1, 2)
	commit := func(group string, offset int64) error {
		errs, err := c.Commit(CommitRequest{Group: group, Generation: -1,
			Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: offset, LeaderEpoch: -1}}})
		if err != nil {
			return err
		}
		return errs[0]
	}

	stuckDone := make(chan error, 1)
	go func() { stuckDone <- commit(g0, 5) }()
	<-stuck.entered // the commit holds partition 0 inside its append

	// Partition 1's groups are served meanwhile.
	if err := commit(g1, 7); err != nil {
		t.Fatalf("commit on the free partition: %v", err)
	}
	offs, err := c.Offsets(g1)
	if err != nil || offs["t"][0].Offset != 7 {
		t.Fatalf("offsets on the free partition: %v %v", offs, err)
	}
	var joined *JoinResult
	req := JoinRequest{Group: g1, ClientID: "c", SessionTimeout: time.Second, RebalanceTimeout: time.Second,
		ProtocolType: "consumer", Protocols: []Protocol{{Name: "range", Metadata: []byte("m")}}}
	c.Join(req, func(r JoinResult) { joined = &r })
	if joined == nil || joined.Err != nil {
		t.Fatalf("join on the free partition: %+v", joined)
	}
	c.Tick() // must not wait for partition 0
	if d := c.Describe([]string{g1}); d[0].Err != nil || len(d[0].Members) != 1 {
		t.Fatalf("describe on the free partition: %+v", d[0])
	}
	select {
	case err := <-stuckDone:
		t.Fatalf("the stuck commit finished before its append was released: %v", err)
	default:
	}

	close(stuck.release)
	if err := <-stuckDone; err != nil {
		t.Fatalf("the stuck commit, released: %v", err)
	}
	if offs, err := c.Offsets(g0); err != nil || offs["t"][0].Offset != 5 {
		t.Fatalf("offsets on the released partition: %v %v", offs, err)
	}
}

// A transaction marker that becomes durable while its partition loads is
// applied once the load ends if the replay had already passed it, and
// not twice if the replay read it.
func TestTxnMarkerDuringLoad(t *testing.T) {
	now := time.Unix(1700000000, 0)
	c := New(Options{Now: func() time.Time { return now }, NumPartitions: 1})
	l := &memLog{}
	if err := c.Load(0, l); err != nil {
		t.Fatal(err)
	}
	errs, err := c.CommitTxn(TxnCommitRequest{Group: "g", ProducerID: 9, ProducerEpoch: 0, Generation: -1,
		Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 3, LeaderEpoch: -1}}})
	if err != nil || errs[0] != nil {
		t.Fatalf("txn commit: %v %v", errs, err)
	}
	// A new owner starts loading the log, whose replay ends before the
	// marker (written at the next offset) is read.
	c2 := New(Options{Now: func() time.Time { return now }, NumPartitions: 1})
	c2.BeginLoad(0, l)
	c2.OnTxnMarker(0, 9, 0, true, int64(len(l.batches)))
	if err := c2.Load(0, l); err != nil {
		t.Fatal(err)
	}
	if offs, err := c2.Offsets("g"); err != nil || offs["t"][0].Offset != 3 {
		t.Fatalf("the marker seen while loading was not applied: %v %v", offs, err)
	}
	if p, err := c2.PendingTxnOffsets("g", []TopicPartition{{"t", 0}}); err != nil || p[0] {
		t.Fatalf("still pending: %v %v", p, err)
	}
}

// testGroup returns a loaded group (nil if none), for assertions.
func (c *Coordinator) testGroup(id string) *group {
	g, part, err := c.enter(id)
	if err != nil {
		return nil
	}
	defer part.mu.Unlock()
	return g
}
