package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/brokerlink"
	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/fetchsession"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/metadata/loader"
	"github.com/stratalog/strata/internal/metrics"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quorum"
	"github.com/stratalog/strata/internal/quota"
	"github.com/stratalog/strata/internal/replication"
	"github.com/stratalog/strata/internal/storage"
	"github.com/stratalog/strata/internal/version"
)

// MetadataDir is the directory of the __cluster_metadata log in the data dir.
const MetadataDir = "__cluster_metadata-0"

// forwardTimeout bounds one request to the active controller, and the
// waits for the partitions to follow a change this node made.
const forwardTimeout = 10 * time.Second

// Server is one running Strata node.
type Server struct {
	cfg    *config.Broker
	log    *slog.Logger
	lock   *os.File
	quorum *quorum.Node
	// logDir is the data dir's health as a log directory (KIP-858).
	logDir *replication.LogDir
	// observer follows the quorum on a broker-only node (quorum is nil).
	observer *quorum.Observer
	// ctrl is nil on a broker-only node: it runs the loader only.
	ctrl *controller.Controller
	// quorumView is the metadata quorum as this node sees it.
	quorumView brokerlink.Quorum
	// link is the broker-to-controller channel; life its registration
	// and heartbeats.
	link *brokerlink.Link
	rpc  *kclient.Client
	life *brokerlink.Lifecycle
	// single is set for a node that is its own quorum.
	single bool
	voters int // controller.quorum.voters
	roles  roles
	// creatingOffsets is set while __consumer_offsets is being created.
	creatingOffsets atomic.Bool
	parts           *replication.Manager
	groups          *group.Coordinator
	// groupLoads moves group partitions with __consumer_offsets leadership.
	groupLoads *groupLoader
	// tx is the transaction coordinator and its wiring (txn.go).
	tx     *txnServer
	broker *broker.Broker
	net    *network.Server
	ln     net.Listener // the inter-broker listener's socket (lns[0])
	// ctrlLn is the controller (Raft) listener's socket from its bind
	// until the quorum takes it.
	ctrlLn net.Listener
	lns    []*boundListener // every client listener (listeners.go)
	sec    listenerSecurity // TLS and SASL of the listeners (security.go)
	// metrics and http are the registry and the HTTP listener
	// (observability.go); stopping makes /readyz say so at Shutdown.
	metrics  *metrics.Metrics
	http     *metrics.Server
	stopping atomic.Bool
	// metaFailed: the metadata log could not be written and the node
	// stops (its image no longer moves).
	metaFailed atomic.Bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopLife stops the lifecycle (registration, heartbeats) and waits
	// for it; lifeDone is closed when it has stopped.
	stopLife func()
	lifeDone chan struct{}
	serveErr chan error
	// fatal receives the error that stops the node on its own (a node id
	// taken by another broker).
	fatal chan error

	// loader is the quorum's state machine on every node: it keeps the
	// image and publishes deltas to the partition manager.
	loader *loader.Loader
}

