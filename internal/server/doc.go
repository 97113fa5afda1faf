// Package server is the composition root: it builds every part of a broker
// from its configuration, starts them in order (data-dir lock,
// meta.properties, metadata loader and quorum, controller on a voter, the
// broker-to-controller channel, partition logs, broker, listener) and stops
// them in reverse (stop accepting, answer in-flight requests, flush and
// close logs). Nothing imports it but cmd/strata and tests.
package server
