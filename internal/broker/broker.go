package broker

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/coordinator/txn"
	"github.com/stratalog/strata/internal/fetchsession"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quota"
	"github.com/stratalog/strata/internal/replication"
	"github.com/stratalog/strata/internal/security"
)

// Controller is what the broker needs from the metadata controller.
type Controller interface {
	Image() *metadata.Image
	CreateTopics(reqs []controller.CreateTopic, validateOnly bool) []controller.CreateTopicResult
	DeleteTopics(reqs []controller.DeleteTopic) []controller.DeleteTopicResult
	CreatePartitionsAll(reqs []controller.CreatePartitions, validateOnly bool) []error
	AlterConfigs(reqs []controller.AlterConfigResource, validateOnly bool) []error
	AllocateProducerIDs(count int64) (int64, error)
	// ElectLeaders runs preferred or unclean elections (elect_leaders.go).
	ElectLeaders(typ controller.ElectionType, partitions map[string][]int32) ([]controller.ElectLeadersResult, error)
	// AlterPartitionReassignments and ListPartitionReassignments
	// (alter_partition_reassignments.go, list_partition_reassignments.go).
	AlterPartitionReassignments(ctx context.Context, reqs []controller.Reassignment, allowRFChange bool) ([]controller.ReassignmentResult, error)
	ListPartitionReassignments(partitions map[string][]int32) []controller.OngoingReassignment
	// ControllerID is the node id of the active controller, -1 if none is
	// known: what Metadata and DescribeCluster report.
	ControllerID() int32
	// Broker sessions (broker_registration.go); only the active
	// controller accepts them.
	RegisterBroker(r controller.BrokerRegistration) (epoch int64, err error)
	BrokerHeartbeat(node int32, epoch int64, offlineLogDirs []metadata.UUID) (fenced bool, err error)
	BrokerShutdown(node int32, epoch int64) error
	// AlterPartition changes ISRs on the leader's request
	// (alter_partition.go); the handler calls it on the active
	// controller only.
	AlterPartition(ctx context.Context, req controller.AlterPartitionRequest) ([]controller.AlterPartitionResult, error)
	// QuorumState describes the metadata quorum (describe_quorum.go).
	QuorumState() controller.QuorumState
	// IsActive reports whether this node is the active controller.
	IsActive() bool
	// AlterUserScramCredentials changes SCRAM users
	// (user_scram_credentials.go); results by user name.
	AlterUserScramCredentials(dels []controller.ScramDeletion, ups []controller.ScramUpsertion) map[string]error
	// CreateAcls and DeleteAcls change ACLs (acls.go).
	CreateAcls(bindings []authz.Binding) []error
	DeleteAcls(filters []authz.Filter) []controller.DeleteAclsResult
	// UpdateFeatures changes finalized feature levels
	// (update_features.go); errors per update, in order.
	UpdateFeatures(ups []controller.FeatureUpdate, validateOnly bool) []error
	// AlterClientQuotas changes client quotas (alter_client_quotas.go).
	AlterClientQuotas(alts []controller.QuotaAlteration, validateOnly bool) []error
}

// Partitions is what the broker needs from the partition manager.
type Partitions interface {
	Get(topic string, partition int32) (*replication.Partition, error)
	// WaitApplied waits (up to timeout) until the partitions follow the
	// image at offset.
	WaitApplied(offset int64, timeout time.Duration) bool
	All() []*replication.Partition
	TopicConfig(img *metadata.Image, topic string) *config.Topic
	// Failed returns the hosted partitions whose logs could not be
	// opened, with why.
	Failed() map[replication.TopicPartition]error
}

// Groups is what the broker needs from the group coordinator
// (internal/coordinator/group). Join and Sync answer through their callback,
// possibly later and from another goroutine.
type Groups interface {
	PartitionFor(groupID string) int32
	Join(req group.JoinRequest, done func(group.JoinResult))
	Sync(req group.SyncRequest, done func(group.SyncResult))
	Heartbeat(groupID string, generation int32, memberID string, instanceID *string) error
	Leave(groupID string, members []group.LeaveMember) ([]error, error)
	Commit(req group.CommitRequest) ([]error, error)
	// CommitTxn and PendingTxnOffsets: transactional offset commits
	// (txn_offset_commit.go; OffsetFetch RequireStable).
	CommitTxn(req group.TxnCommitRequest) ([]error, error)
	PendingTxnOffsets(groupID string, tps []group.TopicPartition) ([]bool, error)
	Offsets(groupID string) (map[string]map[int32]group.Offset, error)
	DeleteOffsets(groupID string, tps []group.TopicPartition) ([]error, error)
	DeleteGroups(ids []string) []error
	Describe(ids []string) []group.Description
	List(states, types []string) ([]group.Listed, error)
	// KIP-848 consumer protocol groups.
	ConsumerHeartbeat(req group.ConsumerHeartbeatRequest) group.ConsumerHeartbeatResult
	ConsumerDescribe(ids []string) []group.ConsumerDescription
}

