// Package broker translates the Kafka protocol to the domain: it parses
// request headers, decodes bodies with kmsg, dispatches to one handler per API
// key (one file each: produce.go, fetch.go, ...), maps domain errors to Kafka
// error codes, and encodes responses. The ApiVersions answer is built from the
// handlers registered in registry.go.
//
// It imports the domain packages (controller, replication, storage, record,
// metadata, config) through small interfaces where it can, plus kmsg/kerr and
// internal/network and internal/kwire for the wire.
package broker
