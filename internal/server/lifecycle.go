package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

// lifecycle keeps this broker registered with the active controller and
// heartbeating, as a KRaft broker does; on the active controller it also
// formats a new cluster (its id), imports a pre-quorum metadata log,
// publishes its endpoint for brokers, fences brokers whose heartbeats
// stopped, and moves leadership back to preferred replicas every
// rebalanceEvery (auto.leader.rebalance.enable decides in the controller).
type lifecycle struct {
	cc        *clusterController
	log       *slog.Logger
	clusterID string
	roles     roles
	reg       controller.BrokerRegistration
	every     time.Duration // heartbeat interval
	dataDir   string

	epoch  atomic.Int64 // this broker's registration epoch, -1 until registered
	legacy []metadata.Record

	// ready is closed once this node's image holds its registration:
	// the image has caught up with the metadata log at least that far.
	ready     chan struct{}
	readyOnce sync.Once
	onReady   func()

	lastErr   string
	lastErrAt time.Time

	// rebalanceEvery is leader.imbalance.check.interval.seconds (0: never).
	rebalanceEvery time.Duration
	lastRebalance  time.Time
}

func newLifecycle(cc *clusterController, log *slog.Logger, clusterID string, r roles, reg controller.BrokerRegistration, every time.Duration, dataDir string, legacy []metadata.Record, onReady func()) *lifecycle {
	l := &lifecycle{cc: cc, log: log, clusterID: clusterID, roles: r, reg: reg, every: every, dataDir: dataDir, legacy: legacy,
		ready: make(chan struct{}), onReady: onReady}
	l.epoch.Store(-1)
	l.lastRebalance = time.Now()
	return l
}

// step does one round and returns how long to wait before the next.
func (l *lifecycle) step() time.Duration {
	c := l.cc.Controller
	retry := min(l.every, 200*time.Millisecond)
	if c.IsActive() {
		if l.legacy != nil {
			if err := c.Import(l.legacy); err != nil {
				l.warn("import the pre-quorum metadata log", err)
				return retry
			}
			if err := finishLegacyImport(l.dataDir); err != nil {
				l.warn("mark the pre-quorum metadata log imported", err)
			}
			l.log.Info("imported the pre-quorum metadata log", "records", len(l.legacy))
			l.legacy = nil
		}
		if err := c.EnsureClusterID(l.clusterID); err != nil {
			l.warn("format the metadata log", err)
			return retry
		}
		if err := c.RegisterSelf(l.reg.Host, l.reg.Port); err != nil {
			l.warn("publish the controller endpoint", err)
		}
		if _, err := c.FenceExpired(); err != nil {
			l.warn("fence brokers", err)
		}
		if err := c.CompleteReassignments(); err != nil {
			l.warn("complete partition reassignments", err)
		}
		if now := time.Now(); l.rebalanceEvery > 0 && now.Sub(l.lastRebalance) >= l.rebalanceEvery {
			l.lastRebalance = now
			if err := c.RebalanceLeaders(); err != nil {
				l.warn("move leadership back to preferred replicas", err)
			}
		}
	}
	if c.Image().ClusterID == "" {
		return retry // no active controller has formatted the log yet
	}
	if !l.roles.broker {
		return l.every // a controller only: no broker to register
	}
	epoch := l.epoch.Load()
	if epoch < 0 {
		e, err := l.cc.register(l.reg, l.clusterID)
		if err != nil {
			l.warn("register with the controller", err)
			return retry
		}
		l.log.Info("registered with the controller", "epoch", e, "controller", c.ControllerID())
		l.epoch.Store(e)
		epoch = e
	} else if _, err := l.cc.heartbeat(epoch); err != nil {
		if needsRegistration(err) {
			l.log.Warn("registering again", "reason", err)
			l.epoch.Store(-1)
			return retry
		}
		l.warn("heartbeat", err)
		return retry
	}
	if b := c.Image().Brokers[l.reg.NodeID]; b != nil && b.Epoch == epoch {
		l.readyOnce.Do(func() {
			// onReady (the partitions follow the image) before ready
			// opens the broker to clients.
			if l.onReady != nil {
				l.onReady()
			}
			close(l.ready)
		})
	} else {
		return retry // the registration has not reached this node's image yet
	}
	return l.every
}

// warn logs a failure, at most once a second for the same text.
func (l *lifecycle) warn(what string, err error) {
	msg := what + ": " + err.Error()
	if msg == l.lastErr && time.Since(l.lastErrAt) < 5*time.Second {
		return
	}
	l.lastErr, l.lastErrAt = msg, time.Now()
	level := slog.LevelWarn
	if errors.Is(err, controller.ErrNotController) {
		level = slog.LevelInfo // an election, or the controller not registered yet
	}
	l.log.Log(context.Background(), level, what, "err", err)
}

// run steps until ctx ends.
func (l *lifecycle) run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(l.step())
	}
}

// isReady reports whether this broker's registration has reached its image
// (it has caught up with the metadata log that far).
func (l *lifecycle) isReady() bool {
	select {
	case <-l.ready:
		return true
	default:
		return false
	}
}

// waitReady steps in the caller's goroutine until this broker is
// registered and its image has caught up that far, or the timeout passes.
func (l *lifecycle) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d := l.step()
		select {
		case <-l.ready:
			return nil
		default:
		}
		if time.Now().After(deadline) {
			if l.lastErr != "" {
				return fmt.Errorf("timed out after %v registering the broker with the controller; last failure: %s", timeout, l.lastErr)
			}
			return fmt.Errorf("timed out after %v registering the broker with the controller", timeout)
		}
		time.Sleep(min(max(d, time.Millisecond), 10*time.Millisecond))
	}
}

// offsetsTopic is the request that creates __consumer_offsets.
func offsetsTopic(partitions int32, segmentBytes string) controller.CreateTopic {
	return controller.CreateTopic{
		Name:              broker.OffsetsTopic,
		Partitions:        partitions,
		ReplicationFactor: -1,
		Configs: map[string]*string{
			"cleanup.policy":   strPtr("compact"),
			"segment.bytes":    strPtr(segmentBytes),
			"compression.type": strPtr("producer"),
		},
		Internal: true,
	}
}
