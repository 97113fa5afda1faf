// Package network owns the Kafka listeners: accepting connections, framing
// (4-byte size prefix, max request size enforced before allocating), reading
// requests in order per connection, and writing responses back in request
// order even when handlers finish out of order. Responses are lists of chunks:
// byte slices written with writev, and file regions written with sendfile
// (explicit offsets, no shared file position).
//
// Listeners have a security protocol (listener.go): SSL ones run the TLS
// handshake, and a connection records who it is authenticated as
// (auth.go); on a SASL listener the size limit is sasl.server.max.receive.size
// until it has. A broker-wide memory budget (memory.go,
// queued.max.request.bytes) bounds the bytes held by requests being read.
//
// It knows nothing of Kafka API keys beyond the request header's first fields;
// decoding belongs to the Handler (internal/broker). It imports only the
// standard library and golang.org/x/sys/unix.
package network
