// Package kclient is a minimal Kafka-protocol client for traffic between
// Strata nodes: the broker-to-controller channel (registration, heartbeats,
// AlterPartition, forwarded admin requests) and followers fetching from
// partition leaders. It frames kmsg requests and decodes their responses;
// it knows nothing of what they mean.
//
// It imports only the standard library and franz-go's kmsg.
package kclient
