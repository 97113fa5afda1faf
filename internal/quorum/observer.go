package quorum

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// ObserverConfig configures an Observer.
type ObserverConfig struct {
	// ID is the observer's id: non-zero and no voter's.
	ID uint64
	// Voters maps every voter's id to the host:port of its controller
	// listener (a Node's Config.Peers).
	Voters map[uint64]string
	// ClusterID must be the voters'; voters of another cluster refuse the
	// observer.
	ClusterID string
	Logger    *slog.Logger
	// StateMachine receives the committed entries, exactly as a voter's
	// does: Restore for a snapshot, then Apply for each entry in index
	// order. Snapshot is never called.
	StateMachine StateMachine
	// MaxBytes is how much entry data one fetch returns at most (default
	// 1 MiB); at least one entry comes back whatever its size.
	MaxBytes int
	// MaxMessageBytes bounds one response on the wire (default 256 MiB);
	// like the voters' setting, it must exceed the largest snapshot.
	MaxMessageBytes int
	// DialTimeout bounds connecting to a voter (default 2s).
	// RequestTimeout bounds the handshake and each fetch, the voter's wait
	// for new entries included (default 5s); a voter that does not answer
	// in time is left for the next one.
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	// Dial connects to a voter (TLS, say); nil: plain TCP.
	Dial DialFunc
}

func (c *ObserverConfig) withDefaults() (ObserverConfig, error) {
	cfg := *c
	cfg.Voters = maps.Clone(c.Voters)
	if cfg.ID == 0 {
		return cfg, fmt.Errorf("quorum: observer id must be non-zero")
	}
	if len(cfg.Voters) == 0 {
		return cfg, fmt.Errorf("quorum: observer has no voters to follow")
	}
	if _, ok := cfg.Voters[cfg.ID]; ok {
		return cfg, fmt.Errorf("quorum: observer id %d is a voter's id", cfg.ID)
	}
	for id, addr := range cfg.Voters {
		if id == 0 {
			return cfg, fmt.Errorf("quorum: voter id 0 is invalid")
		}
		if addr == "" {
			return cfg, fmt.Errorf("quorum: voter %d has no address", id)
		}
	}
	if err := checkShared(cfg.ClusterID, cfg.StateMachine, &cfg.Logger); err != nil {
		return cfg, err
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	cfg.MaxBytes = min(cfg.MaxBytes, 1<<31)
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 256 << 20
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = dialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = handshakeTimeout
	}
	return cfg, nil
}

// observerPollWait is how long a voter may hold a fetch while it has
// nothing new (at most a quarter of the RequestTimeout).
const observerPollWait = 500 * time.Millisecond

// Observer follows the committed metadata log without voting, like KRaft's
// observers (broker-only nodes): it fetches from one voter at a time over
// the voters' controller listener and applies what is committed to its
// StateMachine. It keeps nothing on disk: each Start fetches from the
// beginning, or from the voter's latest snapshot once the log is compacted.
type Observer struct {
	cfg    ObserverConfig
	log    *slog.Logger
	voters []uint64 // sorted
	wait   time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	donec  chan struct{}

	lifeMu  sync.Mutex // serialises Start and Stop
	state   int
	stopErr error

	mu      sync.Mutex
	conn    net.Conn // the current connection; Stop closes it
	applied uint64
	commit  uint64
	leader  uint64
	voter   uint64
	lastErr error
	err     error         // why the observer stopped on its own
	changed chan struct{} // closed and replaced when applied or the state changes
	running bool          // from Start until Stop or a failure
	stopped bool

	// Owned by the run goroutine.
	failedAt   map[uint64]time.Time // when each voter last failed
	lastTried  uint64
	lastSwitch time.Time
	lastLogged map[uint64]string // each voter's last error logged at Warn
}

// ObserverStatus describes an Observer.
type ObserverStatus struct {
	ID uint64
	// Running is true from Start until Stop or a state machine failure.
	Running bool
	// Applied is the index the state machine is up to date with: the
	// last entry applied, snapshot restored or entry skipped (as on a
	// voter, conf changes and empty entries count).
	Applied uint64
	// Commit is the highest commit index a voter reported.
	Commit uint64
	// Leader is the leader named by the latest response, 0 if none.
	Leader uint64
	// Voter is the voter the observer is connected to, 0 if none.
	Voter uint64
	// LastError is the latest failure to reach or fetch from a voter; it
	// is cleared by the next successful fetch.
	LastError error
	// Err is why the observer stopped on its own: its state machine
	// failed to apply or restore.
	Err error
}

