// Package kclient is a minimal Kafka-protocol client for traffic between
// Strata nodes: the broker-to-controller channel (registration, heartbeats,
// AlterPartition, forwarded admin requests) and followers fetching from
// partition leaders. It frames kmsg requests and decodes their responses;
// it knows nothing of what they mean. On a SASL listener it authenticates
// its connections and re-authenticates them before their sessions end
// (KIP-368), between requests.
//
// It imports only the standard library and franz-go's kmsg, kerr and sasl
// (the mechanism interface; the server wiring supplies the mechanism).
package kclient
