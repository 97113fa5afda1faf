package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
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
	port := flag.Int("port", 9092, "TCP port to listen on (loopback), for a single broker")
	portList := flag.String("ports", "", "comma-separated TCP ports: one in-process broker on each (kfake.NumBrokers(len)); overrides --port")
	dataDir := flag.String("data-dir", "", "directory for kfake's persisted state (required)")
	syncWrites := flag.Bool("sync-writes", false, "fsync every batch (kfake.SyncWrites)")
	inMemory := flag.Bool("in-memory", false, "keep everything in memory and ignore --data-dir (kfake's persistence fails with 10,000 partitions)")
	flag.Parse()
	if *dataDir == "" && !*inMemory {
		return fmt.Errorf("--data-dir is required")
	}
	ports := []int{*port}
	if *portList != "" {
		ports = ports[:0]
		for _, f := range strings.Split(*portList, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || p <= 0 {
				return fmt.Errorf("--ports %q: want comma-separated TCP ports", *portList)
			}
			ports = append(ports, p)
		}
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
	}
	if !*inMemory {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *syncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start kfake on ports %v: %w", ports, err)
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
