// Package cli implements the strata command-line tools (topic, produce,
// consume, group, cluster, perf) on franz-go's kgo and kadm. They talk to any
// Kafka-compatible cluster, Strata or not.
package cli
