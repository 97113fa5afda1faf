// Package brokerlink is the broker-to-controller channel (Kafka's
// NodeToControllerChannelManager and BrokerLifecycleManager): how a node's
// broker reaches the active controller, wherever it runs.
//
// Link is the controller as the broker sees it (broker.Controller): the
// local controller when this node is the active one; otherwise the writes
// the broker itself needs (auto-created topics, producer id blocks, its
// registration and heartbeats, ISR changes) go to the active controller
// over its Kafka listener (internal/kclient), and clients' admin requests
// are relayed whole (ForwardRequest). Lifecycle keeps the broker
// registered and heartbeating and, on the active controller, runs its
// periodic duties; ControlledShutdown moves this broker's leaderships away
// before it stops. ISR carries partition leaders' ISR changes
// (replication.Controller).
//
// The channel speaks one error vocabulary: a Kafka error code from the
// active controller comes back as the controller's error (controller.Err*,
// config.ErrInvalid) wrapping the Kafka error, so callers test errors.Is
// against the same sentinels wherever the request was served, and
// internal/broker answers clients with the same code. A code without a
// sentinel comes back as ErrRemote.
//
// It imports internal/controller, internal/metadata, internal/kclient,
// internal/replication (the ISR interface) and internal/broker (the
// interface it implements and the inter-broker client id); never
// internal/server.
package brokerlink
