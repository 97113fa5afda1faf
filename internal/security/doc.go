// Package security holds what authentication needs below the protocol
// handlers: TLS configurations built from Kafka's PEM keys (with reload
// when the files change), ssl.principal.mapping.rules, and the SASL
// mechanisms' server (and client) state machines: PLAIN, SCRAM-SHA-256/512
// and OAUTHBEARER, with its token validators (unsecured JWS; signed JWTs
// against a JWKS read from a file or fetched over https and refreshed in
// the background) and Kafka's default unsecured login token.
// It knows nothing of Kafka requests; internal/broker drives the SASL
// exchanges and internal/network the TLS handshakes. It imports only the
// standard library.
package security
