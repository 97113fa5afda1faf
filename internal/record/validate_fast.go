package record

import "fmt"

// validateUncompressed checks the records of an uncompressed batch (data is
// everything after the header) with the same rules as recordIter, in one
// tight loop: the produce hot path runs it on every uncompressed batch.
// Varints are decoded inline on an index instead of reslicing, and errors
// are formatted only on the failure path.
func validateUncompressed(data []byte, h *Header, requireKeys bool) error {
	i, n := 0, len(data)
	prev := int32(-1)
	for rec := int32(0); rec < h.NumRecords; rec++ {
		var u uint32
		if u, i = uvarintAt(data, i); i < 0 {
			return fmt.Errorf("record %d of %d: %w: bad record length varint", rec, h.NumRecords, ErrCorrupt)
		}
		length := zigzag32(u)
		if length < minRecordBody || int(length) > n-i {
			return fmt.Errorf("record %d of %d: %w: record length %d with %d bytes left", rec, h.NumRecords, ErrCorrupt, length, n-i)
		}
		end := i + int(length)
		body := data[:end]
		i++ // attributes
		if _, i = uvarint64At(body, i); i < 0 {
			return fmt.Errorf("record %d of %d: %w: bad timestamp delta varint", rec, h.NumRecords, ErrCorrupt)
		}
		if u, i = uvarintAt(body, i); i < 0 {
			return fmt.Errorf("record %d of %d: %w: bad offset delta varint", rec, h.NumRecords, ErrCorrupt)
		}
		off := zigzag32(u)
		if off <= prev || off > h.LastOffsetDelta {
			return fmt.Errorf("%w: record %d has offset delta %d after %d (last offset delta %d)", ErrInvalid, rec, off, prev, h.LastOffsetDelta)
		}
		prev = off
		var keyLen int32
		if keyLen, i = skipBytesAt(body, i); i < 0 {
			return fmt.Errorf("record %d of %d: %w: bad key", rec, h.NumRecords, ErrCorrupt)
		}
		if requireKeys && keyLen < 0 {
			return fmt.Errorf("%w: record %d has a null key, which a compacted topic refuses", ErrInvalid, rec)
		}
		if _, i = skipBytesAt(body, i); i < 0 {
			return fmt.Errorf("record %d of %d: %w: bad value", rec, h.NumRecords, ErrCorrupt)
		}
		if u, i = uvarintAt(body, i); i < 0 || zigzag32(u) < 0 {
			return fmt.Errorf("record %d of %d: %w: bad header count", rec, h.NumRecords, ErrCorrupt)
		}
		for range zigzag32(u) {
			var kl int32
			if kl, i = skipBytesAt(body, i); i < 0 || kl < 0 {
				return fmt.Errorf("record %d of %d: %w: bad header key", rec, h.NumRecords, ErrCorrupt)
			}
			if _, i = skipBytesAt(body, i); i < 0 {
				return fmt.Errorf("record %d of %d: %w: bad header value", rec, h.NumRecords, ErrCorrupt)
			}
		}
		if i != end {
			return fmt.Errorf("record %d of %d: %w: record length %d but fields end %d bytes in", rec, h.NumRecords, ErrCorrupt, length, int(length)-(end-i))
		}
	}
	if i != n {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, n-i, h.NumRecords)
	}
	return nil
}

func zigzag32(u uint32) int32 { return int32(u>>1) ^ -int32(u&1) }

// uvarintAt reads the unsigned varint at b[i:] that must fit 32 bits in at
// most 5 bytes (Kafka's readVarint also stops at 5 bytes, but silently drops
// a 5th byte's excess high bits; this refuses them), and returns it with the
// index after it, or a negative index if b ends first or the varint is too
// long or too big. The one- and two-byte cases, nearly every length, delta
// and count in a batch, take the fast path.
func uvarintAt(b []byte, i int) (uint32, int) {
	if i >= 0 && i+1 < len(b) {
		c0, c1 := b[i], b[i+1]
		if c0 < 0x80 {
			return uint32(c0), i + 1
		}
		if c1 < 0x80 {
			return uint32(c0&0x7f) | uint32(c1)<<7, i + 2
		}
	}
	v, j := uvarintSlow(b, i)
	if j < 0 || j-i > 5 || v > 0xffffffff {
		return 0, -1
	}
	return uint32(v), j
}

// uvarint64At reads an unsigned varint of at most 10 bytes at b[i:], like
// uvarintAt.
func uvarint64At(b []byte, i int) (uint64, int) {
	if i >= 0 && i+1 < len(b) {
		c0, c1 := b[i], b[i+1]
		if c0 < 0x80 {
			return uint64(c0), i + 1
		}
		if c1 < 0x80 {
			return uint64(c0&0x7f) | uint64(c1)<<7, i + 2
		}
	}
	return uvarintSlow(b, i)
}

func uvarintSlow(b []byte, i int) (uint64, int) {
	if i < 0 {
		return 0, -1
	}
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if i >= len(b) {
			return 0, -1
		}
		c := b[i]
		i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, -1
}

// skipBytesAt skips the varint-length-prefixed byte field (length -1 is
// null) at b[i:] and returns its length and the index after it, or a
// negative index if it is malformed.
func skipBytesAt(b []byte, i int) (int32, int) {
	u, i := uvarintAt(b, i)
	if i < 0 {
		return 0, -1
	}
	l := zigzag32(u)
	if l == -1 {
		return -1, i
	}
	if l < 0 || int(l) > len(b)-i {
		return 0, -1
	}
	return l, i + int(l)
}