// Start builds and starts a node. On error everything opened is closed.
//
// A node alone (no controller.quorum.voters) is its own one-voter quorum:
// Start returns once its broker is registered and ready. A node of a
// multi-node quorum starts its listeners and returns; it registers once
// the quorum has a leader (see lifecycle).
func Start(cfg *config.Broker, logger *slog.Logger) (_ *Server, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: logger.With("component", "server"), serveErr: make(chan error, 1), fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.closeStorage(-1)
		}
	}()
	nodeID := cfg.NodeID()
	if s.roles, err = parseRoles(cfg.String("process.roles")); err != nil {
		return nil, err
	}
	voters, err := parseVoters(cfg.String("controller.quorum.voters"), nodeID, s.roles)
	if err != nil {
		return nil, err
	}
	single := strings.TrimSpace(cfg.String("controller.quorum.voters")) == ""
	s.single = single
	s.voters = len(voters)
	if err := ValidateClusterID(cfg.String("cluster.id")); err != nil {
		return nil, err
	}
	// Every port is bound before the data dir is touched: a start that
	// fails on a busy port leaves no half-formatted directory (and keeps
	// the record of the last clean shutdown).
	dir := cfg.DataDir()
	portErr := func(err error) error {
		if inUse(dir) {
			return fmt.Errorf("data dir %s is in use by another strata process (%w)", dir, err)
		}
		return err
	}
	if err := s.startHTTP(); err != nil {
		return nil, portErr(err)
	}
	if s.roles.controller && len(voters) > 1 {
		if err := s.bindControllerListener(voters); err != nil {
			return nil, portErr(err)
		}
	}
	host, port, endpoints, err := s.openClientListeners(logger)
	if err != nil {
		return nil, portErr(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	prevEpoch, err := takeCleanShutdown(dir)
	if err != nil {
		return nil, err
	}
	wantCluster := cfg.String("cluster.id")
	if wantCluster == "" && !single {
		wantCluster = derivedClusterID(voters)
	}
	clusterID, fresh, err := checkMetaProperties(dir, nodeID, wantCluster)
	if err != nil {
		return nil, err
	}
	dirID, err := ensureDirectoryID(dir)
	if err != nil {
		return nil, err
	}
	logDir := replication.NewLogDir(replication.LogDirConfig{ID: dirID, Path: dir, Logger: logger.With("component", "log-dir")})
	s.logDir = logDir
	legacy, err := readLegacyMetadata(dir, logger.With("component", "metadata-migration"))
	if err != nil {
		return nil, err
	}
	if len(legacy) > 0 && !single {
		return nil, fmt.Errorf("%s holds a single-node metadata log; start this node alone once to migrate it before joining a quorum", dir)
	}
	s.loader = loader.New(loader.Options{Logger: logger})
	s.loader.Start()
	if s.roles.controller {
		err = s.startController(logger, voters, clusterID)
	} else {
		err = s.startObserver(logger, voters, clusterID)
	}
	if err != nil {
		return nil, err
	}
	linkLog := logger.With("component", "controller-channel")
	s.rpc = kclient.NewWithOptions(forwardTimeout, kclient.Options{Dial: s.sec.dial, Logger: linkLog})
	s.link = brokerlink.New(brokerlink.Config{NodeID: nodeID, Local: s.ctrl, Quorum: s.quorumView, Images: s.loader, Client: s.rpc,
		Logger: linkLog, Timeout: forwardTimeout,
		Settle: func(offset int64) {
			if s.roles.broker { // a controller-only node hosts no partitions
				s.parts.WaitApplied(offset, forwardTimeout)
			}
		}})

	ms := func(key string) time.Duration { return time.Duration(cfg.Int64(key)) * time.Millisecond }
	var journal *storage.Journal
	if on := cfg.Bool("log.journal.enable"); on || storage.HasJournal(dir) {
		// Off, the journal an earlier start left is still replayed. With
		// log.fsync=always it is durable: one fsync of the journal per
		// write replaces one per partition written.
		if journal, err = storage.OpenJournal(dir, storage.JournalOptions{Logger: logger, WriteAge: ms("log.journal.write.ms"),
			MemoryBytes: cfg.Int64("log.journal.memory.bytes"), ReplayOnly: !on, Durable: cfg.FsyncAlways()}); err != nil {
			return nil, err
		}
	}
	s.parts = replication.NewManager(replication.Options{
		Journal:  journal,
		NodeID:   nodeID,
		DataDir:  dir,
		Static:   cfg,
		Logger:   logger,
		Reserved: map[string]bool{MetadataDir: true, legacyMetadataBackup: true, legacyMetadataImported: true},
		Cleaner:  cleanerConfig(cfg),
		Fetcher: replication.FetcherConfig{
			MaxWait:          ms("replica.fetch.wait.max.ms"),
			PartitionMaxByte: int32(cfg.Int64("replica.fetch.max.bytes")),
			ResponseMaxBytes: int32(cfg.Int64("replica.fetch.response.max.bytes")),
			Backoff:          ms("replica.fetch.backoff.ms"),
			Dial:             s.sec.dial,
		},
		LagMax:     ms("replica.lag.time.max.ms"),
		Controller: brokerlink.ISR{L: s.link},
		LogDir:     logDir,
		AfterApply: func(img *metadata.Image) {
			s.groupLoads.follow(img, s.parts)
			s.tx.follow(img, s.parts)
		},
	})
	s.parts.SetFsyncObserver(s.metrics.ObserveFsync)
	// The manager applies the image once this broker has registered
	// (onRegistered registers it with the loader): a restarted node
	// replays the metadata log from its start, and must not lead or serve
	// a partition in an epoch long gone while it catches up.
	s.startGroups(logger)
	s.startTxns(logger)

	var rack *string
	if r := cfg.String("broker.rack"); r != "" {
		rack = &r
	}
	lc := brokerlink.NewLifecycle(s.link, brokerlink.LifecycleConfig{
		ClusterID:      clusterID,
		Broker:         s.roles.broker,
		Registration:   controller.BrokerRegistration{NodeID: nodeID, Incarnation: metadata.NewUUID(), Host: host, Port: port, Listeners: endpoints, Rack: rack, PreviousBrokerEpoch: prevEpoch, LogDirs: []metadata.UUID{dirID}},
		OfflineLogDirs: logDir.Offline,
		Every:          time.Duration(cfg.Int64("broker.heartbeat.interval.ms")) * time.Millisecond,
		RebalanceEvery: time.Duration(cfg.Int64("leader.imbalance.check.interval.seconds")) * time.Second,
		Legacy:         legacy,
		FinishImport:   func() error { return finishLegacyImport(dir) },
		OnReady:        s.onRegistered,
		Logger:         logger.With("component", "lifecycle"),
		Fresh:          fresh,
		MarkRegistered: func() error { return markRegistered(dir) },
		FreshHint: fmt.Sprintf("If it is that node with its data lost (a replaced disk) and its partitions should re-replicate from the other replicas, delete %s and start it again.",
			filepath.Join(dir, unregisteredFile)),
		// Twice the session: the previous process's session ends within
		// one, whatever the load on this node or the controller.
		DuplicateGrace: time.Duration(2*cfg.Int64("broker.session.timeout.ms")+2*cfg.Int64("broker.heartbeat.interval.ms")) * time.Millisecond,
	})
	s.life = lc
	logDir.OnOffline(lc.Kick)

	var ready func() bool // a controller-only node has no broker to catch up
	if s.roles.broker {
		ready = lc.IsReady
	}
	saslOpts, err := s.saslOptions()
	if err != nil {
		return nil, err
	}
	authzOpts, err := s.authzOptions()
	if err != nil {
		return nil, err
	}
	s.broker = broker.New(broker.Options{
		SASL:               saslOpts,
		Authz:              authzOpts,
		NodeID:             nodeID,
		Static:             cfg,
		Controller:         s.link,
		Partitions:         s.parts,
		Groups:             s.groups,
		Logger:             logger,
		EnsureOffsetsTopic: s.ensureOffsetsTopic,
		Txns:               s.tx.coord,
		EnsureTxnTopic:     s.tx.ensureTopic,
		TxnVerifier:        s.tx.verifier(),
		TxnMarkers:         s.groups,
		Forward:            s.link.ForwardRequest,
		Ready:              ready,
		OnThrottle:         func(t quota.Type, d time.Duration) { s.metrics.ObserveThrottle(t.String(), d) },
		LogDir:             logDir,
	})
	limits, err := connLimits(cfg)
	if err != nil {
		return nil, err
	}
	s.net = network.New(network.Config{
		Limits:                limits,
		MaxRequestSize:        int32(cfg.Int64("socket.request.max.bytes")),
		SASLMaxReceiveSize:    int32(cfg.Int64("sasl.server.max.receive.size")),
		QueuedMaxRequestBytes: cfg.Int64("queued.max.request.bytes"),
		Logger:                logger.With("component", "network"),
		Observer:              s.metrics.Requests(),
	}, s.broker)
	s.attachMetrics()

	if single {
		// Alone, the node is ready at once: register before serving.
		if err := lc.WaitReady(30 * time.Second); err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	lifeCtx, lifeCancel := context.WithCancel(ctx)
	s.stopLife = func() {
		lifeCancel()
		<-s.lifeDone
	}
	s.lifeDone = make(chan struct{})
	go func() {
		defer close(s.lifeDone)
		if err := lc.Run(lifeCtx); err != nil {
			s.log.Error("stopping: the broker cannot register", "err", err)
			s.fail(err)
		}
	}()
	s.wg.Add(5)
	go func() {
		defer s.wg.Done()
		s.groups.Run(ctx, groupTick)
	}()
	go func() {
		defer s.wg.Done()
		s.tx.run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.groupLoads.run(ctx)
	}()
	go func() {
		defer s.wg.Done()
		s.parts.RunMaintenance(ctx, time.Duration(cfg.Int64("log.retention.check.interval.ms"))*time.Millisecond)
	}()
	go func() {
		defer s.wg.Done()
		s.serveErr <- s.net.ServeListener(s.ln, s.lns[0].net)
	}()
	s.serveExtraListeners()
	s.log.Info("strata started", "version", version.Get().String(), "listen", s.ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))),
		"data_dir", dir, "node_id", nodeID, "roles", cfg.String("process.roles"), "cluster_id", clusterID, "voters", len(voters),
		"fsync", cfg.String("log.fsync"))
	return s, nil
}

