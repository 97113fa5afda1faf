package controller

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/stratalog/strata/internal/metadata"
)

// Broker liveness, as KRaft does it: a broker registers with the active
// controller (a new broker epoch each time its process starts), then
// heartbeats. The active controller fences a broker whose heartbeats stop
// for the session timeout: it leads nothing while fenced, it leaves the
// ISR of its partitions, and the partitions it led get another in-sync
// replica as leader, or none (leader -1, reported as
// LEADER_NOT_AVAILABLE) when it was their last (election.go). A
// heartbeat or a new registration unfences it and gives back the
// leadership of partitions left without a leader. Heartbeat times live in
// memory on the active controller only; a new active controller starts
// every broker's clock afresh.

// Errors of registration and heartbeats.
var (
	ErrStaleBrokerEpoch      = errors.New("stale broker epoch")
	ErrBrokerNotRegistered   = errors.New("broker not registered")
	ErrDuplicateRegistration = errors.New("another live broker is registered with this node id")
)

// DefaultBrokerSessionTimeout is Kafka's broker.session.timeout.ms.
const DefaultBrokerSessionTimeout = 9 * time.Second

// BrokerRegistration is what a starting broker sends.
type BrokerRegistration struct {
	NodeID      int32
	Incarnation metadata.UUID // fresh per process start
	Host        string
	Port        int32
	// Listeners are every client listener (Host:Port is the inter-broker
	// one).
	Listeners []metadata.ListenerEndpoint
	Rack      *string
	// PreviousBrokerEpoch is the epoch this broker had when it last shut
	// down cleanly (BrokerRegistration v3+), -1 after an unclean shutdown
	// or when unknown. A new process (incarnation) registering with
	// another epoch than the registered one is taken to have shut down
	// uncleanly (KIP-966): see uncleanRestart.
	PreviousBrokerEpoch int64
	// LogDirs are the ids of the broker's log directories
	// (BrokerRegistration v2+ LogDirs, KIP-858; logdirs.go).
	LogDirs []metadata.UUID
}

// liveness is the active controller's view of one broker.
type liveness struct {
	incarnation metadata.UUID
	lastSeen    time.Time
	// heard is set once the broker registered or heartbeated with this
	// controller; before that lastSeen is only the start of its grace.
	heard bool
}

func (c *Controller) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

// resetLivenessIfNewTerm starts every broker's session afresh when this
// node has become the active controller since the last call. c.mu held.
func (c *Controller) resetLivenessIfNewTerm() {
	active := c.IsActive()
	if active && !c.wasActive {
		c.live = map[int32]*liveness{}
	}
	c.wasActive = active
}

// RegisterBroker registers (or re-registers) a broker and returns its
// epoch. A retry from the same incarnation gets the same epoch. On a
// non-active controller it fails with ErrNotController.
func (c *Controller) RegisterBroker(r BrokerRegistration) (int64, error) {
	if r.NodeID < 0 || r.Host == "" || r.Port <= 0 || r.Port > 65535 {
		return -1, fmt.Errorf("%w: broker registration for node %d at %s:%d", ErrInvalidRequest, r.NodeID, r.Host, r.Port)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return -1, ErrNotController
	}
	c.resetLivenessIfNewTerm()
	now := c.now()
	img := c.images.Image()
	b := img.Brokers[r.NodeID]
	l := c.live[r.NodeID]
	if b != nil && b.Incarnation == r.Incarnation && b.Host == r.Host && b.Port == r.Port && slices.Equal(b.Listeners, r.Listeners) && sameRack(b.Rack, r.Rack) && slices.Equal(b.LogDirs, r.LogDirs) && !b.Fenced {
		c.live[r.NodeID] = &liveness{incarnation: r.Incarnation, lastSeen: now, heard: true}
		return b.Epoch, nil // a retry of the registration in force
	}
	if b != nil && l != nil && l.heard && l.incarnation != r.Incarnation && !b.Fenced && now.Sub(l.lastSeen) < c.sessionTimeout() {
		return -1, fmt.Errorf("%w: node %d (registered from %s:%d, last heartbeat %s ago)",
			ErrDuplicateRegistration, r.NodeID, b.Host, b.Port, now.Sub(l.lastSeen).Round(time.Millisecond))
	}
	var epoch int64
	if b != nil {
		epoch = b.Epoch + 1
	}
	recs := []metadata.Record{&metadata.RegisterBrokerRecord{NodeID: r.NodeID, Epoch: epoch, Host: r.Host, Port: r.Port, Rack: r.Rack, Incarnation: r.Incarnation, Listeners: r.Listeners, LogDirs: r.LogDirs}}
	// The same process registering again (its session expired) lost
	// nothing; a new one that does not name the registered epoch as its
	// last clean shutdown may have.
	unclean := b != nil && r.Incarnation != b.Incarnation && r.PreviousBrokerEpoch != b.Epoch
	if unclean {
		recs = append(recs, c.uncleanRestart(img, r.NodeID)...)
	}
	// Leaders are elected on the image after those changes.
	after, err := img.Apply(img.Offset, recs)
	if err != nil {
		return -1, err
	}
	recs = append(recs, c.leadersGained(after, r.NodeID)...)
	if _, err := c.commit(recs); err != nil {
		return -1, err
	}
	c.live[r.NodeID] = &liveness{incarnation: r.Incarnation, lastSeen: now, heard: true}
	c.opts.Logger.Info("broker registered", "node", r.NodeID, "epoch", epoch, "host", r.Host, "port", r.Port, "unclean_shutdown", unclean)
	return epoch, nil
}

