package brokerlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

// LifecycleConfig configures a Lifecycle.
type LifecycleConfig struct {
	ClusterID string
	// Broker is whether this node is a broker (process.roles); a
	// controller-only node registers no broker.
	Broker bool
	// Registration is this broker's registration.
	Registration controller.BrokerRegistration
	// Every is the heartbeat interval (broker.heartbeat.interval.ms).
	Every time.Duration
	// RebalanceEvery is leader.imbalance.check.interval.seconds (0: never).
	RebalanceEvery time.Duration
	// Legacy, if set, is a pre-quorum metadata log's content for the first
	// active controller to import; FinishImport marks it imported.
	Legacy       []metadata.Record
	FinishImport func() error
	// OnReady runs once, when this broker's registration has reached its
	// image (the image has caught up at least that far), before the
	// broker counts as ready.
	OnReady func()
	Logger  *slog.Logger

	// Fresh says the data dir was formatted by this start (or by one that
	// never registered): a node id the cluster already knows is then
	// another node's (a copied configuration) or a node whose data is
	// lost, and the broker refuses to serve (ErrNodeIDTaken).
	// MarkRegistered runs after the first registration of a fresh dir;
	// FreshHint says how to start it on purpose anyway.
	Fresh          bool
	MarkRegistered func() error
	FreshHint      string
	// DuplicateGrace is how long registration answers
	// DUPLICATE_BROKER_REGISTRATION before the broker gives up
	// (ErrNodeIDTaken): the live registration may be this node's own
	// previous process, killed less than a session timeout ago. Zero
	// gives up at the first answer.
	DuplicateGrace time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// OfflineLogDirs, if set, returns the ids of this broker's log
	// directories that failed (replication.LogDir); every heartbeat
	// names them, and the active controller moves leadership off their
	// replicas (KIP-858; controller/logdirs.go).
	OfflineLogDirs func() []metadata.UUID
}

// ErrNodeIDTaken is the fatal error of a broker whose node id belongs to
// another broker: Run and WaitReady return it, and the node must stop.
var ErrNodeIDTaken = errors.New("node id taken")

// Lifecycle keeps this broker registered with the active controller and
// heartbeating, as a KRaft broker does (BrokerLifecycleManager); on the
// active controller it also formats a new cluster (its id), imports a
// pre-quorum metadata log, publishes its endpoint for brokers, fences
// brokers whose heartbeats stopped, completes reassignments and moves
// leadership back to preferred replicas every RebalanceEvery
// (auto.leader.rebalance.enable decides in the controller).
type Lifecycle struct {
	l   *Link
	cfg LifecycleConfig
	log *slog.Logger

	legacy []metadata.Record

	// ready is closed once this node's image holds its registration
	// and OnReady has returned; readying says OnReady has started.
	ready     chan struct{}
	readyOnce sync.Once
	readying  bool

	lastErr   string
	lastErrAt time.Time

	lastRebalance time.Time
	// kick wakes Run for a heartbeat now (Kick).
	kick chan struct{}
	// dupSince is when registration first answered
	// DUPLICATE_BROKER_REGISTRATION in a row (zero: it did not).
	dupSince time.Time
}

// NewLifecycle returns the lifecycle of l's broker; Run (or WaitReady)
// drives it.
func NewLifecycle(l *Link, cfg LifecycleConfig) *Lifecycle {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Lifecycle{l: l, cfg: cfg, log: cfg.Logger, legacy: cfg.Legacy, ready: make(chan struct{}), lastRebalance: time.Now(), kick: make(chan struct{}, 1)}
}

func (lc *Lifecycle) now() time.Time {
	if lc.cfg.Now != nil {
		return lc.cfg.Now()
	}
	return time.Now()
}