func (s *Server) controllerOptions(logger *slog.Logger) controller.Options {
	cfg := s.cfg
	return controller.Options{
		NodeID:                   cfg.NodeID(),
		Static:                   cfg,
		Logger:                   logger.With("component", "controller"),
		DefaultPartitions:        int32(cfg.Int64("num.partitions")),
		DefaultReplicationFactor: int16(cfg.Int64("default.replication.factor")),
		DeleteTopicEnable:        cfg.Bool("delete.topic.enable"),
		InternalTopics:           map[string]bool{broker.MetadataTopic: true, broker.OffsetsTopic: true, broker.TransactionStateTopic: true},
		BrokerSessionTimeout:     time.Duration(cfg.Int64("broker.session.timeout.ms")) * time.Millisecond,
		MaxPartitionsPerRequest:  int(cfg.Int64("controller.max.records.per.batch")),
		MaxEntryBytes:            quorum.MaxProposalBytes,
		BootstrapFeatures:        map[string]int16{metadata.TransactionVersionFeature: int16(cfg.Int64("transaction.version"))},
	}
}

// startController opens the metadata quorum with the controller as its
// state machine.
func (s *Server) startController(logger *slog.Logger, voters map[int32]string, clusterID string) error {
	cfg := s.cfg
	s.ctrl = controller.NewReplicated(s.loader, s.controllerOptions(logger))
	peers := make(map[uint64]string, len(voters))
	for id, addr := range voters {
		peers[raftID(id)] = addr
	}
	qcfg := quorum.Config{
		ID:            raftID(cfg.NodeID()),
		Peers:         peers,
		Dir:           filepath.Join(cfg.DataDir(), MetadataDir),
		ClusterID:     clusterID,
		Logger:        logger,
		TickInterval:  time.Duration(cfg.Int64("controller.quorum.tick.ms")) * time.Millisecond,
		ElectionTicks: int(cfg.Int64("controller.quorum.election.timeout.ms") / max(cfg.Int64("controller.quorum.tick.ms"), 1)),
		StateMachine:  s.loader,
	}
	if len(voters) > 1 {
		wrap, dial, err := s.quorumTLS(logger)
		if err != nil {
			return err
		}
		qcfg.Listener, qcfg.Dial = wrap(s.ctrlLn), dial
		s.ctrlLn = nil // the quorum owns the socket from here
	}
	q, err := quorum.New(qcfg)
	if err != nil {
		if qcfg.Listener != nil {
			qcfg.Listener.Close()
		}
		return fmt.Errorf("metadata quorum: %w", err)
	}
	s.quorum = q
	go func() {
		<-q.Failed()
		err := q.Err()
		var se *quorum.StorageError
		switch {
		case err == nil || errors.Is(err, quorum.ErrStopped):
		case errors.As(err, &se):
			// Kafka halts a node whose metadata log directory fails;
			// this one stops too (raft cannot go on without persisting
			// what it promises), through the clean shutdown, which
			// moves its leaderships first.
			err = fmt.Errorf("%w: %s", err, metadataLogAdvice)
			s.metaFailed.Store(true)
			s.log.Error("stopping: the metadata log cannot be written", "dir", se.Dir, "err", se.Err, "action", metadataLogAdvice)
			s.fail(err)
		default:
			s.log.Error("stopping: the metadata quorum stopped", "err", err)
			s.fail(err)
		}
	}()
	qa := quorumAdapter{q}
	s.quorumView = qa
	s.ctrl.Attach(qa)
	if err := q.Start(); err != nil {
		return fmt.Errorf("metadata quorum: %w", err)
	}
	return nil
}

