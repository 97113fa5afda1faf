package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Handshake, both directions:
//
//	magic [4]byte "SQRH" (hello, from the dialer) or "SQRA" (answer)
//	version uint8
//	hello:  from uint64, to uint64
//	answer: status uint8, id uint64 (the answering node)
//	cluster id: length uint8, bytes
//
// then, from the dialer only, frames: length uint32, CRC-32C uint32 of the
// payload, payload (a protobuf raftpb.Message).
const (
	helloMagic   = "SQRH"
	answerMagic  = "SQRA"
	wireVersion  = 1
	frameHdrLen  = 8
	smallFrame   = 64 << 10
	readChunkLen = 1 << 20
)

// Handshake answer statuses.
const (
	hsOK byte = iota
	hsWrongCluster
	hsUnknownNode
	hsDuplicateNode
	hsWrongTarget
	hsBadVersion
)

func hsStatusText(s byte) string {
	switch s {
	case hsOK:
		return "ok"
	case hsWrongCluster:
		return "wrong cluster id"
	case hsUnknownNode:
		return "unknown node id"
	case hsDuplicateNode:
		return "duplicate node id"
	case hsWrongTarget:
		return "addressed to another node id"
	case hsBadVersion:
		return "unsupported protocol version"
	}
	return fmt.Sprintf("status %d", s)
}

type hello struct {
	version   byte
	from, to  uint64
	clusterID string
}

type answer struct {
	version   byte
	status    byte
	id        uint64
	clusterID string
}

var errBadMagic = errors.New("not a quorum peer (bad handshake magic)")

func appendHello(b []byte, h hello) []byte {
	b = append(b, helloMagic...)
	b = append(b, h.version)
	b = binary.BigEndian.AppendUint64(b, h.from)
	b = binary.BigEndian.AppendUint64(b, h.to)
	b = append(b, byte(len(h.clusterID)))
	return append(b, h.clusterID...)
}

func appendAnswer(b []byte, a answer) []byte {
	b = append(b, answerMagic...)
	b = append(b, a.version, a.status)
	b = binary.BigEndian.AppendUint64(b, a.id)
	b = append(b, byte(len(a.clusterID)))
	return append(b, a.clusterID...)
}

func readHello(r io.Reader) (hello, error) {
	var h hello
	var b [4 + 1 + 8 + 8 + 1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return h, fmt.Errorf("read handshake: %w", err)
	}
	if string(b[:4]) != helloMagic {
		return h, errBadMagic
	}
	h.version = b[4]
	h.from = binary.BigEndian.Uint64(b[5:])
	h.to = binary.BigEndian.Uint64(b[13:])
	id, err := readClusterID(r, b[21])
	h.clusterID = id
	return h, err
}

func readAnswer(r io.Reader) (answer, error) {
	var a answer
	var b [4 + 1 + 1 + 8 + 1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return a, fmt.Errorf("read handshake answer: %w", err)
	}
	if string(b[:4]) != answerMagic {
		return a, errBadMagic
	}
	a.version, a.status = b[4], b[5]
	a.id = binary.BigEndian.Uint64(b[6:])
	id, err := readClusterID(r, b[14])
	a.clusterID = id
	return a, err
}

func readClusterID(r io.Reader, n byte) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("read handshake cluster id: %w", err)
	}
	return string(b), nil
}

// appendFrame encodes m as a frame.
func appendFrame(b []byte, m *raftpb.Message) ([]byte, error) {
	n := m.Size()
	start := len(b)
	b = append(b, make([]byte, frameHdrLen+n)...)
	if _, err := m.MarshalToSizedBuffer(b[start+frameHdrLen:]); err != nil {
		return b[:start], fmt.Errorf("encode %s: %w", m.Type, err)
	}
	body := b[start+frameHdrLen:]
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b, nil
}

var (
	errFrameLength = errors.New("bad frame length")
	errFrameCRC    = errors.New("frame CRC mismatch")
)

// readFrame reads and decodes one frame. A length over max is refused
// before anything is allocated for it, and a large frame's buffer grows
// only as its bytes arrive.
func readFrame(r io.Reader, max int) (raftpb.Message, error) {
	var m raftpb.Message
	var h [frameHdrLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return m, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || uint64(n) > uint64(max) {
		return m, fmt.Errorf("%w %d (max %d)", errFrameLength, n, max)
	}
	var body []byte
	if n <= smallFrame {
		body = make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return m, fmt.Errorf("read frame: %w", err)
		}
	} else {
		var buf bytes.Buffer
		buf.Grow(smallFrame)
		for rest := int64(n); rest > 0; {
			k, err := io.CopyN(&buf, r, min(rest, readChunkLen))
			rest -= k
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return m, fmt.Errorf("read frame: %w", err)
			}
		}
		body = buf.Bytes()
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return m, errFrameCRC
	}
	if err := m.Unmarshal(body); err != nil {
		return m, fmt.Errorf("decode message: %w", err)
	}
	if _, ok := raftpb.MessageType_name[int32(m.Type)]; !ok {
		return m, fmt.Errorf("unknown message type %d", m.Type)
	}
	return m, nil
}

// checkPeerMessage rejects messages no honest peer sends: another sender
// or recipient than the handshake named, a node-local message type, or a
// proposal (proposals are never forwarded).
func checkPeerMessage(m *raftpb.Message, from, self uint64) error {
	switch {
	case m.From != from:
		return fmt.Errorf("message from node %d on node %d's connection", m.From, from)
	case m.To != self:
		return fmt.Errorf("message for node %d", m.To)
	case raft.IsLocalMsg(m.Type) || m.Type == raftpb.MsgProp:
		return fmt.Errorf("peer sent local message type %s", m.Type)
	}
	return nil
}
