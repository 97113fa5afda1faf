package record

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Record is one record of a v2 batch. Key and Value are nil for a null key
// or value (and non-nil, possibly empty, otherwise).
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key, Value     []byte
	Headers        []RecordHeader
}

// RecordHeader is one record header. A nil Value is a null value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// minRecordBody is the smallest record after its length: attributes,
// timestamp delta, offset delta, key length, value length, header count.
const minRecordBody = 6

// decompressed buffers are pooled; one larger than this is left to the GC so
// a rare huge batch does not pin memory.
const maxPooledBuf = 8 << 20

var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// ForEach calls fn for each record of batch, decompressing it first if
// needed. The *Record and every slice in it (Key, Value, header values, the
// Headers slice itself) may alias batch or a pooled decompression buffer and
// are valid only until fn returns; copy what must outlive the call. Header
// keys are real strings and may be kept.
//
// ForEach checks the header (magic, size matching len(batch), codec) and the
// record structure strictly: the record count must match NumRecords, every
// record must fit its length exactly, offset deltas must increase within
// [0, LastOffsetDelta], and nothing may follow the last record. It does not
// check the CRC; call Validate for that. Errors wrap ErrCorrupt (malformed
// bytes) or ErrInvalid (well-formed but not allowed); an error from fn is
// returned as is and stops the iteration.
func ForEach(batch []byte, fn func(r *Record) error) error {
	var it recordIter
	defer it.close()
	if err := it.init(batch, true); err != nil {
		return err
	}
	for {
		ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(&it.r); err != nil {
			return err
		}
	}
}

// ValidateRecords walks every record of batch with the same checks as
// ForEach and, when requireKeys is set (compacted topics), rejects records
// with a null key with an error wrapping ErrInvalid. It does not check the
// CRC or the header rules of Validate; a produce path calls Validate, then
// ValidateRecords. It allocates nothing per record, and for an uncompressed
// batch nothing at all unless it fails.
func ValidateRecords(batch []byte, requireKeys bool) error {
	var it recordIter
	defer it.close()
	if err := it.init(batch, false); err != nil {
		return err
	}
	// The produce hot path: the same rules as recordIter.next, on the
	// (decompressed) records, without a per-record struct.
	return validateUncompressed(it.data, &it.h, requireKeys)
}

// recordIter walks the records of one batch.
type recordIter struct {
	h       Header
	data    []byte // records not yet read
	buf     *[]byte
	r       Record
	hdrs    []RecordHeader
	collect bool // fill r.Headers
	i       int32
	prev    int32
}

// init checks the batch header and decompresses the records if needed.
// collect asks for headers to be gathered into r.Headers.
func (it *recordIter) init(batch []byte, collect bool) error {
	h, err := ParseHeader(batch)
	if err != nil {
		return err
	}
	if h.Size() != len(batch) {
		return fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorrupt, h.Size(), len(batch))
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 {
		return fmt.Errorf("%w: negative record count %d or last offset delta %d", ErrInvalid, h.NumRecords, h.LastOffsetDelta)
	}
	it.h, it.collect, it.prev = h, collect, -1
	it.data = batch[HeaderSize:]
	if c := h.Codec(); c != CodecNone {
		if c > CodecZstd {
			return fmt.Errorf("%w: unknown compression codec %d", ErrInvalid, c)
		}
		it.buf = recordBufs.Get().(*[]byte)
		*it.buf, err = Decompress((*it.buf)[:0], c, it.data)
		if err != nil {
			return err
		}
		it.data = *it.buf
	}
	return nil
}

// close returns the decompression buffer to its pool.
func (it *recordIter) close() {
	if it.buf != nil && cap(*it.buf) <= maxPooledBuf {
		recordBufs.Put(it.buf)
	}
	it.buf, it.data = nil, nil
}

// next reads the next record into it.r. It reports false at the end, after
// checking that the count matched and nothing trails the last record.
func (it *recordIter) next() (bool, error) {
	if it.i == it.h.NumRecords {
		if len(it.data) != 0 {
			return false, fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, len(it.data), it.h.NumRecords)
		}
		return false, nil
	}
	if len(it.data) == 0 {
		return false, fmt.Errorf("%w: batch declares %d records but holds %d", ErrCorrupt, it.h.NumRecords, it.i)
	}
	var hdrs *[]RecordHeader
	if it.collect {
		hdrs = &it.hdrs
	}
	var err error
	it.data, err = parseRecord(it.data, &it.r, hdrs)
	if err != nil {
		return false, fmt.Errorf("record %d of %d: %w", it.i, it.h.NumRecords, err)
	}
	if off := it.r.OffsetDelta; off <= it.prev || off > it.h.LastOffsetDelta {
		return false, fmt.Errorf("%w: record %d has offset delta %d after %d (last offset delta %d)",
			ErrInvalid, it.i, off, it.prev, it.h.LastOffsetDelta)
	}
	it.prev = it.r.OffsetDelta
	it.i++
	return true, nil
}