// Txns is what the broker needs from the transaction coordinator
// (internal/coordinator/txn). The calls answer through their callback,
// later and from another goroutine.
type Txns interface {
	PartitionFor(id string) int32
	InitProducerID(id string, timeoutMs int32, expected *txn.ProducerIDAndEpoch, done func(txn.ProducerIDAndEpoch, error))
	AddPartitions(id string, pid int64, epoch int16, parts []txn.TopicPartition, tv int16, done func(error))
	VerifyPartitions(id string, pid int64, epoch int16, parts []txn.TopicPartition, done func([]error, error))
	EndTxn(id string, pid int64, epoch int16, commit bool, tv int16, done func(txn.ProducerIDAndEpoch, error))
	// Describe and List wait for the shards; handlers call them off
	// the request's goroutine.
	Describe(ids []string) []txn.Description
	List(f txn.ListFilter) ([]txn.Listed, error)
}

// Options are the broker's dependencies and settings.
type Options struct {
	NodeID     int32
	Static     *config.Broker
	Controller Controller
	Partitions Partitions
	// Groups serves the group APIs; without it they are not offered.
	Groups Groups
	Logger *slog.Logger
	Now    func() time.Time
	// Forward, if set, relays a metadata-changing admin request to the
	// active controller when this node is not it, and returns its answer.
	Forward func(ctx context.Context, req kmsg.Request) (kmsg.Response, error)
	// Ready, if set, reports whether this broker has caught up with the
	// metadata log (its registration is in its image). Before that, a
	// restarting node replaying the log would tell clients of leaders
	// long gone: Metadata answers every topic LEADER_NOT_AVAILABLE (so
	// clients retry, elsewhere too), and its partitions are not served
	// yet (the partition manager starts once it is ready).
	Ready func() bool
	// EnsureOffsetsTopic, if set, starts creating __consumer_offsets when
	// FindCoordinator finds it missing; it must not block.
	EnsureOffsetsTopic func()
	// Txns serves the transaction coordinator APIs; without it
	// transactional ids are refused as before.
	Txns Txns
	// EnsureTxnTopic, if set, starts creating __transaction_state when
	// FindCoordinator finds it missing; it must not block.
	EnsureTxnTopic func()
	// TxnVerifier, if set, verifies with the transaction coordinator
	// that a transactional batch's partition is in its transaction
	// (KIP-890 part 1, produce_txn.go); nil: no verification.
	TxnVerifier TxnVerifier
	// TxnMarkers, if set, hears of each transaction marker written to a
	// __consumer_offsets partition once it is replicated
	// (write_txn_markers.go).
	TxnMarkers TxnMarkers
	// SASL configures SaslHandshake and SaslAuthenticate.
	SASL SASLOptions
	// Authz configures ACL authorization (authorize.go).
	Authz AuthzOptions
	// OnThrottle, if set, hears of every throttle a client quota imposes
	// (metrics; quota.go).
	OnThrottle func(t quota.Type, d time.Duration)
	// LogDir, if set, is this broker's log directory: an answer that
	// names its id (a topic refused for want of a usable broker) names
	// its path and failure too (create_topics.go).
	LogDir *replication.LogDir
}

// SASLOptions configure SASL authentication on SASL listeners.
type SASLOptions struct {
	// Mechanisms are the enabled mechanisms (sasl.enabled.mechanisms);
	// ListenerMechanisms overrides them per listener
	// (listener.name.<l>.sasl.enabled.mechanisms).
	Mechanisms         []string
	ListenerMechanisms map[string][]string
	// PlainUsers returns the PLAIN users of a listener; nil: none.
	PlainUsers func(listener string) *security.PlainUsers
	// OAuth returns the OAUTHBEARER token validator of a listener; nil:
	// OAUTHBEARER fails.
	OAuth func(listener string) security.TokenValidator
	// ReauthAfter is connections.max.reauth.ms; zero: sessions never
	// expire.
	ReauthAfter time.Duration
	// FailureDelay is connection.failed.authentication.delay.ms.
	FailureDelay time.Duration
	// AfterFunc runs f after d (nil: time.AfterFunc); tests inject it.
	AfterFunc func(d time.Duration, f func())
	// Observe, if set, is told how every SASL exchange ended: the
	// listener, the mechanism ("" when none was chosen) and whether it
	// authenticated (Kafka's successful- and failed-authentication-total).
	Observe func(listener, mechanism string, ok bool)
	// ObserveReauth, if set, is told how every re-authentication of an
	// authenticated connection ended (KIP-368; Kafka's successful- and
	// failed-reauthentication-total). Observe counts them too.
	ObserveReauth func(listener, mechanism string, ok bool)
	// ObserveExpired, if set, is told of every connection closed because
	// a request came after its session ended without re-authentication
	// (Kafka's expired-connections-killed-count).
	ObserveExpired func(listener string)
}

