package brokerlink

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
)

// Images is this node's committed metadata: the metadata loader.
type Images interface {
	Image() *metadata.Image
	// WaitFor waits until cond holds for the image or timeout passes.
	WaitFor(cond func(*metadata.Image) bool, timeout time.Duration) bool
}

// Quorum is the metadata quorum as this node sees it (a voter or an
// observer).
type Quorum interface {
	// Leader is the node id of the active controller, -1 if unknown.
	Leader() int32
	State() controller.QuorumState
}

// Config configures a Link.
type Config struct {
	NodeID int32
	// Local is this node's controller; nil on a broker-only node, which
	// never is the active controller.
	Local  *controller.Controller
	Quorum Quorum
	Images Images
	// Client sends requests to the active controller; the caller closes it.
	Client *kclient.Client
	Logger *slog.Logger
	// Settle, if set, waits (briefly) until this broker's partitions
	// follow the image up to offset: after a topic change it made, the
	// broker serves the new partitions before it answers.
	Settle func(offset int64)
	// Timeout bounds one request to the active controller (default 10 s).
	Timeout time.Duration
}

// Link is the controller as this node's broker sees it: the local
// controller when this node is the active one; otherwise the writes the
// broker itself needs go to the active controller over its Kafka
// listener, and client admin writes other than CreateTopics answer
// NOT_CONTROLLER so the client retries at the controller Metadata names
// (or are relayed whole by ForwardRequest).
type Link struct {
	cfg   Config
	log   *slog.Logger
	epoch atomic.Int64 // this broker's registration epoch, -1 until registered
}

var _ broker.Controller = (*Link)(nil)

// New returns a link.
func New(cfg Config) *Link {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Settle == nil {
		cfg.Settle = func(int64) {}
	}
	l := &Link{cfg: cfg, log: cfg.Logger}
	l.epoch.Store(-1)
	return l
}

// forwardClientID is the client id of client requests a broker forwards
// to the active controller; unlike broker.InterBrokerClientID it carries
// no privilege.
const forwardClientID = "strata-forwarded"

// Epoch is this broker's registration epoch, -1 until it is registered.
func (l *Link) Epoch() int64 { return l.epoch.Load() }

// Image returns this node's image.
func (l *Link) Image() *metadata.Image { return l.cfg.Images.Image() }

// ControllerID is the node id of the active controller, -1 if unknown.
func (l *Link) ControllerID() int32 { return l.cfg.Quorum.Leader() }

// QuorumState describes the metadata quorum.
func (l *Link) QuorumState() controller.QuorumState { return l.cfg.Quorum.State() }

// IsActive reports whether this node is the active controller.
func (l *Link) IsActive() bool {
	return l.cfg.Local != nil && l.cfg.Quorum.Leader() == l.cfg.NodeID
}

// local is the local controller when this node has one (active or not:
// it answers NOT_CONTROLLER itself when it is not).
func (l *Link) local() (*controller.Controller, error) {
	if l.cfg.Local == nil {
		return nil, fmt.Errorf("%w: this node is a broker only (the active controller is node %d)", controller.ErrNotController, l.ControllerID())
	}
	return l.cfg.Local, nil
}

func (l *Link) settle() { l.cfg.Settle(l.Image().Offset) }

// activeAddr is where the active controller takes broker-to-controller
// requests: its controller endpoint, or, for a combined node that has not
// written one, its broker listener.
func (l *Link) activeAddr() (string, error) {
	id := l.ControllerID()
	if id < 0 {
		return "", fmt.Errorf("%w: no active controller is known (the metadata quorum has no leader)", controller.ErrNotController)
	}
	img := l.Image()
	e, ok := img.Controllers[id]
	if !ok {
		b := img.Brokers[id]
		if b == nil {
			return "", fmt.Errorf("%w: the active controller (node %d) has not published its endpoint yet", controller.ErrNotController, id)
		}
		e = metadata.Endpoint{Host: b.Host, Port: b.Port}
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))), nil
}

// forward sends one of this broker's own requests to the active
// controller.
func (l *Link) forward(req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	return l.send(ctx, broker.InterBrokerClientID, req)
}