// parseRecord decodes the record at the start of b into r and returns what
// follows it. Headers are collected into *hdrs when hdrs is non-nil and only
// checked otherwise.
func parseRecord(b []byte, r *Record, hdrs *[]RecordHeader) ([]byte, error) {
	l, n := readVarint(b)
	if n == 0 {
		return nil, fmt.Errorf("%w: bad record length varint", ErrCorrupt)
	}
	b = b[n:]
	if l < minRecordBody || int64(l) > int64(len(b)) {
		return nil, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorrupt, l, len(b))
	}
	body, rest := b[:l], b[l:]

	r.Attributes = int8(body[0])
	body = body[1:]
	ts, n := readVarlong(body)
	if n == 0 {
		return nil, fmt.Errorf("%w: bad timestamp delta varint", ErrCorrupt)
	}
	r.TimestampDelta = ts
	body = body[n:]
	off, n := readVarint(body)
	if n == 0 {
		return nil, fmt.Errorf("%w: bad offset delta varint", ErrCorrupt)
	}
	r.OffsetDelta = off
	body = body[n:]
	var err error
	if r.Key, body, err = readBytes(body, "key"); err != nil {
		return nil, err
	}
	if r.Value, body, err = readBytes(body, "value"); err != nil {
		return nil, err
	}
	count, n := readVarint(body)
	if n == 0 {
		return nil, fmt.Errorf("%w: bad header count varint", ErrCorrupt)
	}
	body = body[n:]
	// Each header takes at least two bytes, which also bounds the slice
	// we grow below by the record's size.
	if count < 0 || int64(count)*2 > int64(len(body)) {
		return nil, fmt.Errorf("%w: header count %d with %d bytes left", ErrCorrupt, count, len(body))
	}
	if hdrs != nil {
		*hdrs = (*hdrs)[:0]
	}
	for j := int32(0); j < count; j++ {
		kl, n := readVarint(body)
		if n == 0 || kl < 0 || int64(kl) > int64(len(body)-n) {
			return nil, fmt.Errorf("%w: header %d has bad key length", ErrCorrupt, j)
		}
		key := body[n : n+int(kl)]
		body = body[n+int(kl):]
		var val []byte
		if val, body, err = readBytes(body, "header value"); err != nil {
			return nil, err
		}
		if hdrs != nil {
			*hdrs = append(*hdrs, RecordHeader{Key: string(key), Value: val})
		}
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d unread bytes at the end of the record", ErrCorrupt, len(body))
	}
	if hdrs != nil && len(*hdrs) > 0 {
		r.Headers = *hdrs
	} else {
		r.Headers = nil
	}
	return rest, nil
}

// readBytes reads a varint length then that many bytes; length -1 is null
// (nil). An empty non-null field is returned as a non-nil empty slice.
func readBytes(b []byte, what string) (field, rest []byte, err error) {
	l, n := readVarint(b)
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: bad %s length varint", ErrCorrupt, what)
	}
	b = b[n:]
	if l == -1 {
		return nil, b, nil
	}
	if l < 0 || int64(l) > int64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s length %d with %d bytes left", ErrCorrupt, what, l, len(b))
	}
	return b[:l:l], b[l:], nil
}

// readVarint decodes a zigzag varint of the int32 range (at most 5 bytes).
// n is 0 when b does not start with one.
func readVarint(b []byte) (v int32, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return int32(b[0]>>1) ^ -int32(b[0]&1), 1
	}
	u, n := binary.Uvarint(b)
	if n <= 0 || n > 5 || u > 0xffffffff {
		return 0, 0
	}
	return int32(uint32(u)>>1) ^ -int32(uint32(u)&1), n
}

// readVarlong decodes a zigzag varint of the int64 range. n is 0 when b does
// not start with one.
func readVarlong(b []byte) (v int64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return int64(b[0]>>1) ^ -int64(b[0]&1), 1
	}
	u, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0
	}
	return int64(u>>1) ^ -int64(u&1), n
}
