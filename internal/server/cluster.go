package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
)

// clusterController is the controller as this node's broker sees it: the
// local controller when this node is the active one; otherwise writes the
// broker itself needs (auto-created topics, producer id blocks, its
// registration and heartbeats) go to the active controller over its Kafka
// listener, and client admin writes other than CreateTopics answer
// NOT_CONTROLLER so the client retries at the controller Metadata names.
type clusterController struct {
	*controller.Controller
	nodeID int32
	rpc    *kclient.Client
	log    *slog.Logger
	// epoch is this broker's registration epoch (for AllocateProducerIds).
	epoch func() int64
	// settle waits (briefly) until this broker's partitions follow the
	// image up to offset: after a topic change it made, the broker
	// serves the new partitions before it answers.
	settle func(offset int64)
}

var _ broker.Controller = (*clusterController)(nil)

// forwardTimeout bounds one forwarded request.
const forwardTimeout = 10 * time.Second

// forwardClientID is the client id of client requests a broker forwards
// to the active controller; unlike broker.InterBrokerClientID it carries
// no privilege.
const forwardClientID = "strata-forwarded"

// activeAddr is the endpoint of the active controller.
func (c *clusterController) activeAddr() (string, error) {
	e, err := c.ActiveEndpoint()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))), nil
}

// forward sends one of this broker's own requests to the active
// controller.
func (c *clusterController) forward(req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	return c.send(ctx, broker.InterBrokerClientID, req)
}

func (c *clusterController) send(ctx context.Context, clientID string, req kmsg.Request) (kmsg.Response, error) {
	addr, err := c.activeAddr()
	if err != nil {
		return nil, err
	}
	return c.rpc.Do(ctx, addr, clientID, req)
}

