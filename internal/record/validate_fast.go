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
		l, ok := uvarintAt(data, &i)
		if !ok {
			return fmt.Errorf("record %d of %d: %w: bad record length varint", rec, h.NumRecords, ErrCorrupt)
		}
		length := zigzag32(l)
		if length < minRecordBody || int(length) > n-i {
			return fmt.Errorf("record %d of %d: %w: record length %d with %d bytes left", rec, h.NumRecords, ErrCorrupt, length, n-i)
		}
		end := i + int(length)
		body := data[:end]
		i++ // attributes
		if _, ok := uvarint64At(body, &i); !ok {
			return fmt.Errorf("record %d of %d: %w: bad timestamp delta varint", rec, h.NumRecords, ErrCorrupt)
		}
		u, ok := uvarintAt(body, &i)
		if !ok {
			return fmt.Errorf("record %d of %d: %w: bad offset delta varint", rec, h.NumRecords, ErrCorrupt)
		}
		off := zigzag32(u)
		if off <= prev || off > h.LastOffsetDelta {
			return fmt.Errorf("%w: record %d has offset delta %d after %d (last offset delta %d)", ErrInvalid, rec, off, prev, h.LastOffsetDelta)
		}
		prev = off
		keyLen, ok := skipBytesAt(body, &i)
		if !ok {
			return fmt.Errorf("record %d of %d: %w: bad key", rec, h.NumRecords, ErrCorrupt)
		}
		if requireKeys && keyLen < 0 {
			return fmt.Errorf("%w: record %d has a null key, which a compacted topic refuses", ErrInvalid, rec)
		}
		if _, ok := skipBytesAt(body, &i); !ok {
			return fmt.Errorf("record %d of %d: %w: bad value", rec, h.NumRecords, ErrCorrupt)
		}
		hc, ok := uvarintAt(body, &i)
		count := zigzag32(hc)
		if !ok || count < 0 {
			return fmt.Errorf("record %d of %d: %w: bad header count", rec, h.NumRecords, ErrCorrupt)
		}
		for range count {
			if kl, ok := skipBytesAt(body, &i); !ok || kl < 0 {
				return fmt.Errorf("record %d of %d: %w: bad header key", rec, h.NumRecords, ErrCorrupt)
			}
			if _, ok := skipBytesAt(body, &i); !ok {
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

// uvarintAt reads an unsigned varint of at most 5 bytes that fits uint32,
// advancing *i. The one-byte case, by far the most common, stays inline.
func uvarintAt(b []byte, i *int) (uint32, bool) {
	j := *i
	if j < len(b) && b[j] < 0x80 {
		*i = j + 1
		return uint32(b[j]), true
	}
	v, ok := uvarint64At(b, i)
	if !ok || *i-j > 5 || v > 0xffffffff {
		*i = j
		return 0, false
	}
	return uint32(v), true
}

// uvarint64At reads an unsigned varint of at most 10 bytes, advancing *i.
func uvarint64At(b []byte, i *int) (uint64, bool) {
	j := *i
	if j < len(b) && b[j] < 0x80 {
		*i = j + 1
		return uint64(b[j]), true
	}
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		if j >= len(b) {
			return 0, false
		}
		c := b[j]
		j++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			*i = j
			return v, true
		}
	}
	return 0, false
}

// skipBytesAt skips a varint-length-prefixed byte field (length -1 is null)
// and returns the length.
func skipBytesAt(b []byte, i *int) (int32, bool) {
	u, ok := uvarintAt(b, i)
	if !ok {
		return 0, false
	}
	l := zigzag32(u)
	if l == -1 {
		return -1, true
	}
	if l < 0 || int(l) > len(b)-*i {
		return 0, false
	}
	*i += int(l)
	return l, true
}