func (l *Link) send(ctx context.Context, clientID string, req kmsg.Request) (kmsg.Response, error) {
	addr, err := l.activeAddr()
	if err != nil {
		return nil, err
	}
	resp, err := l.cfg.Client.Do(ctx, addr, clientID, req)
	if err != nil {
		return nil, fmt.Errorf("send %s to the active controller (node %d at %s): %w", kmsg.NameForKey(req.Key()), l.ControllerID(), addr, err)
	}
	return resp, nil
}

// ForwardRequest relays a client's admin request, as it came, to the
// active controller and returns its answer (KIP-590's forwarding, without
// the envelope: the controller sees this broker as the client). Writes
// that create or delete topics wait, briefly, until this broker's image
// shows them, so the client's next request here sees its change. The
// answer goes back to the client as it is: its codes are the client's.
func (l *Link) ForwardRequest(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	resp, err := l.send(ctx, forwardClientID, req)
	if err != nil {
		return nil, err
	}
	defer l.settle()
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		if req.(*kmsg.CreateTopicsRequest).ValidateOnly {
			break
		}
		l.waitFor(func(img *metadata.Image) bool {
			for _, t := range r.Topics {
				if t.ErrorCode == 0 && img.Topics[t.Topic] == nil {
					return false
				}
			}
			return true
		})
	case *kmsg.DeleteTopicsResponse:
		l.waitFor(func(img *metadata.Image) bool {
			for _, t := range r.Topics {
				if t.ErrorCode == 0 && t.Topic != nil && img.Topics[*t.Topic] != nil {
					return false
				}
			}
			return true
		})
	}
	return resp, nil
}

// waitFor waits until this node's image satisfies cond, or a few seconds
// pass: forwarded writes reach this node's image a moment after they
// commit.
func (l *Link) waitFor(cond func(*metadata.Image) bool) {
	l.cfg.Images.WaitFor(cond, 5*time.Second)
}

// CreateTopics creates locally on the active controller, else forwards
// the request and waits (briefly) until this node's image has the topics,
// so the caller sees what it created. Only the broker's own requests come
// here (auto-creation, __consumer_offsets); clients' are relayed whole by
// ForwardRequest.
func (l *Link) CreateTopics(reqs []controller.CreateTopic, validateOnly bool) []controller.CreateTopicResult {
	if l.IsActive() {
		res := l.cfg.Local.CreateTopics(reqs, validateOnly)
		l.settle()
		return res
	}
	defer l.settle()
	out := make([]controller.CreateTopicResult, len(reqs))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = int32(l.cfg.Timeout / time.Millisecond)
	req.ValidateOnly = validateOnly
	for i, r := range reqs {
		out[i].Name = r.Name
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = r.Name, r.Partitions, r.ReplicationFactor
		for p, replicas := range r.Assignment {
			t.ReplicaAssignment = append(t.ReplicaAssignment, kmsg.CreateTopicsRequestTopicReplicaAssignment{Partition: p, Replicas: replicas})
		}
		for k, v := range r.Configs {
			t.Configs = append(t.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: v})
		}
		req.Topics = append(req.Topics, t)
	}
	// Only the broker's own internal topics go with its privilege.
	clientID := broker.InterBrokerClientID
	for _, r := range reqs {
		if !r.Internal {
			clientID = forwardClientID
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	resp, err := l.send(ctx, clientID, req)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	byName := map[string]kmsg.CreateTopicsResponseTopic{}
	for _, t := range resp.(*kmsg.CreateTopicsResponse).Topics {
		byName[t.Topic] = t
	}
	var created []string
	for i := range out {
		t, ok := byName[out[i].Name]
		switch {
		case !ok:
			out[i].Err = fmt.Errorf("%w: the controller did not answer for topic %q", controller.ErrInvalidRequest, out[i].Name)
		case t.ErrorCode != 0:
			out[i].Err = remoteError(t.ErrorCode, t.ErrorMessage)
		default:
			out[i].ID, out[i].Partitions, out[i].ReplicationFactor = metadata.UUID(t.TopicID), t.NumPartitions, t.ReplicationFactor
			created = append(created, out[i].Name)
		}
	}
	if !validateOnly {
		l.waitFor(func(img *metadata.Image) bool {
			for _, n := range created {
				if img.Topics[n] == nil {
					return false
				}
			}
			return true
		})
	}
	return out
}

// DeleteTopics deletes on the active controller; elsewhere NOT_CONTROLLER.
func (l *Link) DeleteTopics(reqs []controller.DeleteTopic) []controller.DeleteTopicResult {
	if c, err := l.local(); err == nil {
		res := c.DeleteTopics(reqs)
		l.settle()
		return res
	}
	out := make([]controller.DeleteTopicResult, len(reqs))
	for i, r := range reqs {
		out[i] = controller.DeleteTopicResult{Name: r.Name, ID: r.ID, Err: controller.ErrNotController}
	}
	return out
}

// CreatePartitionsAll adds partitions on the active controller; elsewhere
// NOT_CONTROLLER.
func (l *Link) CreatePartitionsAll(reqs []controller.CreatePartitions, validateOnly bool) []error {
	if c, err := l.local(); err == nil {
		res := c.CreatePartitionsAll(reqs, validateOnly)
		l.settle()
		return res
	}
	return notController(len(reqs))
}

// AlterConfigs alters configs on the active controller; elsewhere
// NOT_CONTROLLER.
func (l *Link) AlterConfigs(reqs []controller.AlterConfigResource, validateOnly bool) []error {
	if c, err := l.local(); err == nil {
		return c.AlterConfigs(reqs, validateOnly)
	}
	return notController(len(reqs))
}

func notController(n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = controller.ErrNotController
	}
	return out
}

