package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
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
	// ErrQuorumUnavailable: the metadata quorum could not commit in time
	// (no majority of controllers reachable, or an election going on).
	ErrQuorumUnavailable = errors.New("metadata quorum unavailable")
)

// DefaultMaxPartitionsPerRequest is Options.MaxPartitionsPerRequest's
// default, Kafka's (controller.max.records.per.batch).
const DefaultMaxPartitionsPerRequest = 10000

// MaxPartitionsPerTopic bounds CreateTopics and CreatePartitions: a request
// for more is a policy violation rather than a broker that opens 10^6 files.
const MaxPartitionsPerTopic = 10000

// Images is the committed metadata the controller validates against: the
// node's metadata loader (internal/metadata/loader), which the quorum
// feeds. The quorum applies an entry there before Propose returns.
type Images interface {
	// Image is the newest image.
	Image() *metadata.Image
	// Rejected returns (once) why the image skipped the entry at index,
	// nil if it applied it.
	Rejected(index uint64) error
}

// StateMachine is Images that also applies entries: what a local log
// (New) replays into and appends through.
type StateMachine interface {
	Images
	Apply(index uint64, data []byte) error
}

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
	// BrokerSessionTimeout is how long the active controller waits for a
	// heartbeat before fencing a broker (default 9 s, Kafka's
	// broker.session.timeout.ms).
	BrokerSessionTimeout time.Duration
	// Now is the clock of broker sessions (time.Now if nil).
	Now func() time.Time
	// MaxPartitionsPerRequest bounds the partitions one CreateTopics or
	// CreatePartitions request creates over all its topics (Kafka's
	// controller.max.records.per.batch; 10,000 if 0): their records go
	// in one metadata entry.
	MaxPartitionsPerRequest int
	// MaxEntryBytes is the largest metadata entry the quorum takes
	// (quorum.MaxProposalBytes; 0: not checked here): a larger write is
	// refused with POLICY_VIOLATION and logged, not proposed.
	MaxEntryBytes int
	// WriteTimeout bounds how long a metadata write waits for the quorum
	// (default 10 s).
	WriteTimeout time.Duration
	// BootstrapFeatures are the feature levels a new cluster is formatted
	// with: FeatureLevelRecords committed with the cluster id (levels of
	// 0 write nothing). Nil: DefaultFeatures. A cluster formatted before
	// keeps the levels its log holds.
	BootstrapFeatures map[string]int16
}

// DefaultFeatures are the feature levels of a new cluster:
// transaction.version 2 (KIP-890 part 2), as Kafka 4.0 formats new
// clusters.
func DefaultFeatures() map[string]int16 {
	return map[string]int16{metadata.TransactionVersionFeature: metadata.MaxTransactionVersion}
}

// Quorum is the replicated log under a controller: the Raft quorum of the
// metadata log, or a local log on a node that is its own quorum.
type Quorum interface {
	// Propose commits data as one entry and returns its index once the
	// entry is committed and applied on this node (so the image the
	// caller reads next includes it). Off the leader it fails with an
	// error wrapping ErrNotController.
	Propose(ctx context.Context, data []byte) (index uint64, err error)
	// Leader is the node id of the quorum leader, -1 if unknown.
	Leader() int32
	// State describes the quorum as this node sees it.
	State() QuorumState
}

// QuorumState describes the metadata quorum, as DescribeQuorum reports it.
type QuorumState struct {
	LeaderID      int32 // -1 when unknown
	LeaderEpoch   int32 // the Raft term
	HighWatermark int64 // the commit index
	Voters        []QuorumReplica
}

// QuorumReplica is a voter's progress; -1 where unknown (a voter's log end
// offset is known on the leader only).
type QuorumReplica struct {
	ID                    int32
	LogEndOffset          int64
	LastFetchTimestamp    int64
	LastCaughtUpTimestamp int64
}

// Controller is the active controller's write path: it validates a
// change against the image, turns it into records and proposes them to
// the quorum; it also keeps the sessions of registered brokers. The image
// itself, and telling the rest of the node about it, is the metadata
// loader's (Images).
type Controller struct {
	opts   Options
	q      Quorum
	images Images
	mu     sync.Mutex // serialises writes (validate, then propose) on this node

	// Broker sessions, on the active controller (brokers.go); c.mu held.
	live      map[int32]*liveness
	wasActive bool
}

// NewReplicated returns a controller over images; Attach its quorum before
// use. The quorum replays the log into images (the loader), not into the
// controller.
func NewReplicated(images Images, opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	return &Controller{opts: opts, images: images, live: map[int32]*liveness{}}
}

// Attach sets the quorum writes go through.
func (c *Controller) Attach(q Quorum) { c.q = q }

