package kwire

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// fetchFlexibleVersion is the first flexible Fetch version (KIP-482).
const fetchFlexibleVersion = 12

// EncodeFetchResponse appends to dst the chunks of a Fetch response of the
// given version: the response header (correlation id, plus an empty tag
// section for flexible versions) and resp's body, exactly as kmsg encodes
// them, except that each partition's records field holds
// records[topicIndex][partitionIndex] (chunks, possibly file regions) instead
// of resp's RecordBatches, which are ignored. Missing, nil or empty record
// lists encode an empty (not null) records field, as Kafka sends for a
// partition with nothing to return.
//
// The size prefix is not included: the network layer writes it. The framing
// bytes are encoded into one new buffer and appear in the result as slices
// of it, interleaved with the caller's record chunks; empty record chunks
// are dropped.
func EncodeFetchResponse(dst []network.Chunk, version int16, correlationID int32, resp *kmsg.FetchResponse, records [][][]network.Chunk) []network.Chunk {
	e := encoder{
		version:  version,
		flexible: version >= fetchFlexibleVersion,
		buf:      make([]byte, 0, estimateFetchFraming(resp)),
		dst:      dst,
		first:    len(dst),
	}
	e.fetchResponse(correlationID, resp, records)
	return e.finish()
}

// encoder appends framing bytes to buf. Where record chunks go, it closes
// the current framing piece by appending a placeholder chunk (Bytes and File
// nil, Offset and Len locating the piece in buf), then the record chunks;
// finish turns placeholders into slices of the final buf.
type encoder struct {
	version  int16
	flexible bool
	buf      []byte
	dst      []network.Chunk
	first    int // index in dst of the first chunk we appended
	mark     int // start in buf of the framing piece being built
}

func (e *encoder) fetchResponse(correlationID int32, resp *kmsg.FetchResponse, records [][][]network.Chunk) {
	e.int32(correlationID)
	if e.flexible {
		e.uvarint(0) // response header tags
	}
	if e.version >= 1 {
		e.int32(resp.ThrottleMillis)
	}
	if e.version >= 7 {
		e.int16(resp.ErrorCode)
		e.int32(resp.SessionID)
	}
	e.arrayLen(len(resp.Topics))
	for ti := range resp.Topics {
		t := &resp.Topics[ti]
		if e.version <= 12 {
			e.string(t.Topic)
		}
		if e.version >= 13 {
			e.buf = append(e.buf, t.TopicID[:]...)
		}
		var topicRecords [][]network.Chunk
		if ti < len(records) {
			topicRecords = records[ti]
		}
		e.arrayLen(len(t.Partitions))
		for pi := range t.Partitions {
			var recs []network.Chunk
			if pi < len(topicRecords) {
				recs = topicRecords[pi]
			}
			e.partition(&t.Partitions[pi], recs)
		}
		if e.flexible {
			e.unknownTagsSection(&t.UnknownTags)
		}
	}
	if e.flexible {
		n := t32(len(resp.Brokers) > 0) + resp.UnknownTags.Len()
		e.uvarint(uint32(n))
		if len(resp.Brokers) > 0 {
			e.uvarint(0)
			at := e.startSized()
			e.arrayLen(len(resp.Brokers))
			for i := range resp.Brokers {
				b := &resp.Brokers[i]
				e.int32(b.NodeID)
				e.string(b.Host)
				e.int32(b.Port)
				e.nullableString(b.Rack)
				e.unknownTagsSection(&b.UnknownTags)
			}
			e.endSized(at)
		}
		e.buf = resp.UnknownTags.AppendEach(e.buf)
	}
}

