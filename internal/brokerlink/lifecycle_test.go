package brokerlink

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
)

// TestDuplicateRegistration: DUPLICATE_BROKER_REGISTRATION is retried for
// the grace (the live registration may be this node's previous process,
// killed less than a session ago), then is fatal, naming the node id and
// the other registration; a fresh data dir has no grace; any other answer
// restarts the grace.
func TestDuplicateRegistration(t *testing.T) {
	now := time.Unix(1000, 0)
	dup := fmt.Errorf("%w (DUPLICATE_BROKER_REGISTRATION from the active controller)", controller.ErrDuplicateRegistration)
	other := &metadata.Broker{NodeID: 2, Epoch: 3, Host: "broker-2", Port: 9092}
	lc := NewLifecycle(nil, LifecycleConfig{
		Registration:   controller.BrokerRegistration{NodeID: 2},
		DuplicateGrace: 10 * time.Second,
		Now:            func() time.Time { return now },
	})
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("first duplicate answer: %v, want a retry", err)
	}
	now = now.Add(9 * time.Second)
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("duplicate answers for 9s of a 10s grace: %v, want a retry", err)
	}
	// Another answer in between (the previous process's session expired,
	// then an election) starts the grace again.
	if err := lc.duplicate(controller.ErrNotController, other); err != nil {
		t.Fatalf("NOT_CONTROLLER: %v", err)
	}
	now = now.Add(5 * time.Second)
	if err := lc.duplicate(dup, other); err != nil {
		t.Fatalf("a duplicate answer after another answer: %v, want a retry", err)
	}
	now = now.Add(10 * time.Second)
	err := lc.duplicate(dup, other)
	if !errors.Is(err, ErrNodeIDTaken) || !strings.Contains(err.Error(), "node id 2") || !strings.Contains(err.Error(), "broker-2:9092") {
		t.Fatalf("duplicate answers for the whole grace: %v, want ErrNodeIDTaken naming node id 2 and broker-2:9092", err)
	}

	fresh := NewLifecycle(nil, LifecycleConfig{
		Registration:   controller.BrokerRegistration{NodeID: 2},
		DuplicateGrace: 10 * time.Second,
		Fresh:          true,
		Now:            func() time.Time { return now },
	})
	// Its image does not show the other registration yet: it waits for
	// it, a while.
	if err := fresh.duplicate(dup, nil); err != nil {
		t.Fatalf("a fresh data dir, the other registration not in the image: %v, want a retry", err)
	}
	if err := fresh.duplicate(dup, other); !errors.Is(err, ErrNodeIDTaken) || !strings.Contains(err.Error(), "broker-2:9092") {
		t.Fatalf("a fresh data dir: %v, want ErrNodeIDTaken at once", err)
	}
	now = now.Add(imageWait)
	if err := fresh.duplicate(dup, nil); !errors.Is(err, ErrNodeIDTaken) {
		t.Fatalf("a fresh data dir, no registration in the image after %v: %v, want ErrNodeIDTaken", imageWait, err)
	}
}

// selfLeader is a quorum led by one node.
type selfLeader int32

func (s selfLeader) Leader() int32 { return int32(s) }
func (s selfLeader) State() controller.QuorumState {
	return controller.QuorumState{LeaderID: int32(s)}
}

// TestHeartbeatsWhileOnReadyRuns: OnReady (log recovery: tens of seconds
// after a crash with many partitions) runs beside the heartbeats, so a
// node that is its own active controller does not outlive its broker
// session while it recovers and fence itself, taking every partition
// offline, the moment recovery ends.
func TestHeartbeatsWhileOnReadyRuns(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ml, err := controller.OpenLocalLog(filepath.Join(t.TempDir(), "__cluster_metadata-0"), logger)
	if err != nil {
		t.Fatal(err)
	}
	images := loader.New(loader.Options{Logger: logger})
	const session = 9 * time.Second
	ctrl, err := controller.New(ml, images, controller.Options{NodeID: 1, Logger: logger, BrokerSessionTimeout: session, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.EnsureClusterID("c"); err != nil {
		t.Fatal(err)
	}
	rpc := kclient.New(time.Second)
	defer rpc.Close()
	l := New(Config{NodeID: 1, Local: ctrl, Quorum: selfLeader(1), Images: images, Client: rpc, Logger: logger})
	var heartbeats atomic.Int64
	recovering, release := make(chan struct{}), make(chan struct{})
	lc := NewLifecycle(l, LifecycleConfig{
		ClusterID:      "c",
		Broker:         true,
		Registration:   controller.BrokerRegistration{NodeID: 1, Host: "localhost", Port: 9092, Incarnation: metadata.UUID{1}},
		Every:          5 * time.Millisecond,
		Logger:         logger,
		Now:            now,
		OfflineLogDirs: func() []metadata.UUID { heartbeats.Add(1); return nil },
		OnReady:        func() { close(recovering); <-release },
	})
	waited := make(chan error, 1)
	go func() { waited <- lc.WaitReady(10 * time.Second) }()
	select {
	case <-recovering:
	case err := <-waited:
		t.Fatalf("WaitReady returned %v before OnReady ran", err)
	case <-time.After(10 * time.Second):
		t.Fatal("OnReady never ran")
	}
	// Three sessions' worth of time passes while OnReady runs; the
	// heartbeats go on.
	for range 3 * session / time.Second {
		clock.Add(int64(time.Second))
		seen := heartbeats.Load()
		deadline := time.Now().Add(10 * time.Second)
		for heartbeats.Load() < seen+2 {
			if time.Now().After(deadline) {
				t.Fatalf("no heartbeat for 10 s while OnReady ran (%d heartbeats in all)", heartbeats.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if _, err := lc.step(); err != nil { // fences expired sessions first
		t.Fatal(err)
	}
	if b := images.Image().Brokers[1]; b == nil || b.Fenced || b.Epoch != 0 {
		t.Fatalf("after %v of OnReady: registration %+v, want epoch 0 unfenced", 3*session, b)
	}
}