// Broker is the network.Handler that serves Kafka requests.
type Broker struct {
	opts     Options
	log      *slog.Logger
	handlers handlerTable
	pids     *producerIDs
	auto     autoCreator
	sessions *fetchsession.Cache // incremental fetch sessions (fetch_session.go)
	order    produceOrder        // produce requests served off the reader (produce_txn.go)
	// shutdown is closed when the broker stops: long polls return early.
	shutdown chan struct{}
	// saslFakeKey keys the fake SCRAM salts of users that do not exist.
	saslFakeKey []byte
	// authz caches the authorizer of the latest image (authorize.go).
	authz atomic.Pointer[imageAuthorizer]
	// quotas enforces the client quotas of the image quotaImg (quota.go).
	quotas   *quota.Manager
	quotaImg atomic.Pointer[metadata.Image]
}

// New returns a broker.
func New(opts Options) *Broker {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	b := &Broker{
		opts:     opts,
		log:      opts.Logger.With("component", "broker"),
		shutdown: make(chan struct{}),
	}
	b.saslFakeKey = make([]byte, 32)
	_, _ = rand.Read(b.saslFakeKey)
	b.quotas = quota.NewManager(quotaOptions(opts.Static, opts.Now))
	b.pids = &producerIDs{alloc: opts.Controller.AllocateProducerIDs}
	b.sessions = newSessionCache(opts)
	b.handlers = b.register()
	return b
}

// Stop makes waiting requests (long polls) answer now.
func (b *Broker) Stop() { close(b.shutdown) }

// request is one decoded request in flight.
type request struct {
	conn     *network.ConnInfo
	key      int16
	version  int16
	corrID   int32
	clientID string
	body     kmsg.Request
	resp     network.Responder
	raw      *network.Request
	// patch, if set, completes the response before it is encoded: the
	// entries the ACL checks took out of the request (acl_checks.go).
	patch func(kmsg.Response)
	// throttle is the throttle a client quota put on the request before
	// it was served (quota.go): a throttled consumer fetch answers
	// without records.
	throttle time.Duration
	// topicDenied, if set, reports a topic the principal may not use
	// here: Fetch checks it (READ) for every partition of its session
	// too; ConsumerGroupHeartbeat (DESCRIBE) leaves such topics out of
	// those a regex subscription is matched against.
	topicDenied func(topic string) bool
}

// respond encodes resp with the request's version and queues it.
func (r *request) respond(resp kmsg.Response) { r.respondWith(resp, false) }

// respondClose is respond, then the connection closes once the response
// is written.
func (r *request) respondClose(resp kmsg.Response) { r.respondWith(resp, true) }

func (r *request) respondWith(resp kmsg.Response, closeAfter bool) {
	if r.patch != nil {
		r.patch(resp)
	}
	resp.SetVersion(r.version)
	buf := make([]byte, 4, 256)
	binary.BigEndian.PutUint32(buf, uint32(r.corrID))
	// Response header v1 (a tag section) for flexible versions, except
	// ApiVersions, whose response header is always v0.
	if resp.IsFlexible() && r.key != 18 {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	r.resp.Respond(&network.Response{Chunks: []network.Chunk{{Bytes: buf}}, CloseAfter: closeAfter})
}

var errHeader = errors.New("malformed request header")

// parseHeader reads the request header: api key, version, correlation id,
// client id, and for flexible versions the header's tag section. It returns
// the offset where the body starts.
func parseHeader(data []byte) (key, version int16, corrID int32, clientID string, body []byte, err error) {
	if len(data) < 10 {
		return 0, 0, 0, "", nil, fmt.Errorf("%w: %d bytes", errHeader, len(data))
	}
	be := binary.BigEndian
	key = int16(be.Uint16(data))
	version = int16(be.Uint16(data[2:]))
	corrID = int32(be.Uint32(data[4:]))
	n := int16(be.Uint16(data[8:]))
	rest := data[10:]
	if n >= 0 {
		if int(n) > len(rest) {
			return key, version, corrID, "", nil, fmt.Errorf("%w: client id of %d bytes overruns the request", errHeader, n)
		}
		clientID = string(rest[:n])
		rest = rest[n:]
	}
	return key, version, corrID, clientID, rest, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad tag count", errHeader)
	}
	b = b[k:]
	for range n {
		_, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad tag", errHeader)
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || size > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: bad tag size", errHeader)
		}
		b = b[k+int(size):]
	}
	return b, nil
}

