package server

import (
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/replication"
	"github.com/stratalog/strata/internal/storage"
)

// MetadataDir is the directory of the __cluster_metadata log in the data dir.
const MetadataDir = "__cluster_metadata-0"

// Server is one running Strata node.
type Server struct {
	cfg    *config.Broker
	log    *slog.Logger
	lock   *os.File
	meta   *controller.LocalLog
	ctrl   *controller.Controller
	parts  *replication.Manager
	groups *group.Coordinator
	// groupLoads moves group partitions with __consumer_offsets leadership.
	groupLoads *groupLoader
	broker     *broker.Broker
	net        *network.Server
	ln         net.Listener

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	serveErr chan error
}

// Start builds and starts a node. On error everything opened is closed.
func Start(cfg *config.Broker, logger *slog.Logger) (_ *Server, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: logger.With("component", "server"), serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.closeStorage()
		}
	}()
	dir := cfg.DataDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	clusterID, err := checkMetaProperties(dir, cfg.NodeID())
	if err != nil {
		return nil, err
	}
	if s.meta, err = controller.OpenLocalLog(filepath.Join(dir, MetadataDir), logger.With("component", "metadata-log")); err != nil {
		return nil, err
	}
	s.ctrl, err = controller.New(s.meta, controller.Options{
		NodeID:                   cfg.NodeID(),
		Static:                   cfg,
		Logger:                   logger.With("component", "controller"),
		DefaultPartitions:        int32(cfg.Int64("num.partitions")),
		DefaultReplicationFactor: int16(cfg.Int64("default.replication.factor")),
		DeleteTopicEnable:        cfg.Bool("delete.topic.enable"),
		InternalTopics:           map[string]bool{"__cluster_metadata": true, broker.OffsetsTopic: true},
	})
	if err != nil {
		return nil, err
	}

	s.ln, err = net.Listen("tcp", cfg.Listen())
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen(), err)
	}
	host, port, err := advertised(cfg, s.ln.Addr())
	if err != nil {
		return nil, err
	}
	if _, err := s.ctrl.Bootstrap(clusterID, host, port, nil); err != nil {
		return nil, fmt.Errorf("register broker: %w", err)
	}

	s.parts = replication.NewManager(replication.Options{
		NodeID:   cfg.NodeID(),
		DataDir:  dir,
		Static:   cfg,
		Logger:   logger,
		Reserved: map[string]bool{MetadataDir: true},
		Cleaner:  cleanerConfig(cfg),
	})
	s.ctrl.Subscribe(s.parts.Apply)
	if err := s.parts.RemoveStray(s.ctrl.Image()); err != nil {
		s.log.Warn("removing logs of deleted topics", "err", err)
	}

	if err := s.startGroups(logger); err != nil {
		return nil, err
	}
	s.broker = broker.New(broker.Options{
		NodeID:     cfg.NodeID(),
		Static:     cfg,
		Controller: s.ctrl,
		Partitions: s.parts,
		Groups:     s.groups,
		Logger:     logger,
	})
	s.net = network.New(network.Config{
		MaxRequestSize: int32(cfg.Int64("socket.request.max.bytes")),
		Logger:         logger.With("component", "network"),
	}, s.broker)

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		s.groups.Run(ctx, groupTick)
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
		s.serveErr <- s.net.Serve(s.ln)
	}()
	s.log.Info("strata started", "listen", s.ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))),
		"data_dir", dir, "node_id", cfg.NodeID(), "cluster_id", s.ctrl.Image().ClusterID, "fsync", cfg.String("log.fsync"))
	return s, nil
}

// Addr is the bound listener address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops accepting, finishes in-flight requests (until ctx ends),
// then flushes and closes every log.
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("shutting down")
	s.broker.Stop()
	// Waiting joins and syncs are in-flight requests: answer them
	// (NOT_COORDINATOR) so the network can drain.
	s.groups.Close()
	netErr := s.net.Shutdown(ctx)
	s.cancel()
	s.wg.Wait()
	err := errors.Join(netErr, s.closeStorage())
	if err == nil {
		s.log.Info("shut down cleanly")
	}
	return err
}

func (s *Server) closeStorage() error {
	var errs []error
	if s.ln != nil && s.net == nil {
		s.ln.Close()
	}
	if s.parts != nil {
		errs = append(errs, s.parts.Close())
	}
	if s.meta != nil {
		errs = append(errs, s.meta.Close())
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

// checkMetaProperties reads DIR/meta.properties, creating it with a new
// cluster id on first start, and checks the node id. It returns the cluster
// id.
func checkMetaProperties(dir string, nodeID int32) (string, error) {
	path := filepath.Join(dir, "meta.properties")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return "", err
		}
		clusterID := base64.RawURLEncoding.EncodeToString(id[:])
		body := fmt.Sprintf("#\n#%s\nversion=1\ncluster.id=%s\nnode.id=%d\n", time.Now().UTC().Format(time.RFC3339), clusterID, nodeID)
		if err := writeFileSync(path, []byte(body)); err != nil {
			return "", fmt.Errorf("write meta.properties: %w", err)
		}
		return clusterID, nil
	} else if err != nil {
		return "", fmt.Errorf("read meta.properties: %w", err)
	}
	defer f.Close()
	props, err := config.ParseProperties(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if n, err := strconv.Atoi(props["node.id"]); err != nil || int32(n) != nodeID {
		return "", fmt.Errorf("%s says node.id=%s but this node is configured as %d; use the right data dir or node id", path, props["node.id"], nodeID)
	}
	if props["cluster.id"] == "" {
		return "", fmt.Errorf("%s has no cluster.id", path)
	}
	return props["cluster.id"], nil
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

// advertised returns the host and port clients should connect to: the
// advertised address if set, else the bound address (an unspecified host
// becomes localhost; port 0 becomes the bound port).
func advertised(cfg *config.Broker, bound net.Addr) (string, int32, error) {
	addr := cfg.Advertised()
	host, port, err := broker.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	if port == 0 {
		_, bp, err := broker.SplitHostPort(bound.String())
		if err != nil {
			return "", 0, err
		}
		port = bp
	}
	return strings.Trim(host, "[]"), port, nil
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
