// Package metadata defines the cluster metadata records (topics, partitions,
// configs, producer-id blocks, brokers), their encoding in the
// __cluster_metadata log, and the immutable Image those records build.
//
// Readers take an *Image and never lock: applying records produces a new
// Image that shares untouched parts with the old one. The Log interface is
// how the controller commits records; in a single node it is a local log
// (internal/controller), and a Raft quorum later.
//
// It imports only the standard library.
package metadata