// ForwardRequest relays a client's admin request, as it came, to the
// active controller and returns its answer (KIP-590's forwarding, without
// the envelope: the controller sees this broker as the client). Writes
// that create or delete topics wait, briefly, until this broker's image
// shows them, so the client's next request here sees its change.
func (c *clusterController) ForwardRequest(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	resp, err := c.send(ctx, forwardClientID, req)
	if err != nil {
		return nil, err
	}
	defer func() { c.settle(c.Image().Offset) }()
	switch r := resp.(type) {
	case *kmsg.CreateTopicsResponse:
		if req.(*kmsg.CreateTopicsRequest).ValidateOnly {
			break
		}
		c.waitFor(func(img *metadata.Image) bool {
			for _, t := range r.Topics {
				if t.ErrorCode == 0 && img.Topics[t.Topic] == nil {
					return false
				}
			}
			return true
		})
	case *kmsg.DeleteTopicsResponse:
		c.waitFor(func(img *metadata.Image) bool {
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

// CreateTopics creates locally on the active controller, else forwards
// the request and waits (briefly) until this node's image has the topics,
// so the caller sees what it created. Only the broker's own requests come
// here (auto-creation, __consumer_offsets); clients' are relayed whole by
// ForwardRequest.
func (c *clusterController) CreateTopics(reqs []controller.CreateTopic, validateOnly bool) []controller.CreateTopicResult {
	if c.IsActive() {
		res := c.Controller.CreateTopics(reqs, validateOnly)
		c.settle(c.Image().Offset)
		return res
	}
	defer func() { c.settle(c.Image().Offset) }()
	out := make([]controller.CreateTopicResult, len(reqs))
	req := kmsg.NewPtrCreateTopicsRequest()
	req.SetVersion(7)
	req.TimeoutMillis = int32(forwardTimeout / time.Millisecond)
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
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	resp, err := c.send(ctx, clientID, req)
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
		c.waitFor(func(img *metadata.Image) bool {
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

// waitFor waits until this node's image satisfies cond, or a few seconds
// pass: forwarded writes reach this node's image a moment after they
// commit.
func (c *clusterController) waitFor(cond func(*metadata.Image) bool) {
	c.WaitFor(cond, 5*time.Second)
}

// remoteError turns an error code from the active controller back into an
// error that internal/broker maps to the same code.
func remoteError(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if msg != nil && *msg != "" {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

func (c *clusterController) DeleteTopics(reqs []controller.DeleteTopic) []controller.DeleteTopicResult {
	if c.IsActive() {
		res := c.Controller.DeleteTopics(reqs)
		c.settle(c.Image().Offset)
		return res
	}
	out := make([]controller.DeleteTopicResult, len(reqs))
	for i, r := range reqs {
		out[i] = controller.DeleteTopicResult{Name: r.Name, ID: r.ID, Err: controller.ErrNotController}
	}
	return out
}

func (c *clusterController) CreatePartitionsAll(reqs []controller.CreatePartitions, validateOnly bool) []error {
	if c.IsActive() {
		res := c.Controller.CreatePartitionsAll(reqs, validateOnly)
		c.settle(c.Image().Offset)
		return res
	}
	return notController(len(reqs))
}

func (c *clusterController) AlterConfigs(reqs []controller.AlterConfigResource, validateOnly bool) []error {
	if c.IsActive() {
		return c.Controller.AlterConfigs(reqs, validateOnly)
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

// AllocateProducerIDs reserves a block locally on the active controller,
// else asks it with AllocateProducerIds.
func (c *clusterController) AllocateProducerIDs(count int64) (int64, error) {
	if c.IsActive() {
		return c.Controller.AllocateProducerIDs(count)
	}
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID, req.BrokerEpoch = c.nodeID, c.epoch()
	resp, err := c.forward(req)
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
func (c *clusterController) register(r controller.BrokerRegistration, clusterID string) (int64, error) {
	if c.IsActive() {
		return c.Controller.RegisterBroker(r)
	}
	req := kmsg.NewPtrBrokerRegistrationRequest()
	req.SetVersion(3)
	req.BrokerID, req.ClusterID, req.IncarnationID, req.Rack = r.NodeID, clusterID, r.Incarnation, r.Rack
	req.PreviousBrokerEpoch = r.PreviousBrokerEpoch
	req.Listeners = registrationRequestListeners(r)
	resp, err := c.forward(req)
	if err != nil {
		return -1, err
	}
	rr := resp.(*kmsg.BrokerRegistrationResponse)
	if rr.ErrorCode != 0 {
		return -1, remoteError(rr.ErrorCode, nil)
	}
	return rr.BrokerEpoch, nil
}

// heartbeat sends this broker's heartbeat; it returns whether the broker
// is fenced.
func (c *clusterController) heartbeat(epoch int64) (bool, error) {
	if c.IsActive() {
		return c.Controller.BrokerHeartbeat(c.nodeID, epoch)
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(0)
	req.BrokerID, req.BrokerEpoch = c.nodeID, epoch
	req.CurrentMetadataOffset = c.Image().Offset
	resp, err := c.forward(req)
	if err != nil {
		return true, err
	}
	hr := resp.(*kmsg.BrokerHeartbeatResponse)
	if hr.ErrorCode != 0 {
		return true, remoteError(hr.ErrorCode, nil)
	}
	return hr.IsFenced, nil
}

// shutdown tells the active controller this broker is stopping (a
// heartbeat asking to shut down), so its partitions move at once.
func (c *clusterController) shutdown(epoch int64) error {
	if c.IsActive() {
		return c.Controller.BrokerShutdown(c.nodeID, epoch)
	}
	req := kmsg.NewPtrBrokerHeartbeatRequest()
	req.SetVersion(0)
	req.BrokerID, req.BrokerEpoch, req.WantShutdown = c.nodeID, epoch, true
	resp, err := c.forward(req)
	if err != nil {
		return err
	}
	if hr := resp.(*kmsg.BrokerHeartbeatResponse); hr.ErrorCode != 0 {
		return remoteError(hr.ErrorCode, nil)
	}
	return nil
}

// needsRegistration reports whether an error from a heartbeat means the
// broker must register again (a new controller lost track of it, or its
// epoch is stale).
func needsRegistration(err error) bool {
	return errors.Is(err, controller.ErrStaleBrokerEpoch) || errors.Is(err, controller.ErrBrokerNotRegistered) ||
		errors.Is(err, kerr.StaleBrokerEpoch) || errors.Is(err, kerr.BrokerIDNotRegistered)
}

// AlterPartition asks the active controller to change ISRs (KIP-497): the
// local controller when this node is the active one, else an
// AlterPartition request (v3, topic ids and the members' broker epochs)
// to the active controller. The error is for the whole request (not the
// controller, stale broker epoch, no answer); each result has its own.
// Errors are the controller's sentinels (controller.ErrFencedLeaderEpoch,
// ErrInvalidUpdateVersion, ErrIneligibleReplica, ErrStaleBrokerEpoch,
// ErrNotController, ...) wherever the request was served, so callers
// (the replication layer's ISR updates) test them with errors.Is alone.
func (c *clusterController) AlterPartition(ctx context.Context, r controller.AlterPartitionRequest) ([]controller.AlterPartitionResult, error) {
	if c.IsActive() {
		return c.Controller.AlterPartition(ctx, r)
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.SetVersion(3)
	req.BrokerID, req.BrokerEpoch = r.BrokerID, r.BrokerEpoch
	img := c.Image()
	out := make([]controller.AlterPartitionResult, len(r.Partitions))
	index := map[metadata.UUID]int{} // topic id -> position in req.Topics
	for i, p := range r.Partitions {
		out[i].TopicID, out[i].Topic, out[i].Partition = p.TopicID, p.Topic, p.Partition
		if out[i].TopicID.IsZero() {
			if t := img.Topics[p.Topic]; t != nil {
				out[i].TopicID = t.ID
			}
		}
		if out[i].TopicID.IsZero() {
			out[i].Err = fmt.Errorf("%w: %q", controller.ErrUnknownTopic, p.Topic)
			continue
		}
		ti, ok := index[out[i].TopicID]
		if !ok {
			ti = len(req.Topics)
			index[out[i].TopicID] = ti
			t := kmsg.NewAlterPartitionRequestTopic()
			t.TopicID = out[i].TopicID
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewAlterPartitionRequestTopicPartition()
		rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch = p.Partition, p.LeaderEpoch, p.PartitionEpoch
		for j, id := range p.NewISR {
			e := kmsg.NewAlterPartitionRequestTopicPartitionNewEpochISR()
			e.BrokerID = id
			if p.NewISREpochs != nil && j < len(p.NewISREpochs) {
				e.BrokerEpoch = p.NewISREpochs[j]
			}
			rp.NewEpochISR = append(rp.NewEpochISR, e)
		}
		req.Topics[ti].Partitions = append(req.Topics[ti].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	resp, err := c.send(ctx, broker.InterBrokerClientID, req)
	if err != nil {
		return nil, err
	}
	ar := resp.(*kmsg.AlterPartitionResponse)
	if ar.ErrorCode != 0 {
		return nil, controllerError(ar.ErrorCode)
	}
	type key struct {
		id metadata.UUID
		p  int32
	}
	answers := map[key]kmsg.AlterPartitionResponseTopicPartition{}
	for _, t := range ar.Topics {
		for _, p := range t.Partitions {
			answers[key{metadata.UUID(t.TopidID), p.Partition}] = p
		}
	}
	for i := range out {
		if out[i].Err != nil {
			continue
		}
		a, ok := answers[key{out[i].TopicID, out[i].Partition}]
		switch {
		case !ok:
			out[i].Err = fmt.Errorf("%w: the controller did not answer for partition %s-%d", controller.ErrInvalidRequest, out[i].TopicID, out[i].Partition)
		case a.ErrorCode != 0:
			out[i].Err = controllerError(a.ErrorCode)
		default:
			out[i].PartitionState = controller.PartitionState{Leader: a.LeaderID, LeaderEpoch: a.LeaderEpoch, ISR: a.ISR, PartitionEpoch: a.PartitionEpoch}
		}
	}
	return out, nil
}

// controllerSentinels turn Kafka codes from the active controller back
// into the controller's errors (the inverse of broker/errors.go for the
// codes broker-to-controller requests answer).
var controllerSentinels = map[int16]error{
	kerr.NotController.Code:           controller.ErrNotController,
	kerr.StaleBrokerEpoch.Code:        controller.ErrStaleBrokerEpoch,
	kerr.BrokerIDNotRegistered.Code:   controller.ErrBrokerNotRegistered,
	kerr.FencedLeaderEpoch.Code:       controller.ErrFencedLeaderEpoch,
	kerr.InvalidUpdateVersion.Code:    controller.ErrInvalidUpdateVersion,
	kerr.IneligibleReplica.Code:       controller.ErrIneligibleReplica,
	kerr.OperationNotAttempted.Code:   controller.ErrIneligibleReplica,
	kerr.UnknownTopicOrPartition.Code: controller.ErrUnknownTopic,
	kerr.UnknownTopicID.Code:          controller.ErrUnknownTopicID,
	kerr.InvalidRequest.Code:          controller.ErrInvalidRequest,
	kerr.RequestTimedOut.Code:         controller.ErrQuorumUnavailable,
}

// controllerError is the controller's sentinel for a Kafka code, wrapping
// the Kafka error too (so internal/broker maps it back to the same code);
// codes without a sentinel come back as the Kafka error alone.
func controllerError(code int16) error {
	kerrErr := kerr.ErrorForCode(code)
	if s, ok := controllerSentinels[code]; ok {
		return fmt.Errorf("%w (%w from the active controller)", s, kerrErr)
	}
	return kerrErr
}
