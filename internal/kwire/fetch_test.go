package kwire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/network"
)

// recordSource hands out random record bytes, some as byte chunks and some
// as regions of a file holding the same bytes.
type recordSource struct {
	f    *os.File
	data []byte
}

func newRecordSource(t *testing.T, rng *rand.Rand) *recordSource {
	data := make([]byte, 1<<16)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	path := filepath.Join(t.TempDir(), "00000000000000000000.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &recordSource{f: f, data: data}
}

// records returns random chunks and the bytes they stand for.
func (s *recordSource) records(rng *rand.Rand) ([]network.Chunk, []byte) {
	var chunks []network.Chunk
	var want []byte
	switch rng.IntN(4) {
	case 0:
		if rng.IntN(2) == 0 {
			return nil, nil
		}
		return []network.Chunk{}, nil
	case 1: // one byte chunk, sometimes long enough for a 2-byte length
		b := s.data[:rng.IntN(300)+1]
		return []network.Chunk{{Bytes: b}}, b
	}
	for range rng.IntN(5) + 1 {
		off, n := int64(rng.IntN(len(s.data)/2)), int64(rng.IntN(2000))
		region := s.data[off : off+n]
		want = append(want, region...)
		if rng.IntN(2) == 0 {
			chunks = append(chunks, network.Chunk{File: s.f, Offset: off, Len: n})
		} else {
			chunks = append(chunks, network.Chunk{Bytes: region})
		}
	}
	return chunks, want
}

func randomTags(rng *rand.Rand, flexible bool) kmsg.Tags {
	var t kmsg.Tags
	if flexible && rng.IntN(6) == 0 {
		for range rng.IntN(2) + 1 {
			t.Set(uint32(50+rng.IntN(100)), bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(200)))
		}
	}
	return t
}

// randomFetchResponse builds a response using only fields the version has, so
// that decoding it gives it back; partitions' RecordBatches hold the bytes
// kmsg must encode.
func randomFetchResponse(rng *rand.Rand, version int16, src *recordSource) (*kmsg.FetchResponse, [][][]network.Chunk) {
	flexible := version >= 12
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = version
	if version >= 1 {
		resp.ThrottleMillis = rng.Int32N(1000)
	}
	if version >= 7 {
		resp.ErrorCode = int16(rng.IntN(3))
		resp.SessionID = rng.Int32()
	}
	var records [][][]network.Chunk
	for ti := range rng.IntN(4) {
		t := kmsg.NewFetchResponseTopic()
		if version <= 12 {
			t.Topic = string(bytes.Repeat([]byte{'a' + byte(ti)}, rng.IntN(20)+1))
		} else {
			for i := range t.TopicID {
				t.TopicID[i] = byte(rng.Uint32())
			}
		}
		t.UnknownTags = randomTags(rng, flexible)
		var topicRecords [][]network.Chunk
		for pi := range rng.IntN(5) {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = int32(pi)
			p.ErrorCode = int16(rng.IntN(2) * 6)
			p.HighWatermark = rng.Int64N(1 << 40)
			if version >= 4 {
				p.LastStableOffset = rng.Int64N(1 << 40)
				switch rng.IntN(3) {
				case 0:
					p.AbortedTransactions = nil
				case 1:
					p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				default:
					for range rng.IntN(4) + 1 {
						a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
						a.ProducerID, a.FirstOffset = rng.Int64(), rng.Int64()
						a.UnknownTags = randomTags(rng, flexible)
						p.AbortedTransactions = append(p.AbortedTransactions, a)
					}
				}
			}
			if version >= 5 {
				p.LogStartOffset = rng.Int64N(1 << 30)
			}
			if version >= 11 {
				p.PreferredReadReplica = rng.Int32N(3) - 1
			}
			if flexible {
				if rng.IntN(3) == 0 {
					p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = rng.Int32N(10), rng.Int64N(1000)
				}
				p.DivergingEpoch.UnknownTags = randomTags(rng, flexible)
				if rng.IntN(3) == 0 {
					p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = rng.Int32N(10), rng.Int32N(10)
				}
				if rng.IntN(3) == 0 {
					p.SnapshotID.EndOffset, p.SnapshotID.Epoch = rng.Int64N(1000), rng.Int32N(10)
				}
				p.UnknownTags = randomTags(rng, flexible)
			}
			chunks, data := src.records(rng)
			p.RecordBatches = append([]byte{}, data...) // empty, never null
			topicRecords = append(topicRecords, chunks)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
		if rng.IntN(4) != 0 { // sometimes leave the records list short
			records = append(records, topicRecords)
		} else {
			for i := range t.Partitions {
				t.Partitions[i].RecordBatches = []byte{}
			}
			records = append(records, topicRecords[:0])
		}
	}
	if flexible && rng.IntN(2) == 0 {
		for i := range rng.IntN(3) + 1 {
			b := kmsg.NewFetchResponseBroker()
			b.NodeID, b.Host, b.Port = int32(i), "broker.example", 9092
			if rng.IntN(2) == 0 {
				rack := "rack-a"
				b.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, b)
		}
	}
	if flexible {
		resp.UnknownTags = randomTags(rng, flexible)
	}
	return resp, records
}

// flatten concatenates chunks, reading file regions back.
func flatten(t *testing.T, chunks []network.Chunk) []byte {
	var out []byte
	for _, c := range chunks {
		if c.File == nil {
			out = append(out, c.Bytes...)
			continue
		}
		b := make([]byte, c.Len)
		if _, err := c.File.ReadAt(b, c.Offset); err != nil {
			t.Fatal(err)
		}
		out = append(out, b...)
	}
	return out
}

func TestEncodeFetchResponseMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 1))
	src := newRecordSource(t, rng)
	maxVersion := (&kmsg.FetchResponse{}).MaxVersion()
	for version := int16(0); version <= maxVersion; version++ {
		for iter := range 200 {
			resp, records := randomFetchResponse(rng, version, src)
			const corr = 0x01020304

			// kmsg's encoding, with the response header prepended.
			want := binary.BigEndian.AppendUint32(nil, corr)
			if resp.IsFlexible() {
				want = append(want, 0)
			}
			want = resp.AppendTo(want)

			prefix := []network.Chunk{{Bytes: []byte("keep")}}
			chunks := EncodeFetchResponse(prefix, version, corr, resp, records)
			if string(chunks[0].Bytes) != "keep" {
				t.Fatalf("v%d: dst's existing chunks were changed", version)
			}
			got := flatten(t, chunks[1:])
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d iteration %d: kwire encoding differs from kmsg\n got %x\nwant %x", version, iter, got, want)
			}
			checkChunkShape(t, chunks[1:])

			// kmsg decodes it back to the same response.
			hdr := 4
			if resp.IsFlexible() {
				hdr = 5
			}
			back := kmsg.NewPtrFetchResponse()
			back.Version = version
			if err := back.ReadFrom(got[hdr:]); err != nil {
				t.Fatalf("v%d: kmsg cannot decode kwire output: %v", version, err)
			}
			if !reflect.DeepEqual(back, resp) {
				t.Fatalf("v%d iteration %d: decoded response differs\n got %+v\nwant %+v", version, iter, back, resp)
			}
		}
	}
}

