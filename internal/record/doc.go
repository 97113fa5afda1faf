// Package record understands Kafka record batches (message format v2, magic 2):
// parsing and validating the 61-byte batch header and its CRC-32C, the few
// in-place rewrites a broker makes (base offset, partition leader epoch,
// LogAppendTime), iterating the records inside a batch, building batches, and
// the compression codecs (gzip, snappy, lz4, zstd).
//
// It is a leaf package: it imports only the standard library and the
// compression libraries. Functions work on byte slices exactly as they arrive
// from a producer or sit on disk; nothing here copies a batch unless asked to
// build or recompress one.
package record