// NewObserver checks cfg and returns an Observer; nothing is dialed until
// Start.
func NewObserver(cfg ObserverConfig) (*Observer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Observer{
		cfg:        c,
		log:        c.Logger.With("component", "quorum-observer", "observer", c.ID),
		voters:     sortedIDs(c.Voters),
		wait:       min(observerPollWait, c.RequestTimeout/4),
		ctx:        ctx,
		cancel:     cancel,
		donec:      make(chan struct{}),
		changed:    make(chan struct{}),
		failedAt:   map[uint64]time.Time{},
		lastLogged: map[uint64]string{},
	}, nil
}

// Start starts following the voters.
func (o *Observer) Start() error {
	o.lifeMu.Lock()
	defer o.lifeMu.Unlock()
	if o.state != stateNew {
		return fmt.Errorf("quorum: Start on an observer that was already started")
	}
	o.state = stateRunning
	o.mu.Lock()
	o.running = true
	o.mu.Unlock()
	go o.run()
	o.log.Info("observer started", "voters", o.cfg.Voters, "cluster_id", o.cfg.ClusterID)
	return nil
}

// Stop stops the observer and waits for its goroutine. It is idempotent;
// it returns the state machine's error if that is what stopped the
// observer, nil otherwise.
func (o *Observer) Stop() error {
	o.lifeMu.Lock()
	defer o.lifeMu.Unlock()
	if o.state == stateStopped {
		return o.stopErr
	}
	o.cancel()
	o.mu.Lock()
	if o.conn != nil {
		o.conn.Close()
	}
	o.mu.Unlock()
	if o.state == stateRunning {
		<-o.donec
	}
	o.state = stateStopped
	o.mu.Lock()
	o.stopErr = o.err
	o.markStopped()
	o.mu.Unlock()
	o.log.Info("observer stopped")
	return o.stopErr
}

// ID returns the observer's id.
func (o *Observer) ID() uint64 { return o.cfg.ID }

// Leader returns the leader named by the latest response, 0 if none.
func (o *Observer) Leader() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.leader
}

// Status reports the observer's progress.
func (o *Observer) Status() ObserverStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	return ObserverStatus{
		ID:        o.cfg.ID,
		Running:   o.running,
		Applied:   o.applied,
		Commit:    o.commit,
		Leader:    o.leader,
		Voter:     o.voter,
		LastError: o.lastErr,
		Err:       o.err,
	}
}

// WaitApplied blocks until the state machine has applied index. It
// returns ctx's error if ctx ends first, and the observer's error (or
// ErrStopped) if the observer stops first.
func (o *Observer) WaitApplied(ctx context.Context, index uint64) error {
	for {
		o.mu.Lock()
		applied, stopped, err, ch := o.applied, o.stopped, o.err, o.changed
		o.mu.Unlock()
		switch {
		case applied >= index:
			return nil
		case err != nil:
			return err
		case stopped:
			return ErrStopped
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("quorum: observer applied %d, waiting for %d: %w", applied, index, ctx.Err())
		}
	}
}

// markStopped records that the observer no longer applies anything and
// wakes the waiters; o.mu is held.
func (o *Observer) markStopped() {
	o.running = false
	if !o.stopped {
		o.stopped = true
		o.voter = 0
		close(o.changed)
		o.changed = make(chan struct{})
	}
}

var (
	errSwitchVoter = errors.New("switching to the leader")
	errNoLeader    = errors.New("voter knows no leader")
)

// smError is a state machine failure: it stops the observer.
type smError struct{ err error }

func (e *smError) Error() string { return e.err.Error() }
func (e *smError) Unwrap() error { return e.err }