// onRegistered runs once this broker's registration is in its image: the
// image has caught up at least that far, so logs of topics it no longer
// has can go, the partition manager starts following the image (a loader
// publisher from now on), and a node that is its own quorum creates
// __consumer_offsets.
func (s *Server) onRegistered() {
	if err := s.parts.RemoveStray(s.loader.Image()); err != nil {
		s.log.Warn("removing logs of deleted topics", "err", err)
	}
	s.loader.Register(s.parts)
	// Serve clients only once the partitions follow the image this broker
	// registered in (a long log recovery here delays the heartbeats; the
	// controller may fence the broker meanwhile, as Kafka's would).
	s.parts.WaitApplied(s.loader.Image().Offset, 30*time.Second)
	if s.single {
		s.ensureOffsetsTopicNow()
	}
}

// ensureOffsetsTopic creates __consumer_offsets in the background if it
// does not exist yet (FindCoordinator calls it, as Kafka creates the topic
// on first use, once the brokers are up to spread it over).
func (s *Server) ensureOffsetsTopic() {
	if s.loader.Image().Topics[broker.OffsetsTopic] != nil || !s.creatingOffsets.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.creatingOffsets.Store(false)
		s.ensureOffsetsTopicNow()
	}()
}

func (s *Server) ensureOffsetsTopicNow() {
	if s.loader.Image().Topics[broker.OffsetsTopic] != nil {
		return
	}
	req := offsetsTopic(s.groups.NumPartitions(), s.cfg.String("offsets.topic.segment.bytes"))
	req.ReplicationFactor = s.internalReplicationFactor("offsets.topic.replication.factor")
	res := s.link.CreateTopics([]controller.CreateTopic{req}, false)
	if err := res[0].Err; err != nil && !errors.Is(err, controller.ErrTopicExists) {
		s.log.Warn("create "+broker.OffsetsTopic, "err", err)
	}
}