// decodeBody decodes a request body (after the header's client id) of a
// supported key and version. Its cost is linear in len(body): kmsg bounds
// every array count by the bytes left and stops reading tag sections once
// the input is exhausted (see decode_test.go and "Security" in
// docs/design-notes.md), and skipTags fails at the first tag that overruns.
func decodeBody(key, version int16, body []byte) (kmsg.Request, error) {
	kreq := kmsg.RequestForKey(key)
	kreq.SetVersion(version)
	if kreq.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return nil, err
		}
	}
	if err := kreq.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	return kreq, nil
}

// Serve implements network.Handler.
func (b *Broker) Serve(ctx context.Context, nr *network.Request, resp network.Responder) {
	if rawSASL(nr.Conn) {
		b.serveRawSASL(nr, resp)
		return
	}
	key, version, corrID, clientID, body, err := parseHeader(nr.Data)
	if err != nil {
		resp.CloseConn(err)
		return
	}
	if err := b.checkAuthenticated(nr.Conn, key); err != nil {
		if errors.Is(err, errSessionExpired) && b.opts.SASL.ObserveExpired != nil {
			b.opts.SASL.ObserveExpired(nr.Conn.ListenerName())
		}
		resp.CloseConn(err)
		return
	}
	h, ok := b.handlers[key]
	if !ok {
		resp.CloseConn(fmt.Errorf("unsupported api key %d (version %d) from %s", key, version, nr.Conn.RemoteAddr))
		return
	}
	req := &request{conn: nr.Conn, key: key, version: version, corrID: corrID, clientID: clientID, resp: resp, raw: nr}
	if version < h.min || version > h.max {
		if key == apiKeyApiVersions {
			b.apiVersionsUnsupported(req)
			return
		}
		resp.CloseConn(fmt.Errorf("%s version %d is outside the supported %d..%d", kmsg.NameForKey(key), version, h.min, h.max))
		return
	}
	kreq, err := decodeBody(key, version, body)
	if err != nil {
		resp.CloseConn(err)
		return
	}
	req.body = kreq
	if !b.authorize(req) {
		return
	}
	timed := b.quotaBefore(req, h)
	if h.toController && b.opts.Forward != nil && !b.opts.Controller.IsActive() {
		go b.forward(ctx, req, h)
		return
	}
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panic", "api", kmsg.NameForKey(key), "version", version, "panic", p, "stack", string(debug.Stack()))
			resp.CloseConn(fmt.Errorf("internal error handling %s", kmsg.NameForKey(key)))
		}
	}()
	if !timed {
		h.fn(ctx, req)
		return
	}
	start := b.opts.Now()
	h.fn(ctx, req)
	b.quotaAfter(req, start)
}

// forward relays req to the active controller and answers with its
// response; when the controller cannot be reached the local handler
// answers (NOT_CONTROLLER, or its own error).
func (b *Broker) forward(ctx context.Context, req *request, h handler) {
	resp, err := b.opts.Forward(ctx, req.body)
	if err != nil {
		b.log.Debug("forward to the controller", "api", kmsg.NameForKey(req.key), "err", err)
		h.fn(ctx, req)
		return
	}
	req.respond(resp)
}

// controllerForClients is the controller id Metadata and DescribeCluster
// report: the active controller when clients can reach it as a broker,
// otherwise this broker, which relays admin requests to it.
func (b *Broker) controllerForClients(img *metadata.Image) int32 {
	id := b.opts.Controller.ControllerID()
	if br := img.Brokers[id]; br != nil && !br.Fenced {
		return id
	}
	if b.opts.Forward != nil {
		return b.opts.NodeID
	}
	return id
}

// image is the current metadata image.
func (b *Broker) image() *metadata.Image { return b.opts.Controller.Image() }