// step does one round and returns how long to wait before the next, or a
// fatal error (ErrNodeIDTaken).
func (lc *Lifecycle) step() (time.Duration, error) {
	l := lc.l
	retry := min(lc.cfg.Every, 200*time.Millisecond)
	if l.IsActive() {
		c := l.cfg.Local
		if lc.legacy != nil {
			if err := c.Import(lc.legacy); err != nil {
				lc.warn("import the pre-quorum metadata log", err)
				return retry, nil
			}
			if lc.cfg.FinishImport != nil {
				if err := lc.cfg.FinishImport(); err != nil {
					lc.warn("mark the pre-quorum metadata log imported", err)
				}
			}
			lc.log.Info("imported the pre-quorum metadata log", "records", len(lc.legacy))
			lc.legacy = nil
		}
		if err := c.EnsureClusterID(lc.cfg.ClusterID); err != nil {
			lc.warn("format the metadata log", err)
			return retry, nil
		}
		reg := lc.cfg.Registration
		if err := c.RegisterSelf(reg.Host, reg.Port); err != nil {
			lc.warn("publish the controller endpoint", err)
		}
		if _, err := c.FenceExpired(); err != nil {
			lc.warn("fence brokers", err)
		}
		if err := c.CompleteReassignments(); err != nil {
			lc.warn("complete partition reassignments", err)
		}
		if now := time.Now(); lc.cfg.RebalanceEvery > 0 && now.Sub(lc.lastRebalance) >= lc.cfg.RebalanceEvery {
			lc.lastRebalance = now
			if err := c.RebalanceLeaders(); err != nil {
				lc.warn("move leadership back to preferred replicas", err)
			}
		}
	}
	if l.Image().ClusterID == "" {
		return retry, nil // no active controller has formatted the log yet
	}
	if !lc.cfg.Broker {
		return lc.cfg.Every, nil // a controller only: no broker to register
	}
	epoch := l.Epoch()
	if epoch < 0 {
		e, err := l.register(lc.cfg.Registration, lc.cfg.ClusterID)
		if err != nil {
			if fatal := lc.duplicate(err, l.Image().Brokers[lc.cfg.Registration.NodeID]); fatal != nil {
				return 0, fatal
			}
			what := "register with the controller"
			if errors.Is(err, controller.ErrDuplicateRegistration) {
				what = "register with the controller: this node id has a live registration, this node's previous process if it stopped less than broker.session.timeout.ms ago; retrying until the session has expired"
			}
			lc.warn(what, err)
			return retry, nil
		}
		lc.dupSince = time.Time{}
		if lc.cfg.Fresh {
			if e > 0 {
				// Epochs count a node id's registrations from 0.
				return 0, fmt.Errorf("%w: node id %d is already known to the cluster (this is its registration number %d), but this data dir is new (formatted by a start that never registered); refusing to serve it empty: is this a copy of another node's configuration? Give this node a node.id of its own. %s",
					ErrNodeIDTaken, lc.cfg.Registration.NodeID, e+1, lc.cfg.FreshHint)
			}
			if lc.cfg.MarkRegistered != nil {
				if err := lc.cfg.MarkRegistered(); err != nil {
					lc.warn("record the first registration in the data dir", err)
				}
			}
			lc.cfg.Fresh = false
		}
		lc.log.Info("registered with the controller", "epoch", e, "controller", l.ControllerID())
		l.epoch.Store(e)
		epoch = e
	} else if _, err := l.heartbeat(epoch, lc.offlineLogDirs()); err != nil {
		if NeedsRegistration(err) {
			lc.log.Warn("registering again", "reason", err)
			l.epoch.Store(-1)
			return retry, nil
		}
		lc.warn("heartbeat", err)
		return retry, nil
	}
	if b := l.Image().Brokers[lc.cfg.Registration.NodeID]; b == nil || b.Epoch != epoch {
		return retry, nil // the registration has not reached this node's image yet
	}
	lc.readyOnce.Do(func() {
		// OnReady (the partitions follow the image) before ready opens
		// the broker to clients. It may take as long as log recovery
		// after a crash (tens of seconds with 10,000 partitions), so
		// it runs beside the heartbeats: blocking them would let this
		// broker's session expire, and the active controller (this
		// very node, when it is alone) fence it and take every
		// partition offline the moment recovery ends.
		lc.readying = true
		go func() {
			if lc.cfg.OnReady != nil {
				lc.cfg.OnReady()
			}
			close(lc.ready)
		}()
	})
	return lc.cfg.Every, nil
}

