// Command kfakeserver runs franz-go's in-process fake Kafka (pkg/kfake) as a
// standalone single-broker process, persisting to a data directory, so that
// scripts/bench.sh can measure it exactly like a real broker: same client,
// same settings, its own PID for CPU accounting.
//
// It creates no topics; the load generator creates them through the admin
// API. It prints its listen address on stdout and runs until SIGINT or
// SIGTERM.
//
// It imports only franz-go's kfake and the standard library.
package main
