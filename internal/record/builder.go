package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// BatchOptions are the batch-level fields of a batch Build writes. Producer
// fields are written verbatim: a batch from no idempotent producer carries
// ProducerID, ProducerEpoch and BaseSequence -1, which NewBatchOptions sets
// (the zero value means producer id 0).
type BatchOptions struct {
	Codec                Codec
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	Transactional        bool
	Control              bool
	LogAppendTime        bool
	PartitionLeaderEpoch int32
	BaseOffset           int64
}

// NewBatchOptions returns options for a batch with codec c and no producer:
// ProducerID, ProducerEpoch, BaseSequence and PartitionLeaderEpoch -1.
func NewBatchOptions(c Codec) BatchOptions {
	return BatchOptions{
		Codec:                c,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		BaseSequence:         -1,
		PartitionLeaderEpoch: -1,
	}
}

// Build appends a v2 batch holding recs to dst and returns it.
//
// Records keep their own OffsetDelta, which must start at 0 or more and
// strictly increase; LastOffsetDelta is the last record's (so give
// OffsetDelta i to the i-th record for an ordinary batch; gaps are kept, as
// in a compacted batch). FirstTimestamp is firstTimestamp, and MaxTimestamp
// is the largest firstTimestamp+TimestampDelta; with LogAppendTime set the
// attribute is set too, and the caller passes the append time as
// firstTimestamp with zero deltas (or calls SetLogAppendTime after). The CRC
// is computed. recs must not be empty.
func Build(dst []byte, opts BatchOptions, firstTimestamp int64, recs []Record) ([]byte, error) {
	if opts.Codec < CodecNone || opts.Codec > CodecZstd {
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, opts.Codec)
	}
	if len(recs) == 0 || len(recs) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: cannot build a batch of %d records", ErrInvalid, len(recs))
	}
	maxTs := firstTimestamp + recs[0].TimestampDelta
	prev := int32(-1)
	for i := range recs {
		r := &recs[i]
		if r.OffsetDelta <= prev {
			return dst, fmt.Errorf("%w: record %d has offset delta %d after %d", ErrInvalid, i, r.OffsetDelta, prev)
		}
		prev = r.OffsetDelta
		maxTs = max(maxTs, firstTimestamp+r.TimestampDelta)
	}

	var attrs int16
	attrs |= int16(opts.Codec)
	if opts.LogAppendTime {
		attrs |= AttrTimestampType
	}
	if opts.Transactional {
		attrs |= AttrTransactional
	}
	if opts.Control {
		attrs |= AttrControl
	}

	start := len(dst)
	dst = slices.Grow(dst, HeaderSize)[:start+HeaderSize]
	be := binary.BigEndian
	hdr := dst[start:]
	be.PutUint64(hdr[offBaseOffset:], uint64(opts.BaseOffset))
	be.PutUint32(hdr[offPartitionLeaderEpoch:], uint32(opts.PartitionLeaderEpoch))
	hdr[offMagic] = 2
	be.PutUint16(hdr[offAttributes:], uint16(attrs))
	be.PutUint32(hdr[offLastOffsetDelta:], uint32(prev))
	be.PutUint64(hdr[offFirstTimestamp:], uint64(firstTimestamp))
	be.PutUint64(hdr[offMaxTimestamp:], uint64(maxTs))
	be.PutUint64(hdr[offProducerID:], uint64(opts.ProducerID))
	be.PutUint16(hdr[offProducerEpoch:], uint16(opts.ProducerEpoch))
	be.PutUint32(hdr[offBaseSequence:], uint32(opts.BaseSequence))
	be.PutUint32(hdr[offNumRecords:], uint32(len(recs)))

	var err error
	if opts.Codec == CodecNone {
		for i := range recs {
			if dst, err = appendRecord(dst, &recs[i]); err != nil {
				return dst[:start], err
			}
		}
	} else {
		bp := recordBufs.Get().(*[]byte)
		raw := (*bp)[:0]
		for i := range recs {
			if raw, err = appendRecord(raw, &recs[i]); err != nil {
				break
			}
		}
		if err == nil {
			dst, err = Compress(dst, opts.Codec, raw)
		}
		if *bp = raw; cap(raw) <= maxPooledBuf {
			recordBufs.Put(bp)
		}
		if err != nil {
			return dst[:start], err
		}
	}
	return finishBatch(dst, start)
}

// finishBatch fills in the Length and CRC of the batch at dst[start:].
func finishBatch(dst []byte, start int) ([]byte, error) {
	n := len(dst) - start - LogOverhead
	if n > math.MaxInt32 {
		return dst[:start], fmt.Errorf("%w: batch of %d bytes is too large", ErrInvalid, n)
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[offLength:], uint32(n))
	binary.BigEndian.PutUint32(b[offCRC:], ComputeCRC(b))
	return dst, nil
}

// appendRecord appends the v2 encoding of r.
func appendRecord(dst []byte, r *Record) ([]byte, error) {
	size := 1 + varlongLen(r.TimestampDelta) + varlongLen(int64(r.OffsetDelta)) +
		bytesLen(r.Key) + bytesLen(r.Value) + varlongLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		size += varlongLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	if size > math.MaxInt32 {
		return dst, fmt.Errorf("%w: record of %d bytes is too large", ErrInvalid, size)
	}
	dst = slices.Grow(dst, varlongLen(int64(size))+size)
	dst = binary.AppendVarint(dst, int64(size))
	dst = append(dst, byte(r.Attributes))
	dst = binary.AppendVarint(dst, r.TimestampDelta)
	dst = binary.AppendVarint(dst, int64(r.OffsetDelta))
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst, nil
}

// appendBytes appends a varint length and b; nil is written as length -1.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varlongLen(int64(len(b))) + len(b)
}

// varlongLen is the size of the zigzag varint encoding of v.
func varlongLen(v int64) int {
	u := uint64(v)<<1 ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// Recompress appends to dst a copy of batch whose records are compressed
// with codec c instead of the batch's own codec. Every other field is kept:
// base offset, leader epoch, producer fields, timestamps (including a
// LogAppendTime MaxTimestamp), offset deltas, the other attribute bits, and
// the record bytes themselves, which are the same under any codec. The CRC is
// recomputed. If the batch already uses c it is copied as is.
//
// Recompress checks the header and decompresses but does not walk the
// records; call Validate and ValidateRecords on the input first.
func Recompress(dst []byte, batch []byte, c Codec) ([]byte, error) {
	if c < CodecNone || c > CodecZstd {
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
	h, err := ParseHeader(batch)
	if err != nil {
		return dst, err
	}
	if h.Size() != len(batch) {
		return dst, fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorrupt, h.Size(), len(batch))
	}
	from := h.Codec()
	if from == c {
		return append(dst, batch...), nil
	}
	if from > CodecZstd {
		return dst, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, from)
	}

	records := batch[HeaderSize:]
	var bp *[]byte
	if from != CodecNone {
		bp = recordBufs.Get().(*[]byte)
		defer func() {
			if cap(*bp) <= maxPooledBuf {
				recordBufs.Put(bp)
			}
		}()
		if *bp, err = Decompress((*bp)[:0], from, records); err != nil {
			return dst, err
		}
		records = *bp
	}

	start := len(dst)
	dst = append(dst, batch[:HeaderSize]...)
	attrs := uint16(h.Attributes)&^AttrCompressionMask | uint16(c)
	binary.BigEndian.PutUint16(dst[start+offAttributes:], attrs)
	if dst, err = Compress(dst, c, records); err != nil {
		return dst[:start], err
	}
	return finishBatch(dst, start)
}
