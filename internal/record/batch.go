package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Byte offsets of the fields of a v2 record batch header.
const (
	offBaseOffset           = 0
	offLength               = 8
	offPartitionLeaderEpoch = 12
	offMagic                = 16
	offCRC                  = 17
	offAttributes           = 21
	offLastOffsetDelta      = 23
	offFirstTimestamp       = 27
	offMaxTimestamp         = 35
	offProducerID           = 43
	offProducerEpoch        = 51
	offBaseSequence         = 53
	offNumRecords           = 57

	// HeaderSize is the size of a v2 batch header, up to and including the
	// record count.
	HeaderSize = 61
	// LogOverhead is the part of the header not counted by the Length field:
	// BaseOffset and Length themselves.
	LogOverhead = 12
	// CRCStart is where the part of a batch its CRC covers starts
	// (Attributes): the fields before it, the CRC included, are not covered.
	CRCStart = offAttributes
)

// Attribute bits.
const (
	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08 // set: LogAppendTime
	AttrTransactional   = 0x10
	AttrControl         = 0x20
	AttrDeleteHorizon   = 0x40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned by batch parsing and validation. Callers map them to Kafka
// error codes: ErrCorrupt and ErrBadCRC to CORRUPT_MESSAGE, ErrMagic to
// UNSUPPORTED_FOR_MESSAGE_FORMAT, ErrInvalid to INVALID_RECORD.
var (
	ErrShort   = errors.New("record: truncated batch")
	ErrCorrupt = errors.New("record: corrupt batch")
	ErrBadCRC  = errors.New("record: batch CRC mismatch")
	ErrMagic   = errors.New("record: unsupported message format (magic is not 2)")
	ErrInvalid = errors.New("record: invalid record")
)

// Header is a decoded v2 batch header.
type Header struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the whole size of the batch on the wire and on disk.
func (h *Header) Size() int { return int(h.Length) + LogOverhead }

// LastOffset is the offset of the last record of the batch.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the compression codec of the batch.
func (h *Header) Codec() Codec { return Codec(h.Attributes & AttrCompressionMask) }

// IsTransactional reports whether the transactional attribute is set.
func (h *Header) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// IsControl reports whether the batch holds a control record.
func (h *Header) IsControl() bool { return h.Attributes&AttrControl != 0 }

// IsLogAppendTime reports whether the timestamp type is LogAppendTime.
func (h *Header) IsLogAppendTime() bool { return h.Attributes&AttrTimestampType != 0 }

// HasProducerID reports whether the batch was written by an idempotent or
// transactional producer.
func (h *Header) HasProducerID() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence number of the last record, wrapping at int32
// as Kafka does.
func (h *Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > 0x7fffffff {
		s -= 0x80000000
	}
	return int32(s)
}

// PeekSize returns the total size of the batch starting at b, reading only the
// length field. It needs LogOverhead bytes.
func PeekSize(b []byte) (int, error) {
	if len(b) < LogOverhead {
		return 0, ErrShort
	}
	l := int32(binary.BigEndian.Uint32(b[offLength:]))
	if l < HeaderSize-LogOverhead {
		return 0, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, l)
	}
	return int(l) + LogOverhead, nil
}

// ParseHeader decodes the header of the batch at the start of b. It checks
// only that the header fits and the magic byte; use Validate for the CRC.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		if len(b) > offMagic && b[offMagic] != 2 {
			return h, ErrMagic
		}
		return h, ErrShort
	}
	h.Magic = int8(b[offMagic])
	if h.Magic != 2 {
		return h, ErrMagic
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offLength:]))
	h.PartitionLeaderEpoch = int32(be.Uint32(b[offPartitionLeaderEpoch:]))
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.FirstTimestamp = int64(be.Uint64(b[offFirstTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(be.Uint32(b[offNumRecords:]))
	if h.Length < HeaderSize-LogOverhead {
		return h, fmt.Errorf("%w: batch length %d below header size", ErrCorrupt, h.Length)
	}
	return h, nil
}

// ComputeCRC returns the CRC-32C of a batch: Attributes to the end.
func ComputeCRC(batch []byte) uint32 {
	return crc32.Checksum(batch[offAttributes:], castagnoli)
}

// Validate checks one whole batch (len(batch) must equal its size): header
// sanity, the CRC, and header fields that must agree with each other. It does
// not decompress. It returns the parsed header.
func Validate(batch []byte) (Header, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return h, err
	}
	if h.Size() != len(batch) {
		return h, fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorrupt, h.Size(), len(batch))
	}
	if crc := ComputeCRC(batch); crc != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", ErrBadCRC, h.CRC, crc)
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: negative record count %d or last offset delta %d", ErrInvalid, h.NumRecords, h.LastOffsetDelta)
	}
	if h.NumRecords == 0 && !h.IsControl() {
		return h, fmt.Errorf("%w: batch has no records", ErrInvalid)
	}
	if h.NumRecords > 0 && int64(h.LastOffsetDelta) != int64(h.NumRecords)-1 {
		return h, fmt.Errorf("%w: %d records but last offset delta %d", ErrInvalid, h.NumRecords, h.LastOffsetDelta)
	}
	if c := h.Codec(); c > CodecZstd {
		return h, fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
	}
	return h, nil
}

// Split calls fn for each whole batch in a buffer of concatenated batches, as
// a produce request carries them. A trailing partial batch is an error.
func Split(b []byte, fn func(batch []byte) error) error {
	for len(b) > 0 {
		n, err := PeekSize(b)
		if err != nil {
			return err
		}
		if n > len(b) {
			return fmt.Errorf("%w: batch of %d bytes but only %d remain", ErrShort, n, len(b))
		}
		if err := fn(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// SetBaseOffset rewrites the base offset. It is outside the CRC.
func SetBaseOffset(batch []byte, off int64) {
	binary.BigEndian.PutUint64(batch[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites the partition leader epoch. It is outside
// the CRC.
func SetPartitionLeaderEpoch(batch []byte, epoch int32) {
	binary.BigEndian.PutUint32(batch[offPartitionLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch as LogAppendTime with the given broker
// time, rewriting MaxTimestamp and the timestamp-type attribute, and
// recomputes the CRC, as Kafka does.
func SetLogAppendTime(batch []byte, ts int64) {
	be := binary.BigEndian
	attrs := be.Uint16(batch[offAttributes:]) | AttrTimestampType
	be.PutUint16(batch[offAttributes:], attrs)
	be.PutUint64(batch[offMaxTimestamp:], uint64(ts))
	be.PutUint32(batch[offCRC:], ComputeCRC(batch))
}
