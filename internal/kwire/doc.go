// Package kwire hand-encodes the few Kafka responses that carry record bytes
// straight from segment files, for the zero-copy path.
//
// kmsg (franz-go) is the codec for every request and response, but its
// encoders append everything, record batches included, into one output
// buffer. To send a Fetch response's records from the segment files with
// sendfile, the broker needs the response's framing bytes (header, topic and
// partition fields, length prefixes, tagged fields) separately from the
// record regions. EncodeFetchResponse produces exactly the bytes kmsg would,
// as a list of network.Chunks: framing bytes sliced from one buffer,
// interleaved with the caller's record chunks (file regions or bytes).
//
// Its tests check byte-for-byte equality with kmsg for every Fetch version
// kmsg knows, so when kmsg gains a Fetch version, the tests say whether this
// encoder must learn it too.
//
// It imports kmsg and internal/network only.
package kwire
