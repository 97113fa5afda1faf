// Command kfakeserver runs franz-go's in-process fake Kafka (pkg/kfake) as a
// standalone process, persisting to a data directory, so that
// scripts/bench.sh can measure it exactly like a real broker: same client,
// same settings, its own PID for CPU accounting.
//
// By default it runs one broker on --port. With --ports A,B,C it runs
// kfake.NumBrokers(3), one listener per port, all in this one process
// (scripts/bench-replication.sh). kfake's replication factor is metadata
// only: each partition has one copy of its data (in memory and in one
// segment file under --data-dir), owned by a leader picked at random among
// the brokers; Metadata lists rf replicas starting at the leader and reports
// all of them in the ISR. Nothing is copied between brokers and acks=all is
// answered like acks=1.
//
// It creates no topics; the load generator creates them through the admin
// API. It prints its listen address on stdout and runs until SIGINT or
// SIGTERM.
//
// It imports only franz-go's kfake and the standard library.
package main