// internalReplicationFactor is the replication factor of an internal topic:
// the broker setting key (default 3), or the number of brokers the cluster
// is configured with when that is fewer, so a single node needs no
// config. The cluster's size is the number of brokers ever registered, or
// the number of voters when this node is a combined broker and
// controller; brokers that have not registered yet make the creation fail
// (INVALID_REPLICATION_FACTOR, retried at the next FindCoordinator) rather
// than leave the topic with fewer replicas for good, as Kafka does.
func (s *Server) internalReplicationFactor(key string) int16 {
	want := int16(s.cfg.Int64(key))
	if s.single {
		return 1
	}
	size := len(s.loader.Image().Brokers)
	if s.roles.broker && s.roles.controller {
		size = max(size, s.voters)
	}
	return min(want, int16(max(size, 1)))
}

// metadataLogAdvice is what to do about a metadata log that cannot be
// written: the node exits, and its next start recovers the log.
const metadataLogAdvice = "free space on (or repair) that disk and start the node again: " +
	"its metadata log is recovered up to the last whole write and it catches up from the quorum; " +
	"nothing it acknowledged is lost"

// Fatal delivers the error that makes the node stop on its own; the
// caller shuts it down (Shutdown) and exits non-zero.
func (s *Server) Fatal() <-chan error { return s.fatal }

