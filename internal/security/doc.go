// Package security holds what authentication needs below the protocol
// handlers: TLS configurations built from Kafka's PEM keys (with reload
// when the files change), ssl.principal.mapping.rules, and the SASL
// mechanisms' server (and client) state machines: PLAIN and SCRAM-SHA-256/512.
// It knows nothing of Kafka requests; internal/broker drives the SASL
// exchanges and internal/network the TLS handshakes. It imports only the
// standard library.
package security
