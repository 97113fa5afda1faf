// Package cluster holds process-level tests of multi-node clusters: real
// strata processes on loopback forming one metadata quorum, driven by
// franz-go (and kcat when installed), with nodes killed, stopped and
// restarted under them.
//
// Run with STRATA_BIN pointing at a built binary (make cluster does this);
// without it the tests build one.
package cluster