// fail hands the first error that stops the node on its own to Fatal.
func (s *Server) fail(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// Addr is the bound listener address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// FetchSessions describes the broker's incremental fetch session cache.
func (s *Server) FetchSessions() fetchsession.Stats { return s.broker.FetchSessions() }

// Shutdown stops accepting, finishes in-flight requests (until ctx ends),
// then flushes and closes every log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("shutting down")
	s.stopping.Store(true)
	// No heartbeat may unfence this broker once it has asked to stop.
	s.stopLife()
	switch {
	case s.single:
	case s.metaFailed.Load():
		// Ask for the leaderships to move, but do not wait to see it:
		// this node's metadata image stopped with its log. If this node
		// was the active controller there is nobody to ask until the
		// others elect one, which fences it after its session.
		if s.link.IsActive() {
			break
		}
		if err := s.link.RequestShutdown(); err != nil {
			s.log.Warn("controlled shutdown", "err", err)
		}
	default:
		if err := s.link.ControlledShutdown(); err != nil {
			s.log.Warn("controlled shutdown", "err", err)
		}
	}
	s.broker.Stop()
	// Waiting joins and syncs are in-flight requests: answer them
	// (NOT_COORDINATOR) so the network can drain.
	s.groups.Close()
	s.tx.close()
	netErr := s.net.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	err := errors.Join(netErr, s.closeStorage(s.link.Epoch()))
	if err == nil {
		s.log.Info("shut down cleanly")
	}
	return err
}

// closeStorage closes the logs, the quorum and the data dir. If every
// partition log closed (flushed) and epoch is a registration epoch, it
// records a clean shutdown for the next start (cleanshutdown.go).
func (s *Server) closeStorage(epoch int64) error {
	var errs []error
	if s.net == nil {
		for _, l := range s.lns {
			l.ln.Close()
		}
	}
	if s.loader != nil {
		s.loader.Close() // no delta reaches the partitions from here on
	}
	if s.parts != nil {
		err := s.parts.Close()
		errs = append(errs, err)
		if err == nil && epoch >= 0 {
			if werr := writeCleanShutdown(s.cfg.DataDir(), epoch); werr != nil {
				s.log.Warn("record the clean shutdown (the next start counts as after an unclean one)", "err", werr)
			}
		}
	}
	if s.rpc != nil {
		s.rpc.Close()
	}
	if s.quorum != nil {
		errs = append(errs, s.quorum.Stop())
	}
	if s.observer != nil {
		errs = append(errs, s.observer.Stop())
	}
	if s.ctrlLn != nil {
		s.ctrlLn.Close()
	}
	if s.http != nil {
		s.http.Close()
	}
	for _, e := range s.sec.jwks {
		e.Close()
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return errors.Join(errs...)
}

// lockDir takes an exclusive flock on DIR/.lock so two nodes never share a
// data directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another strata process (lock: %w)", dir, err)
	}
	return f, nil
}

// unregisteredFile marks a data dir formatted by a start that has not
// registered with the controller yet (meta.properties is written first).
const unregisteredFile = "meta.properties.unregistered"

