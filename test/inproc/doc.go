// Package inproc runs multi-node Strata clusters inside the test process
// (internal/server.Start per node, each with its own data dir and loopback
// ports) and drives them with franz-go: replication tests that need no
// binary and fit `make unit`.
package inproc