// checkChunkShape checks that no chunk is empty.
func checkChunkShape(t *testing.T, chunks []network.Chunk) {
	t.Helper()
	if len(chunks) == 0 {
		t.Fatal("no chunks")
	}
	for i, c := range chunks {
		if c.Size() == 0 {
			t.Fatalf("chunk %d is empty", i)
		}
	}
}

func TestEncodeFetchResponseOneFramingBuffer(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := newRecordSource(t, rng)
	resp := kmsg.NewPtrFetchResponse()
	var records [][][]network.Chunk
	for ti := range 3 {
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "t"
		var tr [][]network.Chunk
		for pi := range 3 {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = int32(pi)
			topic.Partitions = append(topic.Partitions, p)
			// Records only for the middle partition of each topic.
			if pi == 1 {
				tr = append(tr, []network.Chunk{{File: src.f, Offset: int64(ti), Len: 10}, {Bytes: src.data[:5]}})
			} else {
				tr = append(tr, nil)
			}
		}
		resp.Topics = append(resp.Topics, topic)
		records = append(records, tr)
	}
	chunks := EncodeFetchResponse(nil, 16, 7, resp, records)
	// framing, file, bytes, framing, file, bytes, framing, file, bytes, framing
	if len(chunks) != 10 {
		t.Fatalf("got %d chunks, want 10", len(chunks))
	}
	var prevEnd uintptr
	for i := 0; i < len(chunks); i += 3 {
		c := chunks[i]
		if c.File != nil || len(c.Bytes) == 0 {
			t.Fatalf("chunk %d is not framing bytes", i)
		}
		start := uintptr(unsafe.Pointer(unsafe.SliceData(c.Bytes)))
		if i > 0 && start != prevEnd {
			t.Errorf("framing chunk %d does not continue the previous one in the same buffer", i)
		}
		prevEnd = start + uintptr(len(c.Bytes))
	}
}

func BenchmarkEncodeFetchResponse(b *testing.B) {
	resp := kmsg.NewPtrFetchResponse()
	var records [][][]network.Chunk
	f := os.Stdin
	for range 10 {
		topic := kmsg.NewFetchResponseTopic()
		topic.Topic = "some-topic-name"
		var tr [][]network.Chunk
		for pi := range 10 {
			p := kmsg.NewFetchResponseTopicPartition()
			p.Partition = int32(pi)
			topic.Partitions = append(topic.Partitions, p)
			tr = append(tr, []network.Chunk{{File: f, Offset: 0, Len: 1 << 20}})
		}
		resp.Topics = append(resp.Topics, topic)
		records = append(records, tr)
	}
	dst := make([]network.Chunk, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = EncodeFetchResponse(dst[:0], 16, 1, resp, records)
	}
}