// New replays a local log into sm and returns a controller that writes to
// it: a node that is its own quorum, without Raft (tests, and reading a
// pre-quorum metadata log).
func New(log metadata.Log, sm StateMachine, opts Options) (*Controller, error) {
	c := NewReplicated(sm, opts)
	err := log.Replay(func(offset int64, recs []metadata.Record) error {
		data, err := metadata.EncodeEntry(recs)
		if err != nil {
			return err
		}
		if err := sm.Apply(uint64(offset), data); err != nil {
			return err
		}
		return sm.Rejected(uint64(offset))
	})
	if err != nil {
		return nil, fmt.Errorf("replay metadata log: %w", err)
	}
	c.Attach(&localQuorum{log: log, sm: sm, node: opts.NodeID})
	return c, nil
}

// Image returns the current image.
func (c *Controller) Image() *metadata.Image { return c.images.Image() }

// commit proposes recs and returns the image that includes them. Callers
// hold c.mu, so the image they validated against is the one the records
// apply to, unless this node lost leadership meanwhile (then Propose
// fails, or the image rejects the entry and the error comes back here).
func (c *Controller) commit(recs []metadata.Record) (*metadata.Image, error) {
	return c.commitCtx(context.Background(), recs)
}

// commitCtx is commit bounded by ctx as well as the write timeout.
func (c *Controller) commitCtx(ctx context.Context, recs []metadata.Record) (*metadata.Image, error) {
	data, err := metadata.EncodeEntry(recs)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.WriteTimeout)
	defer cancel()
	if max := c.opts.MaxEntryBytes; max > 0 && len(data) > max {
		// An operation whose records do not fit one entry: no client
		// request should bring the controller here (the per-request
		// limits keep them well under), so say so loudly.
		c.opts.Logger.Error("metadata write refused: its records do not fit one metadata entry", "records", len(recs), "bytes", len(data), "max_bytes", max)
		return nil, fmt.Errorf("%w: the operation's %d metadata records (%d bytes) do not fit one metadata entry (%d bytes)", ErrPolicyViolation, len(recs), len(data), max)
	}
	idx, err := c.q.Propose(ctx, data)
	if err != nil {
		return nil, err
	}
	if aerr := c.images.Rejected(idx); aerr != nil {
		return nil, fmt.Errorf("metadata write rejected: %w", aerr)
	}
	return c.images.Image(), nil
}

// ControllerID is the node id of the active controller, -1 if unknown.
func (c *Controller) ControllerID() int32 { return c.q.Leader() }

// EnsureClusterID writes the cluster id if the metadata log has none yet
// (the first active controller of a new cluster), with the bootstrap
// feature levels (Options.BootstrapFeatures), and checks it otherwise.
func (c *Controller) EnsureClusterID(id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	if img.ClusterID != "" {
		if img.ClusterID != id {
			return fmt.Errorf("metadata log belongs to cluster %s, but this node is configured for cluster %s", img.ClusterID, id)
		}
		return nil
	}
	if !c.IsActive() {
		return ErrNotController
	}
	recs := []metadata.Record{&metadata.ClusterIDRecord{ClusterID: id}}
	feats := c.opts.BootstrapFeatures
	if feats == nil {
		feats = DefaultFeatures()
	}
	names := make([]string, 0, len(feats))
	for n := range feats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if feats[n] > 0 {
			recs = append(recs, &metadata.FeatureLevelRecord{Name: n, FeatureLevel: feats[n]})
		}
	}
	_, err := c.commit(recs)
	return err
}

// Import commits recs (a snapshot of an older metadata log) into an empty
// metadata log: the migration from the pre-quorum local log.
func (c *Controller) Import(recs []metadata.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if img := c.images.Image(); img.ClusterID != "" || len(img.Topics) > 0 {
		return fmt.Errorf("%w: import into a metadata log that is not empty", ErrInvalidRequest)
	}
	if !c.IsActive() {
		return ErrNotController
	}
	_, err := c.commit(recs)
	return err
}

// QuorumState describes the metadata quorum.
func (c *Controller) QuorumState() QuorumState { return c.q.State() }

// IsActive reports whether this node is the active controller.
func (c *Controller) IsActive() bool { return c.q.Leader() == c.opts.NodeID }

// Bootstrap formats the cluster id (if given) and registers this node's
// broker with its address, as a node that is its own quorum does at start
// (the server goes through the same calls; tests use this shortcut). It
// returns the cluster id.
func (c *Controller) Bootstrap(clusterID, host string, port int32, rack *string) (string, error) {
	if clusterID != "" {
		if err := c.EnsureClusterID(clusterID); err != nil {
			return "", err
		}
	}
	if _, err := c.RegisterBroker(BrokerRegistration{NodeID: c.opts.NodeID, Host: host, Port: port, Rack: rack, PreviousBrokerEpoch: -1}); err != nil {
		return "", err
	}
	return c.images.Image().ClusterID, nil
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
	start := c.images.Image().NextProducerID
	if _, err := c.commit([]metadata.Record{&metadata.ProducerIDsRecord{NodeID: c.opts.NodeID, NextProducerID: start + count}}); err != nil {
		return 0, err
	}
	return start, nil
}

func nowMillis() int64 { return time.Now().UnixMilli() }
