// Command manyparts measures a broker with many partitions on one node
// (issue 14): it starts the broker binary itself (so it can restart it and
// kill it), and prints, for one run:
//
//   - base: RSS and open file descriptors of the fresh broker (no topics);
//   - few: produce throughput to one topic of --few-partitions partitions
//     (the same client settings as the many-partition phase), the reference
//     the many-partition figure is compared to;
//   - create: the time to create --topics topics of --partitions partitions
//     each (in CreateTopics requests of at most 10,000 partitions, Kafka's
//     controller.max.records.per.batch), until Metadata shows every
//     partition with a leader; RSS and open fds after it, and RSS per idle partition
//     ((RSS after create - RSS just before it) / partitions; the Go heap's
//     garbage collection makes this a rough figure);
//   - produce: throughput of --bytes of --record-size records spread
//     round-robin over every partition of every topic (record i goes to
//     topic i mod T, partition (i / T) mod P), acks=all, with broker CPU per
//     GB, RSS and open fds afterwards;
//   - restart: SIGTERM, then the time from starting the broker again until it
//     serves every partition: Metadata lists them all with a leader and
//     ListOffsets (latest) answers for every one with the end offset it had
//     (the record counts are checked, so a lost record fails the run);
//   - kill9: one more record acknowledged on every partition, kill -9, then
//     the same measurement, the counts including those records.
//
// Open fds are the entries of /proc/PID/fd, RSS is VmRSS of /proc/PID/status
// and CPU is utime+stime of /proc/PID/stat. With --pprof-dir it saves CPU
// profiles of the create, produce and restart phases from the broker's
// /debug/pprof (on --http-listen).
//
// The produce phase also reports the client's own CPU (this process's
// rusage, i.e. franz-go) per GB, and how long the warm-up took (one record
// to every partition: the first write of each log, which creates it).
// --broker-cpus and --client-cpus pin the broker and this program to
// different CPUs (taskset), so that a throughput is the broker's or the
// client's, which the CPU figures tell apart. --kind kfake or klite runs
// the few/create/produce phases against test/bench/kfakeserver (use
// --broker-args=--in-memory: kfake's persistence fails at 10,000
// partitions) or a klite binary instead; the load average is printed with
// every phase.
//
// --gen raw replaces franz-go's producer in the few and produce phases by
// a generator cheap enough that the broker is the bottleneck (rawgen.go):
// one record batch of --batch-records (--few-batch-records) records of
// --record-size bytes, built and checksummed once (no producer id, so the
// same bytes are valid for every partition and every request); ProduceRequests of up to
// --parts-per-request such batches, built once with kmsg (the highest
// Produce version from 9 to --raw-max-version the broker lists), written
// as bytes with only the correlation id patched in, over --raw-conns
// connections with --raw-inflight requests in flight on each, acks
// --acks (-1 or 1). Every response is parsed and checked: each
// partition of the request answered with error code 0 (any error ends
// the run with it), and the acknowledged records counted per partition.
// After each phase it verifies what the broker stored: every partition's
// end offset (ListOffsets) equals the acknowledged count, and
// --verify-partitions partitions, spread evenly, read back from offset 0
// hold exactly that many records at consecutive offsets, each with the
// generator's value (this replaces --fetch, which can still be asked
// for). The client CPU per GB is then the generator's own.
//
// It prints a table on stderr as it goes and one JSON line on stdout.
// It imports only franz-go (kgo, kadm, kerr, kmsg) and the standard library.
package main
