package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/metadata"
)

// Domain errors. internal/broker maps them to Kafka error codes.
var (
	ErrTopicExists              = errors.New("topic already exists")
	ErrInvalidTopic             = errors.New("invalid topic")
	ErrUnknownTopic             = errors.New("unknown topic")
	ErrUnknownTopicID           = errors.New("unknown topic id")
	ErrInvalidPartitions        = errors.New("invalid partitions")
	ErrInvalidReplicationFactor = errors.New("invalid replication factor")
	ErrInvalidReplicaAssignment = errors.New("invalid replica assignment")
	// ErrInvalidConfig is config.ErrInvalid, so that validation errors from
	// the registry pass through unwrapped and read once.
	ErrInvalidConfig    = config.ErrInvalid
	ErrInvalidRequest   = errors.New("invalid request")
	ErrPolicyViolation  = errors.New("policy violation")
	ErrDeletionDisabled = errors.New("topic deletion is disabled")
	ErrNotController    = errors.New("not the active controller")
)

// MaxPartitionsPerTopic bounds CreateTopics and CreatePartitions: a request
// for more is a policy violation rather than a broker that opens 10^6 files.
const MaxPartitionsPerTopic = 10000

// Listener is told about every new image, in order, before the write that
// produced it returns.
type Listener func(prev, next *metadata.Image)

// Options configure a Controller.
type Options struct {
	NodeID                   int32
	Static                   *config.Broker
	Logger                   *slog.Logger
	DefaultPartitions        int32
	DefaultReplicationFactor int16
	DeleteTopicEnable        bool
	// InternalTopics may not be created, deleted or given partitions by
	// clients; their configs may be altered, as in Kafka.
	InternalTopics map[string]bool
}

// Controller serialises metadata changes.
type Controller struct {
	opts      Options
	log       metadata.Log
	mu        sync.Mutex // serialises writes
	image     atomic.Pointer[metadata.Image]
	listeners []Listener
}

// New replays log into an image and returns a controller writing to it.
func New(log metadata.Log, opts Options) (*Controller, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Controller{opts: opts, log: log}
	img := metadata.Empty()
	err := log.Replay(func(offset int64, recs []metadata.Record) error {
		next, err := img.Apply(offset, recs)
		if err != nil {
			return err
		}
		img = next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay metadata log: %w", err)
	}
	c.image.Store(img)
	return c, nil
}

// Image returns the current image.
func (c *Controller) Image() *metadata.Image { return c.image.Load() }

// Subscribe adds a listener and calls it once with the current image.
func (c *Controller) Subscribe(l Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listeners = append(c.listeners, l)
	l(metadata.Empty(), c.image.Load())
}

// commit writes recs and publishes the new image. Callers hold c.mu.
func (c *Controller) commit(recs []metadata.Record) (*metadata.Image, error) {
	prev := c.image.Load()
	off, err := c.log.Append(recs)
	if err != nil {
		return nil, err
	}
	next, err := prev.Apply(off, recs)
	if err != nil {
		// The log now holds records the image rejects: refuse to go on
		// rather than diverge from what a restart would replay.
		return nil, fmt.Errorf("metadata log and image diverged: %w", err)
	}
	c.image.Store(next)
	for _, l := range c.listeners {
		l(prev, next)
	}
	return next, nil
}

// Bootstrap makes sure the cluster has an id and this broker is registered
// with its current address. It returns the cluster id.
func (c *Controller) Bootstrap(clusterID, host string, port int32, rack *string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.image.Load()
	var recs []metadata.Record
	if img.ClusterID == "" {
		recs = append(recs, &metadata.ClusterIDRecord{ClusterID: clusterID})
	} else if clusterID != "" && clusterID != img.ClusterID {
		return "", fmt.Errorf("metadata log belongs to cluster %s, but meta.properties says %s", img.ClusterID, clusterID)
	}
	b := img.Brokers[c.opts.NodeID]
	if b == nil || b.Host != host || b.Port != port || !sameRack(b.Rack, rack) {
		var epoch int64
		if b != nil {
			epoch = b.Epoch + 1
		}
		recs = append(recs, &metadata.RegisterBrokerRecord{NodeID: c.opts.NodeID, Epoch: epoch, Host: host, Port: port, Rack: rack})
	}
	if len(recs) > 0 {
		if _, err := c.commit(recs); err != nil {
			return "", err
		}
	}
	return c.image.Load().ClusterID, nil
}

func sameRack(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// AllocateProducerIDs reserves count producer ids and returns the first.
func (c *Controller) AllocateProducerIDs(count int64) (int64, error) {
	if count <= 0 {
		return 0, fmt.Errorf("%w: producer id block of %d", ErrInvalidRequest, count)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	start := c.image.Load().NextProducerID
	if _, err := c.commit([]metadata.Record{&metadata.ProducerIDsRecord{NodeID: c.opts.NodeID, NextProducerID: start + count}}); err != nil {
		return 0, err
	}
	return start, nil
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// ControllerID is the node id of the active controller.
func (c *Controller) ControllerID() int32 { return c.opts.NodeID }