func (o *Observer) run() {
	defer close(o.donec)
	backoff := backoffMin
	for o.ctx.Err() == nil {
		id := o.pick()
		progressed, err := o.follow(id)
		o.mu.Lock()
		o.voter = 0
		o.mu.Unlock()
		if o.ctx.Err() != nil {
			return
		}
		if se, ok := errors.AsType[*smError](err); ok {
			o.log.Error("observer stopped: state machine failed", "error", se.err)
			o.mu.Lock()
			o.err = se.err
			o.markStopped()
			o.mu.Unlock()
			return
		}
		if errors.Is(err, errSwitchVoter) {
			o.log.Debug("switching to the leader", "from_voter", id, "leader", o.Leader())
			backoff = backoffMin
			continue
		}
		o.failedAt[id] = time.Now()
		o.noteError(id, err)
		if progressed {
			backoff = backoffMin
		}
		select {
		case <-o.ctx.Done():
			return
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// noteError records a failure with a voter: at Warn the first time the
// voter fails that way, at Debug while it keeps failing the same way.
func (o *Observer) noteError(id uint64, err error) {
	o.mu.Lock()
	o.lastErr = err
	o.mu.Unlock()
	if msg := err.Error(); o.lastLogged[id] != msg {
		o.lastLogged[id] = msg
		o.log.Warn("cannot follow voter", "voter", id, "addr", o.cfg.Voters[id], "error", err)
	} else {
		o.log.Debug("cannot follow voter", "voter", id, "addr", o.cfg.Voters[id], "error", err)
	}
}

// recentlyFailed reports whether voter id failed too recently to be
// preferred as the leader.
func (o *Observer) recentlyFailed(id uint64) bool {
	t, ok := o.failedAt[id]
	return ok && time.Since(t) < o.cfg.RequestTimeout
}

// pick chooses the voter to fetch from: the known leader unless it just
// failed, else the next voter after the last one tried.
func (o *Observer) pick() uint64 {
	lead := o.Leader()
	if _, ok := o.cfg.Voters[lead]; ok && !o.recentlyFailed(lead) {
		o.lastTried = lead
		return lead
	}
	i, _ := slices.BinarySearch(o.voters, o.lastTried+1)
	o.lastTried = o.voters[i%len(o.voters)]
	return o.lastTried
}

// follow fetches from voter id until something goes wrong, applying what
// it returns; progressed reports whether any fetch succeeded.
func (o *Observer) follow(id uint64) (progressed bool, err error) {
	addr := o.cfg.Voters[id]
	c, err := o.dial(id, addr)
	if err != nil {
		return false, err
	}
	defer func() {
		o.mu.Lock()
		o.conn = nil
		o.mu.Unlock()
		c.Close()
	}()
	o.log.Info("following voter", "voter", id, "addr", addr)
	br := bufio.NewReaderSize(c, 64<<10)
	var req []byte
	var noLeaderSince time.Time
	for {
		o.mu.Lock()
		from := o.applied + 1
		o.mu.Unlock()
		req = appendFetchRequest(req[:0], fetchRequest{from: from, maxBytes: uint32(o.cfg.MaxBytes), maxWait: o.wait})
		c.SetDeadline(time.Now().Add(o.cfg.RequestTimeout))
		if _, err := c.Write(req); err != nil {
			return progressed, fmt.Errorf("send fetch to voter %d: %w", id, err)
		}
		n, crc, err := readFrameHeader(br, o.cfg.MaxMessageBytes)
		if err != nil {
			return progressed, fmt.Errorf("read response from voter %d: %w", id, err)
		}
		// A large response (a snapshot) gets time to arrive, as voters
		// give each other.
		c.SetReadDeadline(time.Now().Add(o.cfg.RequestTimeout + time.Duration(n>>20)*100*time.Millisecond))
		body, err := readFrameBody(br, n, crc)
		if err != nil {
			return progressed, fmt.Errorf("read response from voter %d: %w", id, err)
		}
		resp, err := decodeFetchResponse(body)
		if err != nil {
			return progressed, fmt.Errorf("bad response from voter %d: %w", id, err)
		}
		if err := o.handle(id, from, &resp); err != nil {
			return progressed, err
		}
		progressed = true
		// Stay with a voter that knows the leader, but prefer the leader
		// itself (it is the first to know what is committed); leave a
		// voter that has known no leader for a while: it may be cut off
		// from the quorum.
		if lead := resp.leader; lead == 0 {
			if noLeaderSince.IsZero() {
				noLeaderSince = time.Now()
			} else if time.Since(noLeaderSince) > o.cfg.RequestTimeout {
				return progressed, fmt.Errorf("%w for %v: voter %d", errNoLeader, o.cfg.RequestTimeout, id)
			}
		} else {
			noLeaderSince = time.Time{}
			if _, ok := o.cfg.Voters[lead]; ok && lead != id && !o.recentlyFailed(lead) && time.Since(o.lastSwitch) > o.cfg.RequestTimeout {
				o.lastSwitch = time.Now()
				return progressed, errSwitchVoter
			}
		}
	}
}

// handle applies one response to a fetch from index from.
func (o *Observer) handle(id, from uint64, r *fetchResponse) error {
	sm := o.cfg.StateMachine
	applied := from - 1
	if r.snapshot {
		if r.snapIndex < from {
			return fmt.Errorf("bad response from voter %d: snapshot at %d for a fetch from %d", id, r.snapIndex, from)
		}
		// Index 1 is the bootstrap snapshot: voters only, no state. A
		// voter never restores it either.
		if r.snapIndex > 1 {
			if err := sm.Restore(r.snapData, r.snapIndex); err != nil {
				return &smError{fmt.Errorf("quorum: observer state machine failed to restore the snapshot at %d: %w", r.snapIndex, err)}
			}
			o.log.Info("installed snapshot from voter", "voter", id, "index", r.snapIndex, "term", r.snapTerm, "bytes", len(r.snapData))
		}
		applied = r.snapIndex
	} else {
		if r.next < from {
			return fmt.Errorf("bad response from voter %d: entries up to %d for a fetch from %d", id, r.next, from)
		}
		prev := from - 1
		for _, e := range r.entries {
			if e.index <= prev || e.index >= r.next {
				return fmt.Errorf("bad response from voter %d: entry %d out of order (after %d, before %d)", id, e.index, prev, r.next)
			}
			prev = e.index
		}
		for _, e := range r.entries {
			if err := sm.Apply(e.index, e.data); err != nil {
				o.setApplied(applied, r)
				return &smError{fmt.Errorf("quorum: observer state machine failed to apply entry %d: %w", e.index, err)}
			}
			applied = e.index
		}
		applied = r.next - 1
	}
	o.setApplied(applied, r)
	return nil
}

func (o *Observer) setApplied(applied uint64, r *fetchResponse) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.leader = r.leader
	o.commit = max(o.commit, r.commit)
	o.lastErr = nil
	if applied != o.applied {
		o.applied = applied
		close(o.changed)
		o.changed = make(chan struct{})
	}
}

// dial connects to voter id and runs the observer's handshake.
func (o *Observer) dial(id uint64, addr string) (net.Conn, error) {
	c, err := dialWith(o.ctx, o.cfg.Dial, addr, o.cfg.DialTimeout)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	if o.ctx.Err() != nil {
		o.mu.Unlock()
		c.Close()
		return nil, o.ctx.Err()
	}
	o.conn = c
	o.mu.Unlock()
	fail := func(err error) (net.Conn, error) {
		o.mu.Lock()
		o.conn = nil
		o.mu.Unlock()
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Now().Add(o.cfg.RequestTimeout))
	if _, err := c.Write(appendHello(nil, hello{observer: true, version: wireVersion1, from: o.cfg.ID, to: id, clusterID: o.cfg.ClusterID})); err != nil {
		return fail(fmt.Errorf("send handshake: %w", err))
	}
	a, err := readAnswer(c)
	switch {
	case err != nil:
		return fail(err)
	case a.status != hsOK:
		return fail(fmt.Errorf("voter refused the handshake: %s (it is node %d of cluster %q)", hsStatusText(a.status), a.id, a.clusterID))
	case a.clusterID != o.cfg.ClusterID:
		return fail(fmt.Errorf("%w: voter at %s is in cluster %q", ErrClusterIDMismatch, addr, a.clusterID))
	case a.id != id:
		return fail(fmt.Errorf("voter at %s is node %d, not node %d", addr, a.id, id))
	}
	o.mu.Lock()
	o.voter = id
	o.mu.Unlock()
	return c, nil
}
