package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/server"
)

func serveCommand() *cobra.Command {
	var (
		configFile string
		sets       []string
		logLevel   string
		logFormat  string
	)
	// Each flag maps to a broker config key; only flags given on the
	// command line override the file and the environment.
	flagKeys := map[string]string{
		"listen":              "listen",
		"advertised-address":  "advertised.address",
		"data-dir":            "data.dir",
		"node-id":             "node.id",
		"num-partitions":      "num.partitions",
		"auto-create-topics":  "auto.create.topics.enable",
		"log-retention-ms":    "log.retention.ms",
		"log-retention-bytes": "log.retention.bytes",
		"max-request-size":    "socket.request.max.bytes",
		"fsync":               "log.fsync",
		"controller-quorum":   "controller.quorum.voters",
		"controller-listen":   "controller.listen",
		"cluster-id":          "cluster.id",
		"rack":                "broker.rack",
		"http-listen":         "http.listen",
	}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Strata broker (single node by default: localhost:9092, data in ./data)",
		Long: `Run a Strata broker. With no flags it listens on localhost:9092, keeps its
data in ./data and is a complete single-node cluster.

Settings come from built-in defaults, then --config (a Kafka-style properties
file), then STRATA_* environment variables (STRATA_LISTEN, STRATA_DATA_DIR,
STRATA_FSYNC, or any key as STRATA_<KEY_WITH_UNDERSCORES>), then flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			overrides := map[string]string{}
			// --debug-addr is the old name of --http-listen (pprof is
			// served there); the new name wins when both are given.
			if f := cmd.Flags().Lookup("debug-addr"); f.Changed {
				overrides["http.listen"] = f.Value.String()
			}
			for flag, key := range flagKeys {
				if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
					overrides[key] = f.Value.String()
				}
			}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("--set %q: want key=value", kv)
				}
				overrides[k] = v
			}
			cfg, err := config.LoadBroker(configFile, os.Environ(), overrides)
			if err != nil {
				return err
			}
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			if w := cfg.Warnings(); len(w) > 0 {
				logger.Warn("ignoring Kafka settings that mean nothing in Strata", "settings", strings.Join(w, "; "))
			}
			for _, w := range cfg.EnvWarnings() {
				logger.Warn("ignoring an environment variable", "problem", w)
			}
			return runServer(cfg, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "properties file with broker settings")
	f.String("listen", "localhost:9092", "host:port to listen on")
	f.String("advertised-address", "", "host:port clients connect to (default: the listen address)")
	f.String("data-dir", "./data", "directory for partition logs and metadata")
	f.Int32("node-id", 1, "node id")
	f.Int32("num-partitions", 1, "partitions of auto-created topics")
	f.Bool("auto-create-topics", true, "create unknown topics when clients ask for their metadata")
	f.Int64("log-retention-ms", 604800000, "default retention.ms of topics (-1: forever)")
	f.Int64("log-retention-bytes", -1, "default retention.bytes per partition (-1: unlimited)")
	f.Int32("max-request-size", 104857600, "largest request accepted, in bytes")
	f.String("fsync", config.FsyncInterval, "always: fsync before acknowledging (group commit); interval: page cache plus flush.messages/flush.ms")
	f.String("controller-quorum", "", "the metadata quorum's voters, id@host:port,... (their controller listeners); empty: this node alone")
	f.String("controller-listen", "", "host:port of this node's controller listener (Raft), when part of a multi-node quorum")
	f.String("cluster-id", "", "the cluster id (default: random for a single node, derived from --controller-quorum for a cluster)")
	f.String("rack", "", "this broker's rack, for rack-aware placement")
	f.StringArrayVar(&sets, "set", nil, "any broker setting as key=value (repeatable)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	f.String("http-listen", "localhost:9644", "host:port of the HTTP listener: /metrics, /healthz, /readyz, /debug/pprof (empty: off)")
	f.String("debug-addr", "", "old name of --http-listen")
	_ = f.MarkDeprecated("debug-addr", "use --http-listen (it serves /debug/pprof too)")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runServer(cfg *config.Broker, logger *slog.Logger) error {
	srv, err := server.Start(cfg, logger)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var fatal error
	select {
	case sig := <-sigs:
		logger.Info("signal received; stopping", "signal", sig.String())
	case fatal = <-srv.Fatal():
	}
	timeout := time.Duration(cfg.Int64("shutdown.timeout.ms")) * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	go func() {
		<-sigs
		logger.Warn("second signal: exiting without a clean shutdown")
		os.Exit(130)
	}()
	if err := srv.Shutdown(ctx); err != nil && fatal == nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return fatal
}