// BrokerHeartbeat records a heartbeat and unfences the broker if it was
// fenced. offlineLogDirs are the broker's log directories that failed
// (BrokerHeartbeat OfflineLogDirs): a change in them moves leadership and
// ISR membership (logdirs.go). It returns whether the broker is fenced
// after the heartbeat.
func (c *Controller) BrokerHeartbeat(node int32, epoch int64, offlineLogDirs []metadata.UUID) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return false, ErrNotController
	}
	c.resetLivenessIfNewTerm()
	img := c.images.Image()
	b := img.Brokers[node]
	switch {
	case b == nil:
		return false, fmt.Errorf("%w: node %d", ErrBrokerNotRegistered, node)
	case b.Epoch != epoch:
		return false, fmt.Errorf("%w: node %d heartbeat with epoch %d, registered with %d", ErrStaleBrokerEpoch, node, epoch, b.Epoch)
	}
	now := c.now()
	if l := c.live[node]; l != nil {
		l.lastSeen, l.heard = now, true
	} else {
		c.live[node] = &liveness{incarnation: b.Incarnation, lastSeen: now, heard: true}
	}
	recs, img, err := c.logDirChanges(img, b, offlineLogDirs)
	if err != nil {
		return b.Fenced, err
	}
	if !b.Fenced {
		if len(recs) > 0 {
			if _, err := c.commit(recs); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	recs = append(recs, &metadata.FenceBrokerRecord{NodeID: node, Epoch: epoch, Fenced: false})
	recs = append(recs, c.leadersGained(img, node)...)
	if _, err := c.commit(recs); err != nil {
		return true, err
	}
	c.opts.Logger.Info("broker unfenced", "node", node, "epoch", epoch)
	return false, nil
}

// RegisterSelf records this node's endpoint for broker-to-controller
// requests, if the image does not have it yet. Only the active controller
// writes it (brokers need the active one's only).
func (c *Controller) RegisterSelf(host string, port int32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return ErrNotController
	}
	want := metadata.Endpoint{Host: host, Port: port}
	if e, ok := c.images.Image().Controllers[c.opts.NodeID]; ok && e == want {
		return nil
	}
	_, err := c.commit([]metadata.Record{&metadata.RegisterControllerRecord{NodeID: c.opts.NodeID, Host: host, Port: port}})
	return err
}

// ActiveEndpoint is where the active controller takes broker-to-controller
// requests: its controller endpoint, or, for a combined node that has not
// written one, its broker listener.
func (c *Controller) ActiveEndpoint() (metadata.Endpoint, error) {
	id := c.ControllerID()
	if id < 0 {
		return metadata.Endpoint{}, fmt.Errorf("%w: no active controller is known (the metadata quorum has no leader)", ErrNotController)
	}
	img := c.images.Image()
	if e, ok := img.Controllers[id]; ok {
		return e, nil
	}
	if b := img.Brokers[id]; b != nil {
		return metadata.Endpoint{Host: b.Host, Port: b.Port}, nil
	}
	return metadata.Endpoint{}, fmt.Errorf("%w: the active controller (node %d) has not published its endpoint yet", ErrNotController, id)
}

