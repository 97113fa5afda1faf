package replication

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/storage"
)

// gateIO is a disk whose writes wait at a gate while it is armed.
type gateIO struct {
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// open lets every waiting write through.
func (g *gateIO) open() { g.once.Do(func() { close(g.release) }) }

func newGateIO() *gateIO {
	return &gateIO{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (g *gateIO) arm() {
	g.mu.Lock()
	g.armed = true
	g.mu.Unlock()
}

func (g *gateIO) io() *storage.FileIO {
	return &storage.FileIO{WriteAt: func(f *os.File, b []byte, off int64) (int, error) {
		g.mu.Lock()
		armed := g.armed
		g.armed = false
		g.mu.Unlock()
		if armed {
			g.entered <- struct{}{}
			<-g.release
		}
		return f.WriteAt(b, off)
	}}
}

// A change of role waits for a leader append that has checked leadership
// until its batch is in the log: a leader's batch never lands in a
// follower's log, nor after batches of a newer epoch.
func TestRoleChangeWaitsForLeaderAppend(t *testing.T) {
	gate := newGateIO()
	m := NewManager(Options{
		NodeID:    1,
		DataDir:   t.TempDir(),
		Static:    staticConfig(t, false),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Reserved:  map[string]bool{"__cluster_metadata-0": true},
		StorageIO: gate.io(),
	})
	t.Cleanup(func() { m.Close() })
	t.Cleanup(gate.open) // runs first: a failed test leaves no write waiting
	im0 := metadata.Empty()
	m.Apply(im0, mustApply(t, im0, topicRecs("t", metadata.NewUUID(), 1)...))
	p := mustGet(t, m, "t", 0)
	if _, err := p.AppendAsLeader(buildBatch(t, 2), 1); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	next := p.st
	p.mu.Unlock()
	next.leader, next.leaderEpoch, next.partitionEpoch = 2, next.leaderEpoch+1, next.partitionEpoch+1

	gate.arm()
	appended := make(chan error, 1)
	go func() {
		_, err := p.AppendAsLeader(buildBatch(t, 3), 1)
		appended <- err
	}()
	<-gate.entered // the append is writing its batch
	changed := make(chan int64, 1)
	go func() {
		p.becomeFollower(next)
		changed <- p.LogEndOffset()
	}()
	select {
	case leo := <-changed:
		t.Fatalf("the replica became a follower (log end %d) while a leader append was writing its batch", leo)
	case <-time.After(time.Second):
		// It waits, as it must: it cannot finish before the release.
	}
	gate.open()
	if err := <-appended; err != nil {
		t.Fatalf("the append that started as leader: %v", err)
	}
	if leo := <-changed; leo != 5 {
		t.Fatalf("log end when the replica became a follower: %d, want 5 (the append finished first)", leo)
	}
	if _, err := p.AppendAsLeader(buildBatch(t, 1), 1); err == nil {
		t.Fatal("a follower took a leader append")
	}
}