func (lc *Lifecycle) offlineLogDirs() []metadata.UUID {
	if lc.cfg.OfflineLogDirs == nil {
		return nil
	}
	return lc.cfg.OfflineLogDirs()
}

// duplicate returns ErrNodeIDTaken when err says another live broker holds
// this node id and the grace has passed (a fresh data dir has none: its
// node never registered, so the live registration is not its own). other
// is the registration in this node's image: the error names its address,
// so it waits up to imageWait more for the image to have it
// (BrokerRegistrationResponse carries no message).
func (lc *Lifecycle) duplicate(err error, other *metadata.Broker) error {
	if !errors.Is(err, controller.ErrDuplicateRegistration) {
		lc.dupSince = time.Time{}
		return nil
	}
	now := lc.now()
	if lc.dupSince.IsZero() {
		lc.dupSince = now
	}
	grace := lc.cfg.DuplicateGrace
	if lc.cfg.Fresh {
		grace = 0
	}
	waited := now.Sub(lc.dupSince)
	if waited < grace || (other == nil && waited < grace+imageWait) {
		return nil
	}
	where := "at an address this node's metadata does not show yet"
	if other != nil {
		where = fmt.Sprintf("at %s (registration epoch %d)", net.JoinHostPort(other.Host, strconv.Itoa(int(other.Port))), other.Epoch)
	}
	return fmt.Errorf("%w: node id %d is registered by another live broker %s; refusing to start: give this node a node.id of its own, or stop the other process first (the controller answered: %v)",
		ErrNodeIDTaken, lc.cfg.Registration.NodeID, where, err)
}

// imageWait bounds the wait for this node's image to show the other
// registration of its node id.
const imageWait = 5 * time.Second

// warn logs a failure, at most once every 5 s for the same text.
func (lc *Lifecycle) warn(what string, err error) {
	msg := what + ": " + err.Error()
	if msg == lc.lastErr && time.Since(lc.lastErrAt) < 5*time.Second {
		return
	}
	lc.lastErr, lc.lastErrAt = msg, time.Now()
	level := slog.LevelWarn
	if errors.Is(err, controller.ErrNotController) {
		level = slog.LevelInfo // an election, or the controller not registered yet
	}
	lc.log.Log(context.Background(), level, what, "err", err)
}

// Run steps until ctx ends (nil) or a step fails for good
// (ErrNodeIDTaken).
func (lc *Lifecycle) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-lc.kick:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		d, err := lc.step()
		if err != nil {
			return err
		}
		t.Reset(d)
	}
}

// Kick makes Run step (heartbeat) now rather than at the next interval: a
// log directory went offline. It never blocks.
func (lc *Lifecycle) Kick() {
	select {
	case lc.kick <- struct{}{}:
	default:
	}
}

// IsReady reports whether this broker's registration has reached its
// image (it has caught up with the metadata log that far).
func (lc *Lifecycle) IsReady() bool {
	select {
	case <-lc.ready:
		return true
	default:
		return false
	}
}

// WaitReady steps in the caller's goroutine until this broker is
// registered and its image has caught up that far, or the timeout passes
// (a node that is its own quorum, before it serves). The timeout bounds
// the registration; once OnReady runs, it waits for OnReady (bounded by
// itself), heartbeating meanwhile.
func (lc *Lifecycle) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d, err := lc.step()
		if err != nil {
			return err
		}
		if lc.readying {
			t := time.NewTimer(max(d, time.Millisecond))
			select {
			case <-lc.ready:
				t.Stop()
				return nil
			case <-t.C:
			}
			continue
		}
		if time.Now().After(deadline) {
			if lc.lastErr != "" {
				return fmt.Errorf("timed out after %v registering the broker with the controller; last failure: %s", timeout, lc.lastErr)
			}
			return fmt.Errorf("timed out after %v registering the broker with the controller", timeout)
		}
		time.Sleep(min(max(d, time.Millisecond), 10*time.Millisecond))
	}
}