// inUse reports whether another process holds dir's lock (lockDir),
// without creating anything.
func inUse(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// checkMetaProperties reads DIR/meta.properties, creating it on first start
// with want as the cluster id (a new random one if want is empty), and
// checks the node id and, when want is set, the cluster id. It returns the
// cluster id, and whether the dir is fresh: formatted by this start or by
// one that never registered (unregisteredFile is there until the first
// registration, see markRegistered).
func checkMetaProperties(dir string, nodeID int32, want string) (clusterID string, fresh bool, err error) {
	path := filepath.Join(dir, "meta.properties")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		clusterID := want
		if clusterID == "" {
			var id [16]byte
			if _, err := rand.Read(id[:]); err != nil {
				return "", false, err
			}
			clusterID = base64.RawURLEncoding.EncodeToString(id[:])
		}
		if err := writeFileSync(filepath.Join(dir, unregisteredFile), nil); err != nil {
			return "", false, fmt.Errorf("write %s: %w", unregisteredFile, err)
		}
		body := fmt.Sprintf("#\n#%s\nversion=1\ncluster.id=%s\nnode.id=%d\n", time.Now().UTC().Format(time.RFC3339), clusterID, nodeID)
		if err := writeFileSync(path, []byte(body)); err != nil {
			return "", false, fmt.Errorf("write meta.properties: %w", err)
		}
		if err := syncDir(dir); err != nil {
			return "", false, err
		}
		return clusterID, true, nil
	} else if err != nil {
		return "", false, fmt.Errorf("read meta.properties: %w", err)
	}
	defer f.Close()
	props, err := config.ParseProperties(f)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", path, err)
	}
	if n, err := strconv.Atoi(props["node.id"]); err != nil || int32(n) != nodeID {
		return "", false, fmt.Errorf("%s says node.id=%s but this node is configured as %d; use the right data dir or node id", path, props["node.id"], nodeID)
	}
	if props["cluster.id"] == "" {
		return "", false, fmt.Errorf("%s has no cluster.id", path)
	}
	if want != "" && props["cluster.id"] != want {
		return "", false, fmt.Errorf("%s belongs to cluster %s, but this node is configured for cluster %s (another cluster's data dir, or a changed controller quorum); refusing to start",
			path, props["cluster.id"], want)
	}
	_, err = os.Stat(filepath.Join(dir, unregisteredFile))
	return props["cluster.id"], err == nil, nil
}

// ensureDirectoryID returns the directory.id of dir's meta.properties
// (Kafka's meta.properties v1 field, KIP-858: the log directory's id in
// broker registrations and heartbeats), adding a new random one to a file
// without it.
func ensureDirectoryID(dir string) (metadata.UUID, error) {
	path := filepath.Join(dir, "meta.properties")
	body, err := os.ReadFile(path)
	if err != nil {
		return metadata.UUID{}, fmt.Errorf("read meta.properties: %w", err)
	}
	props, err := config.ParseProperties(bytes.NewReader(body))
	if err != nil {
		return metadata.UUID{}, fmt.Errorf("%s: %w", path, err)
	}
	if v := props["directory.id"]; v != "" {
		var id metadata.UUID
		if err := id.UnmarshalText([]byte(v)); err != nil || id.IsZero() {
			return metadata.UUID{}, fmt.Errorf("%s: directory.id %q is not a directory id (16 bytes, base64url); remove the line to get a new one", path, v)
		}
		return id, nil
	}
	id := metadata.NewUUID()
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	body = fmt.Appendf(body, "directory.id=%s\n", id)
	if err := writeFileSync(path, body); err != nil {
		return metadata.UUID{}, fmt.Errorf("write meta.properties: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return metadata.UUID{}, err
	}
	return id, nil
}

// markRegistered removes unregisteredFile: the data dir belongs to the
// node id it registered as.
func markRegistered(dir string) error {
	err := os.Remove(filepath.Join(dir, unregisteredFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// ValidateClusterID checks a configured cluster id (config.CheckClusterID;
// LoadBroker checks it too, but Start may be given any *config.Broker).
func ValidateClusterID(id string) error {
	if err := config.CheckClusterID(id); err != nil {
		return fmt.Errorf("cluster.id (--cluster-id) %q: %w", id, err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// cleanerConfig maps Kafka's log.cleaner.* broker settings to the cleaner's.
func cleanerConfig(cfg *config.Broker) storage.CleanerConfig {
	c := storage.CleanerConfig{
		Disabled:      !cfg.Bool("log.cleaner.enable"),
		Interval:      time.Duration(cfg.Int64("log.cleaner.backoff.ms")) * time.Millisecond,
		MaxMapEntries: int(float64(cfg.Int64("log.cleaner.dedupe.buffer.size")) / 24 * 0.9),
	}
	if c.Interval <= 0 {
		c.Interval = time.Millisecond
	}
	if rate := cfg.Float64("log.cleaner.io.max.bytes.per.second"); rate < 1e300 {
		c.IOBytesPerSecond = rate
	}
	return c
}
