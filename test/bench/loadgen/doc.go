// Command loadgen is the franz-go load generator behind scripts/bench.sh.
//
// Against one broker address it creates a topic (through kadm), then runs two
// phases with the same client settings whatever the broker is:
//
//  1. produce: a kgo producer writes --bytes (or --records) of fixed-size,
//     keyless records as fast as the broker accepts them, and records each
//     record's latency from the Produce call to its promise callback;
//  2. consume: a fresh kgo consumer (no group) reads the whole topic from the
//     start and counts records and bytes.
//
// It prints one JSON line on stdout with throughput (MB = 10^6 bytes of
// record values), produce latency percentiles and the bytes moved; progress
// goes to stderr. `loadgen --free-port` prints a free loopback TCP port and
// exits, for the script to pick broker ports.
//
// It imports only franz-go (kgo, kadm) and the standard library.
package main
