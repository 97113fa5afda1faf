package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/stratalog/strata/internal/fuzzbudget"
)

func TestFrameRoundTrip(t *testing.T) {
	msgs := []raftpb.Message{
		{Type: raftpb.MsgApp, From: 1, To: 2, Term: 3, Index: 10, LogTerm: 2, Commit: 9, Entries: testEntries(11, 13, 3)},
		{Type: raftpb.MsgHeartbeat, From: 1, To: 3, Term: 3},
		{Type: raftpb.MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &raftpb.Snapshot{Data: bytes.Repeat([]byte("s"), 200<<10),
			Metadata: raftpb.SnapshotMetadata{Index: 50, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}},
	}
	var buf []byte
	for i := range msgs {
		var err error
		if buf, err = appendFrame(buf, &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	r := bytes.NewReader(buf)
	for i := range msgs {
		m, err := readFrame(r, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := msgs[i].Marshal()
		got, _ := m.Marshal()
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d changed in transit", i)
		}
	}
	if _, err := readFrame(r, 1<<20); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v", err)
	}
}

func TestReadFrameRejectsGarbage(t *testing.T) {
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeat, From: 1, To: 2})
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 1
	undecodable := frameOf([]byte{0xff, 0xff, 0xff})
	unknownType := frameOf([]byte{0x08, 0x7f}) // field 1 (type) = 127
	for name, b := range map[string][]byte{
		"zero length":    {0, 0, 0, 0, 0, 0, 0, 0},
		"over max":       {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0},
		"truncated":      good[:len(good)-1],
		"bad crc":        badCRC,
		"not a message":  undecodable,
		"unknown type":   unknownType,
		"text":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"short header":   {1, 2},
		"claims a lot":   {0x00, 0x10, 0x00, 0x00, 1, 2, 3, 4, 5},
		"length no body": {0x00, 0x00, 0x00, 0x10, 0, 0, 0, 0},
	} {
		if _, err := readFrame(bytes.NewReader(b), 1<<20); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func frameOf(body []byte) []byte {
	var h [frameHdrLen]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(body)))
	binary.BigEndian.PutUint32(h[4:], crcOf(body))
	return append(h[:], body...)
}

// A frame claiming a huge length costs memory only for bytes that arrive.
func TestReadFrameDoesNotTrustLength(t *testing.T) {
	var h [frameHdrLen]byte
	binary.BigEndian.PutUint32(h[:], 200<<20)
	r := io.MultiReader(bytes.NewReader(h[:]), bytes.NewReader(make([]byte, 100<<10)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := readFrame(r, 256<<20); err == nil {
		t.Fatal("a frame cut short was accepted")
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Fatalf("reading a frame that claims 200 MiB allocated %d bytes", n)
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	for _, h := range []hello{
		{version: wireVersion, from: 7, to: 9, clusterID: "cluster-a", incarnation: 0xfeed},
		{version: wireVersion1, from: 7, to: 9, clusterID: "cluster-a"},
		{identify: true, version: wireVersion, from: 7, to: 9, clusterID: "cluster-a"},
		{observer: true, version: wireVersion1, from: 70, to: 9, clusterID: "cluster-a"},
		{observer: true, version: wireVersion, from: 70, to: 9, clusterID: "cluster-a"},
	} {
		b := appendHello(nil, h)
		got, err := readHello(bytes.NewReader(b))
		if err != nil || got != h {
			t.Fatalf("hello: %+v %v, want %+v", got, err, h)
		}
		// Only a voter's version 2 hello is longer than version 1's.
		if want := 4 + 1 + 8 + 8 + 1 + len(h.clusterID); h.hasIncarnation() != (len(b) == want+8) || !h.hasIncarnation() && len(b) != want {
			t.Fatalf("hello %+v is %d bytes", h, len(b))
		}
	}
	for _, a := range []answer{
		{version: wireVersion, status: hsWrongCluster, id: 9, clusterID: "cluster-b", incarnation: 0xbeef},
		{version: wireVersion1, status: hsOK, id: 9, clusterID: "cluster-b"},
	} {
		gotA, err := readAnswer(bytes.NewReader(appendAnswer(nil, a)))
		if err != nil || gotA != a {
			t.Fatalf("answer: %+v %v, want %+v", gotA, err, a)
		}
	}
	if _, err := readHello(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n...."))); !errors.Is(err, errBadMagic) {
		t.Fatalf("http request as hello: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	good, _ := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Entries: testEntries(1, 2, 1)})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3, 4, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Must not panic; with a valid CRC the body reaches the decoder.
		fuzzbudget.Run(t, len(b), func() { readFrame(bytes.NewReader(b), 1<<16) })
		if len(b) > 0 {
			framed := frameOf(b)
			fuzzbudget.Run(t, len(framed), func() { readFrame(bytes.NewReader(framed), 1<<16) })
		}
	})
}