// ElectLeaders runs elections on the local controller.
func (l *Link) ElectLeaders(typ controller.ElectionType, partitions map[string][]int32) ([]controller.ElectLeadersResult, error) {
	c, err := l.local()
	if err != nil {
		return nil, err
	}
	return c.ElectLeaders(typ, partitions)
}

// AlterPartitionReassignments reassigns on the local controller.
func (l *Link) AlterPartitionReassignments(ctx context.Context, reqs []controller.Reassignment, allowRFChange bool) ([]controller.ReassignmentResult, error) {
	c, err := l.local()
	if err != nil {
		return nil, err
	}
	return c.AlterPartitionReassignments(ctx, reqs, allowRFChange)
}

// ListPartitionReassignments lists the local controller's reassignments
// (a broker-only node forwards the request instead: none here).
func (l *Link) ListPartitionReassignments(partitions map[string][]int32) []controller.OngoingReassignment {
	c, err := l.local()
	if err != nil {
		return nil
	}
	return c.ListPartitionReassignments(partitions)
}

// RegisterBroker takes another broker's registration (the active
// controller's side of BrokerRegistration).
func (l *Link) RegisterBroker(r controller.BrokerRegistration) (int64, error) {
	c, err := l.local()
	if err != nil {
		return -1, err
	}
	return c.RegisterBroker(r)
}

// BrokerHeartbeat takes another broker's heartbeat.
func (l *Link) BrokerHeartbeat(node int32, epoch int64, offlineLogDirs []metadata.UUID) (bool, error) {
	c, err := l.local()
	if err != nil {
		return true, err
	}
	return c.BrokerHeartbeat(node, epoch, offlineLogDirs)
}

// BrokerShutdown takes another broker's request to shut down.
func (l *Link) BrokerShutdown(node int32, epoch int64) error {
	c, err := l.local()
	if err != nil {
		return err
	}
	return c.BrokerShutdown(node, epoch)
}

// AllocateProducerIDs reserves a block locally on the active controller,
// else asks it with AllocateProducerIds.
func (l *Link) AllocateProducerIDs(count int64) (int64, error) {
	if l.IsActive() {
		return l.cfg.Local.AllocateProducerIDs(count)
	}
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID, req.BrokerEpoch = l.cfg.NodeID, l.Epoch()
	resp, err := l.forward(req)
	if err != nil {
		return -1, err
	}
	r := resp.(*kmsg.AllocateProducerIDsResponse)
	if r.ErrorCode != 0 {
		return -1, remoteError(r.ErrorCode, nil)
	}
	if int64(r.ProducerIDLen) != count {
		return -1, fmt.Errorf("%w: asked for %d producer ids, got a block of %d", controller.ErrInvalidRequest, count, r.ProducerIDLen)
	}
	return r.ProducerIDStart, nil
}