// BrokerShutdown fences a broker that is shutting down cleanly (its last
// heartbeat asks for it, as Kafka's controlled shutdown): its partitions
// move now rather than after the session timeout, and a restarted process
// may register at once.
func (c *Controller) BrokerShutdown(node int32, epoch int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		return ErrNotController
	}
	img := c.images.Image()
	b := img.Brokers[node]
	switch {
	case b == nil:
		return fmt.Errorf("%w: node %d", ErrBrokerNotRegistered, node)
	case b.Epoch != epoch:
		return fmt.Errorf("%w: node %d shutting down with epoch %d, registered with %d", ErrStaleBrokerEpoch, node, epoch, b.Epoch)
	}
	delete(c.live, node)
	if b.Fenced {
		return nil
	}
	recs := append([]metadata.Record{&metadata.FenceBrokerRecord{NodeID: node, Epoch: epoch, Fenced: true}}, c.brokersLeaving(img, []int32{node})...)
	if _, err := c.commit(recs); err != nil {
		return err
	}
	c.opts.Logger.Info("broker shut down; fenced", "node", node, "epoch", epoch)
	return nil
}

// FenceExpired fences every unfenced broker whose last heartbeat is older
// than the session timeout and moves its leaderships. Only the active
// controller does anything; the server calls it periodically. It returns
// the nodes fenced.
func (c *Controller) FenceExpired() ([]int32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.IsActive() {
		c.wasActive = false
		return nil, nil
	}
	c.resetLivenessIfNewTerm()
	now := c.now()
	img := c.images.Image()
	var fenced []int32
	var recs []metadata.Record
	for _, id := range sortedBrokers(img) {
		b := img.Brokers[id]
		if b.Fenced {
			continue
		}
		l := c.live[id]
		if l == nil {
			// First sight since this controller became active: its
			// session starts now.
			c.live[id] = &liveness{incarnation: b.Incarnation, lastSeen: now}
			continue
		}
		if now.Sub(l.lastSeen) < c.sessionTimeout() {
			continue
		}
		fenced = append(fenced, id)
		recs = append(recs, &metadata.FenceBrokerRecord{NodeID: id, Epoch: b.Epoch, Fenced: true})
	}
	if len(recs) == 0 {
		return nil, nil
	}
	recs = append(recs, c.brokersLeaving(img, fenced)...)
	if _, err := c.commit(recs); err != nil {
		return nil, err
	}
	c.opts.Logger.Warn("fenced brokers that stopped heartbeating", "nodes", fenced, "session_timeout", c.sessionTimeout())
	return fenced, nil
}

func (c *Controller) sessionTimeout() time.Duration {
	if c.opts.BrokerSessionTimeout > 0 {
		return c.opts.BrokerSessionTimeout
	}
	return DefaultBrokerSessionTimeout
}

// forEachPartition visits every partition in a stable order.
func forEachPartition(img *metadata.Image, fn func(t *metadata.Topic, i int, p *metadata.Partition)) {
	for _, name := range img.SortedTopicNames() {
		t := img.Topics[name]
		for i, p := range t.Partitions {
			fn(t, i, p)
		}
	}
}

// usable reports whether a broker is registered and unfenced.
func usable(img *metadata.Image, id int32) bool {
	b := img.Brokers[id]
	return b != nil && !b.Fenced
}

// placementBrokers lists the brokers new partitions may be placed on: the
// unfenced ones with a log directory online (logdirs.go), by id; when
// racks are known, alternating between racks (rack by rack, round robin)
// so that consecutive replicas of a partition land on different racks
// where possible, as Kafka's rack-aware placement.
func placementBrokers(img *metadata.Image) []int32 {
	var ids []int32
	racks := map[string][]int32{}
	for _, id := range sortedBrokers(img) {
		b := img.Brokers[id]
		if b.Fenced || b.AllDirsOffline() {
			continue
		}
		ids = append(ids, id)
		if b.Rack != nil {
			racks[*b.Rack] = append(racks[*b.Rack], id)
		}
	}
	if len(racks) < 2 {
		return ids
	}
	names := make([]string, 0, len(racks))
	for r := range racks {
		names = append(names, r)
	}
	sort.Strings(names)
	var noRack []int32
	for _, id := range ids {
		if img.Brokers[id].Rack == nil {
			noRack = append(noRack, id)
		}
	}
	out := make([]int32, 0, len(ids))
	for i := 0; len(out) < len(ids)-len(noRack); i++ {
		for _, r := range names {
			if i < len(racks[r]) {
				out = append(out, racks[r][i])
			}
		}
	}
	return append(out, noRack...)
}

// firstUsable is the first replica that is unfenced and has a log
// directory online, or -1.
func firstUsable(img *metadata.Image, replicas []int32) int32 {
	for _, r := range replicas {
		if usable(img, r) && !img.Brokers[r].AllDirsOffline() {
			return r
		}
	}
	return -1
}
