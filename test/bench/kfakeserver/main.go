package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kfakeserver:", err)
		os.Exit(1)
	}
}

func run() error {
	port := flag.Int("port", 9092, "TCP port to listen on (loopback)")
	dataDir := flag.String("data-dir", "", "directory for kfake's persisted state (required)")
	syncWrites := flag.Bool("sync-writes", false, "fsync every batch (kfake.SyncWrites)")
	flag.Parse()
	if *dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.DataDir(*dataDir),
	}
	if *syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake on port %d: %w", *port, err)
	}
	defer c.Close()
	for _, a := range c.ListenAddrs() {
		fmt.Println(a)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	return nil
}