// register registers this broker with the active controller (locally or
// remotely) and returns its epoch.
func (l *Link) register(r controller.BrokerRegistration, clusterID string) (int64, error) {
	if l.IsActive() {
		return l.cfg.Local.RegisterBroker(r)
	}
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.SetVersion(3)
	req.BrokerID, req.ClusterID, req.IncarnationID, req.Rack = r.NodeID, clusterID, r.Incarnation, r.Rack
	req.PreviousBrokerEpoch = r.PreviousBrokerEpoch
	req.Listeners = registrationListeners(r)
	req.LogDirs = wireDirs(r.LogDirs)
	resp, err := l.forward(req)
	if err != nil {
		return -1, err
	}
	rr := resp.(*kmsg.BrokerRegistrationResponse)
	if rr.ErrorCode != 0 {
		return -1, remoteError(rr.ErrorCode, nil)
	}
	return rr.BrokerEpoch, nil
}

// heartbeat sends this broker's heartbeat, naming its failed log
// directories (v1 OfflineLogDirs, KIP-858); it returns whether the broker
// is fenced.
func (l *Link) heartbeat(epoch int64, offlineLogDirs []metadata.UUID) (bool, error) {
	if l.IsActive() {
		return l.cfg.Local.BrokerHeartbeat(l.cfg.NodeID, epoch, offlineLogDirs)
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(1)
	req.BrokerID, req.BrokerEpoch = l.cfg.NodeID, epoch
	req.OfflineLogDirs = wireDirs(offlineLogDirs)
	req.CurrentMetadataOffset = l.Image().Offset
	resp, err := l.forward(req)
	if err != nil {
		return true, err
	}
	hr := resp.(*kmsg.BrokerHeartbeatResponse)
	if hr.ErrorCode != 0 {
		return true, remoteError(hr.ErrorCode, nil)
	}
	return hr.IsFenced, nil
}

// wireDirs converts log directory ids for the wire.
func wireDirs(ids []metadata.UUID) [][16]byte {
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// shutdown tells the active controller this broker is stopping (a
// heartbeat asking to shut down), so its partitions move at once.
func (l *Link) shutdown(epoch int64) error {
	if l.IsActive() {
		return l.cfg.Local.BrokerShutdown(l.cfg.NodeID, epoch)
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(0)
	req.BrokerID, req.BrokerEpoch, req.WantShutdown = l.cfg.NodeID, epoch, true
	resp, err := l.forward(req)
	if err != nil {
		return err
	}
	if hr := resp.(*kmsg.BrokerHeartbeatResponse); hr.ErrorCode != 0 {
		return remoteError(hr.ErrorCode, nil)
	}
	return nil
}

// RequestShutdown is ControlledShutdown without the wait: it asks the active
// controller to move this broker's leaderships and returns. For a node
// whose metadata log failed, whose image can no longer show them move.
func (l *Link) RequestShutdown() error {
	epoch := l.Epoch()
	if epoch < 0 {
		return nil
	}
	if err := l.shutdown(epoch); err != nil {
		return fmt.Errorf("controlled shutdown: %w", err)
	}
	return nil
}

// ControlledShutdown asks the active controller to move this broker's
// leaderships to other in-sync replicas (Kafka's controlled shutdown)
// while it still serves, and waits until its own partitions follow: a
// produce waiting for acks=all here is answered NOT_LEADER_OR_FOLLOWER
// and retried at the new leader, and clients see no offline window. It
// does nothing before this broker has registered. Stop the Lifecycle
// first, so no heartbeat unfences the broker again.
func (l *Link) ControlledShutdown() error {
	epoch := l.Epoch()
	if epoch < 0 {
		return nil
	}
	if err := l.shutdown(epoch); err != nil {
		return fmt.Errorf("controlled shutdown: %w", err)
	}
	node := l.cfg.NodeID
	leadsNothing := func(img *metadata.Image) bool {
		for _, t := range img.Topics {
			for _, p := range t.Partitions {
				if p.Leader == node {
					return false
				}
			}
		}
		return true
	}
	if !l.cfg.Images.WaitFor(leadsNothing, l.cfg.Timeout) {
		return fmt.Errorf("controlled shutdown: leadership did not move within %v", l.cfg.Timeout)
	}
	l.settle()
	return nil
}
