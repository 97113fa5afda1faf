// Command loadgen is the franz-go load generator behind scripts/bench.sh.
//
// Against one or more broker addresses it creates a topic (through kadm, with
// --partitions and --rf, retrying while a new cluster is still registering
// its brokers), then runs two phases with the same client settings whatever
// the broker is:
//
//  1. produce: a kgo producer writes --bytes (or --records) of fixed-size,
//     keyless records as fast as the broker accepts them, and records each
//     record's latency from the Produce call to its promise callback. With
//     --rate R it is open loop instead: record i is due at start + i/R, is
//     handed to the client no earlier, and its latency counts from its due
//     time (so a stalled broker shows as latency, not as a lower rate);
//  2. consume: a fresh kgo consumer (no group) reads the whole topic from the
//     start and counts records and bytes (skipped with --consume=false).
//
// Before the produce phase it produces one record per partition and waits for
// their acknowledgements (--warmup, on by default; not counted anywhere but in
// warmup_ms): a new topic's followers may not be fetching yet, and the time
// until they are is reported rather than mixed into the measurement.
//
// Latency percentiles are exact (every record's latency is kept and sorted);
// --latency-file writes every record's send (or due) time and latency.
// --free-ports N prints N distinct free loopback ports on one line.
// --broker-pid takes a comma-separated list; the brokers' CPU ticks are summed.
//
// It prints one JSON line on stdout with throughput (MB = 10^6 bytes of
// record values), produce latency percentiles and the bytes moved; progress
// goes to stderr. `loadgen --free-port` prints a free loopback TCP port and
// exits, for the script to pick broker ports.
//
// It imports only franz-go (kgo, kadm) and the standard library.
package main