func (e *encoder) partition(p *kmsg.FetchResponseTopicPartition, recs []network.Chunk) {
	e.int32(p.Partition)
	e.int16(p.ErrorCode)
	e.int64(p.HighWatermark)
	if e.version >= 4 {
		e.int64(p.LastStableOffset)
	}
	if e.version >= 5 {
		e.int64(p.LogStartOffset)
	}
	if e.version >= 4 {
		e.nullableArrayLen(len(p.AbortedTransactions), p.AbortedTransactions == nil)
		for i := range p.AbortedTransactions {
			a := &p.AbortedTransactions[i]
			e.int64(a.ProducerID)
			e.int64(a.FirstOffset)
			if e.flexible {
				e.unknownTagsSection(&a.UnknownTags)
			}
		}
	}
	if e.version >= 11 {
		e.int32(p.PreferredReadReplica)
	}
	var size int64
	for _, c := range recs {
		size += c.Size()
	}
	if e.flexible {
		e.uvarint(uint32(size) + 1) // compact nullable bytes, never null
	} else {
		e.int32(int32(size))
	}
	e.records(recs)
	if !e.flexible {
		return
	}
	de, cl, sn := &p.DivergingEpoch, &p.CurrentLeader, &p.SnapshotID
	setDE := de.Epoch != -1 || de.EndOffset != -1 || de.UnknownTags.Len() > 0
	setCL := cl.LeaderID != -1 || cl.LeaderEpoch != -1 || cl.UnknownTags.Len() > 0
	setSN := sn.EndOffset != -1 || sn.Epoch != -1 || sn.UnknownTags.Len() > 0
	e.uvarint(uint32(t32(setDE) + t32(setCL) + t32(setSN) + p.UnknownTags.Len()))
	if setDE {
		e.uvarint(0)
		at := e.startSized()
		e.int32(de.Epoch)
		e.int64(de.EndOffset)
		e.unknownTagsSection(&de.UnknownTags)
		e.endSized(at)
	}
	if setCL {
		e.uvarint(1)
		at := e.startSized()
		e.int32(cl.LeaderID)
		e.int32(cl.LeaderEpoch)
		e.unknownTagsSection(&cl.UnknownTags)
		e.endSized(at)
	}
	if setSN {
		e.uvarint(2)
		at := e.startSized()
		e.int64(sn.EndOffset)
		e.int32(sn.Epoch)
		e.unknownTagsSection(&sn.UnknownTags)
		e.endSized(at)
	}
	e.buf = p.UnknownTags.AppendEach(e.buf)
}

// records closes the current framing piece and appends the record chunks.
func (e *encoder) records(recs []network.Chunk) {
	first := true
	for _, c := range recs {
		if c.Size() == 0 {
			continue
		}
		if first {
			e.cut()
			first = false
		}
		e.dst = append(e.dst, c)
	}
}

// cut ends the framing piece started at e.mark with a placeholder chunk.
func (e *encoder) cut() {
	if len(e.buf) > e.mark {
		e.dst = append(e.dst, network.Chunk{Offset: int64(e.mark), Len: int64(len(e.buf) - e.mark)})
	}
	e.mark = len(e.buf)
}

func (e *encoder) finish() []network.Chunk {
	e.cut()
	for i := e.first; i < len(e.dst); i++ {
		c := &e.dst[i]
		if c.File == nil && c.Bytes == nil {
			c.Bytes = e.buf[c.Offset : c.Offset+c.Len : c.Offset+c.Len]
			c.Offset, c.Len = 0, 0
		}
	}
	return e.dst
}

// startSized begins a length-prefixed tag value; endSized writes its length.
func (e *encoder) startSized() int { return len(e.buf) }

func (e *encoder) endSized(at int) {
	n := uint32(len(e.buf) - at)
	var tmp [binary.MaxVarintLen32]byte
	l := binary.PutUvarint(tmp[:], uint64(n))
	e.buf = append(e.buf, tmp[:l]...) // grow by l
	copy(e.buf[at+l:], e.buf[at:at+int(n)])
	copy(e.buf[at:], tmp[:l])
}

func (e *encoder) int16(v int16) { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(v)) }
func (e *encoder) int32(v int32) { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v)) }
func (e *encoder) int64(v int64) { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }

func (e *encoder) uvarint(v uint32) { e.buf = binary.AppendUvarint(e.buf, uint64(v)) }

func (e *encoder) arrayLen(n int) {
	if e.flexible {
		e.uvarint(uint32(n) + 1)
	} else {
		e.int32(int32(n))
	}
}

func (e *encoder) nullableArrayLen(n int, isNull bool) {
	switch {
	case !isNull:
		e.arrayLen(n)
	case e.flexible:
		e.uvarint(0)
	default:
		e.int32(-1)
	}
}

func (e *encoder) string(s string) {
	if e.flexible {
		e.uvarint(uint32(len(s)) + 1)
	} else {
		e.int16(int16(len(s)))
	}
	e.buf = append(e.buf, s...)
}

func (e *encoder) nullableString(s *string) {
	switch {
	case s != nil:
		e.string(*s)
	case e.flexible:
		e.uvarint(0)
	default:
		e.int16(-1)
	}
}

// unknownTagsSection writes a tag section holding only unknown tags.
func (e *encoder) unknownTagsSection(t *kmsg.Tags) {
	e.uvarint(uint32(t.Len()))
	e.buf = t.AppendEach(e.buf)
}

func t32(b bool) int {
	if b {
		return 1
	}
	return 0
}

// estimateFetchFraming guesses the framing size so buf rarely grows.
func estimateFetchFraming(resp *kmsg.FetchResponse) int {
	n := 32
	for i := range resp.Topics {
		t := &resp.Topics[i]
		n += 24 + len(t.Topic)
		for j := range t.Partitions {
			n += 64 + 16*len(t.Partitions[j].AbortedTransactions)
		}
	}
	for i := range resp.Brokers {
		n += 24 + len(resp.Brokers[i].Host)
	}
	return n
}
