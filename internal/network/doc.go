// Package network owns the Kafka listeners: accepting connections, framing
// (4-byte size prefix, max request size enforced before allocating), reading
// requests in order per connection, and writing responses back in request
// order even when handlers finish out of order. Responses are lists of chunks:
// byte slices written with writev, and file regions written with sendfile
// (explicit offsets, no shared file position).
//
// It knows nothing of Kafka API keys beyond the request header's first fields;
// decoding belongs to the Handler (internal/broker). It imports only the
// standard library and golang.org/x/sys/unix.
package network
