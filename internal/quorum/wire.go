package quorum

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Handshake, both directions:
//
//	magic [4]byte "SQRH" (hello from a voter), "SQRO" (hello from an
//	        observer), "SQRI" (identify request) or "SQRA" (answer)
//	version uint8
//	hello:  from uint64, to uint64
//	answer: status uint8, id uint64 (the answering node)
//	cluster id: length uint8, bytes
//	incarnation uint64, version 2 only, in a voter's hello (the sender's)
//	        and in the answer to one or to an identify request (the
//	        answering node's)
//
// then frames: length uint32, CRC-32C uint32 of the payload, payload. On a
// voter's connection only the dialer sends, and the payload is a protobuf
// raftpb.Message. On an observer's connection the observer sends fetch
// requests and the voter answers each with one response (see fetch below).
// An identify request is answered and the connection closed.
//
// Versions: 1 has no incarnation; 2 adds it to voters' hellos and to their
// answers, and the identify request. A node accepts both. Its peers dial
// with version 2 and fall back to 1 when a node of version 1 answers
// hsBadVersion (a rolling upgrade). Observers' hellos and the answers to
// them keep the version 1 layout, which version 1 voters accept.
const (
	helloMagic         = "SQRH"
	observerHelloMagic = "SQRO"
	identifyMagic      = "SQRI"
	answerMagic        = "SQRA"
	wireVersion        = 2
	wireVersion1       = 1
	frameHdrLen        = 8
	smallFrame         = 64 << 10
	readChunkLen       = 1 << 20
)

// Handshake answer statuses.
const (
	hsOK byte = iota
	hsWrongCluster
	hsUnknownNode
	hsDuplicateNode
	hsWrongTarget
	hsBadVersion
	hsObserverIsVoter
	hsObserverIDZero
	hsTooManyObservers
	// The node at the id's voter address is another incarnation.
	hsNotTheVoter
	// The node at the id's voter address could not be asked.
	hsUnverified
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
	case hsObserverIsVoter:
		return "observer id is a voter's id"
	case hsObserverIDZero:
		return "observer id must be non-zero"
	case hsTooManyObservers:
		return "too many observer connections"
	case hsNotTheVoter:
		return "node id belongs to another process, the one at its voter address"
	case hsUnverified:
		return "cannot check the node id with the node at its voter address"
	}
	return fmt.Sprintf("status %d", s)
}

type hello struct {
	observer  bool // an observer's hello: from is the observer's id
	identify  bool // an identify request: answered, then closed
	version   byte
	from, to  uint64
	clusterID string
	// incarnation identifies the sending process in a voter's hello of
	// version 2: random, non-zero, drawn at each start.
	incarnation uint64
}

// hasIncarnation reports whether h's layout carries an incarnation.
func (h hello) hasIncarnation() bool {
	return !h.observer && !h.identify && h.version == wireVersion
}

type answer struct {
	version   byte
	status    byte
	id        uint64
	clusterID string
	// incarnation is the answering node's, in an answer of version 2.
	incarnation uint64
}

var errBadMagic = errors.New("not a quorum peer (bad handshake magic)")

func appendHello(b []byte, h hello) []byte {
	switch {
	case h.observer:
		b = append(b, observerHelloMagic...)
	case h.identify:
		b = append(b, identifyMagic...)
	default:
		b = append(b, helloMagic...)
	}
	b = append(b, h.version)
	b = binary.BigEndian.AppendUint64(b, h.from)
	b = binary.BigEndian.AppendUint64(b, h.to)
	b = append(b, byte(len(h.clusterID)))
	b = append(b, h.clusterID...)
	if h.hasIncarnation() {
		b = binary.BigEndian.AppendUint64(b, h.incarnation)
	}
	return b
}

func appendAnswer(b []byte, a answer) []byte {
	b = append(b, answerMagic...)
	b = append(b, a.version, a.status)
	b = binary.BigEndian.AppendUint64(b, a.id)
	b = append(b, byte(len(a.clusterID)))
	b = append(b, a.clusterID...)
	if a.version == wireVersion {
		b = binary.BigEndian.AppendUint64(b, a.incarnation)
	}
	return b
}

func readHello(r io.Reader) (hello, error) {
	var h hello
	var b [4 + 1 + 8 + 8 + 1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return h, fmt.Errorf("read handshake: %w", err)
	}
	switch string(b[:4]) {
	case helloMagic:
	case observerHelloMagic:
		h.observer = true
	case identifyMagic:
		h.identify = true
	default:
		return h, errBadMagic
	}
	h.version = b[4]
	h.from = binary.BigEndian.Uint64(b[5:])
	h.to = binary.BigEndian.Uint64(b[13:])
	id, err := readClusterID(r, b[21])
	h.clusterID = id
	if err == nil && h.hasIncarnation() {
		h.incarnation, err = readIncarnation(r)
	}
	return h, err
}

func readIncarnation(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("read handshake incarnation: %w", err)
	}
	return binary.BigEndian.Uint64(b[:]), nil
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
	if err == nil && a.version == wireVersion {
		a.incarnation, err = readIncarnation(r)
	}
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

// readFrame reads and decodes one frame of a voter's connection.
func readFrame(r io.Reader, max int) (raftpb.Message, error) {
	var m raftpb.Message
	body, err := readFrameBytes(r, max)
	if err != nil {
		return m, err
	}
	if err := m.Unmarshal(body); err != nil {
		return m, fmt.Errorf("decode message: %w", err)
	}
	if _, ok := raftpb.MessageType_name[int32(m.Type)]; !ok {
		return m, fmt.Errorf("unknown message type %d", m.Type)
	}
	return m, nil
}

// readFrameBytes reads one frame and returns its checked payload.
func readFrameBytes(r io.Reader, max int) ([]byte, error) {
	n, crc, err := readFrameHeader(r, max)
	if err != nil {
		return nil, err
	}
	return readFrameBody(r, n, crc)
}

// readFrameHeader reads a frame header; a length of zero or over max is
// refused before anything is allocated for it.
func readFrameHeader(r io.Reader, max int) (n, crc uint32, err error) {
	var h [frameHdrLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, 0, err
	}
	n = binary.BigEndian.Uint32(h[:])
	if n == 0 || uint64(n) > uint64(max) {
		return 0, 0, fmt.Errorf("%w %d (max %d)", errFrameLength, n, max)
	}
	return n, binary.BigEndian.Uint32(h[4:]), nil
}

// readFrameBody reads the n-byte payload after a header and checks its
// CRC. A large payload's buffer grows only as its bytes arrive.
func readFrameBody(r io.Reader, n, crc uint32) ([]byte, error) {
	var body []byte
	if n <= smallFrame {
		body = make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("read frame: %w", err)
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
				return nil, fmt.Errorf("read frame: %w", err)
			}
		}
		body = buf.Bytes()
	}
	if crc32.Checksum(body, castagnoli) != crc {
		return nil, errFrameCRC
	}
	return body, nil
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

// Observer fetches. After an observer's handshake the observer sends
// requests and the voter answers each with one response, in frames as
// above. Request payload:
//
//	type uint8 = 1 (fetch)
//	from uint64       the next index the observer wants (its applied + 1)
//	maxBytes uint32   how much entry data it takes in one response
//	maxWait uint32    milliseconds the voter may hold the request while it
//	                  has nothing from on
//
// Response payload:
//
//	type uint8: 2 (entries) or 3 (snapshot)
//	leader uint64     the leader the voter knows of, 0 if none
//	commit uint64     the voter's commit index
//	entries:  next uint64 (the index after the last entry covered: the
//	          observer has applied next-1 once it applies them), count
//	          uint32, then count times: index uint64, length uint32, data
//	          (what StateMachine.Apply receives; the entries voters do not
//	          apply, conf changes and empty ones, are covered but not listed)
//	snapshot: index uint64, term uint64, data (the rest of the payload)
const (
	fetchRequestType  byte = 1
	fetchEntriesType  byte = 2
	fetchSnapshotType byte = 3

	fetchRequestLen = 1 + 8 + 4 + 4
	// maxFetchRequestFrame bounds what a voter reads from an observer.
	maxFetchRequestFrame = 64
	fetchRespHdrLen      = 1 + 8 + 8
	fetchEntryHdrLen     = 8 + 4
)

type fetchRequest struct {
	from     uint64
	maxBytes uint32
	maxWait  time.Duration
}

type fetchResponse struct {
	leader, commit uint64
	snapshot       bool
	// entries
	next    uint64
	entries []observedEntry
	// snapshot
	snapIndex, snapTerm uint64
	snapData            []byte
}

type observedEntry struct {
	index uint64
	data  []byte
}

var errBadFetch = errors.New("malformed fetch message")

// beginFrame reserves a frame header; endFrame fills it in once the payload
// after it is appended.
func beginFrame(b []byte) ([]byte, int) {
	return append(b, make([]byte, frameHdrLen)...), len(b)
}

func endFrame(b []byte, start int) []byte {
	body := b[start+frameHdrLen:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

func appendFetchRequest(b []byte, r fetchRequest) []byte {
	b, start := beginFrame(b)
	b = append(b, fetchRequestType)
	b = binary.BigEndian.AppendUint64(b, r.from)
	b = binary.BigEndian.AppendUint32(b, r.maxBytes)
	b = binary.BigEndian.AppendUint32(b, uint32(min(r.maxWait.Milliseconds(), 1<<32-1)))
	return endFrame(b, start)
}

func decodeFetchRequest(b []byte) (fetchRequest, error) {
	var r fetchRequest
	if len(b) != fetchRequestLen || b[0] != fetchRequestType {
		return r, fmt.Errorf("%w: %d-byte request", errBadFetch, len(b))
	}
	r.from = binary.BigEndian.Uint64(b[1:])
	r.maxBytes = binary.BigEndian.Uint32(b[9:])
	r.maxWait = time.Duration(binary.BigEndian.Uint32(b[13:])) * time.Millisecond
	if r.from == 0 {
		return r, fmt.Errorf("%w: fetch from index 0", errBadFetch)
	}
	return r, nil
}

// appendFetchResponse frames r.
func appendFetchResponse(b []byte, r *fetchResponse) []byte {
	b, start := beginFrame(b)
	if r.snapshot {
		b = append(b, fetchSnapshotType)
	} else {
		b = append(b, fetchEntriesType)
	}
	b = binary.BigEndian.AppendUint64(b, r.leader)
	b = binary.BigEndian.AppendUint64(b, r.commit)
	if r.snapshot {
		b = binary.BigEndian.AppendUint64(b, r.snapIndex)
		b = binary.BigEndian.AppendUint64(b, r.snapTerm)
		b = append(b, r.snapData...)
		return endFrame(b, start)
	}
	b = binary.BigEndian.AppendUint64(b, r.next)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.entries)))
	for _, e := range r.entries {
		b = binary.BigEndian.AppendUint64(b, e.index)
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.data)))
		b = append(b, e.data...)
	}
	return endFrame(b, start)
}

// decodeFetchResponse decodes a response payload; the data it returns
// shares b.
func decodeFetchResponse(b []byte) (fetchResponse, error) {
	var r fetchResponse
	if len(b) < fetchRespHdrLen {
		return r, fmt.Errorf("%w: %d-byte response", errBadFetch, len(b))
	}
	typ := b[0]
	r.leader = binary.BigEndian.Uint64(b[1:])
	r.commit = binary.BigEndian.Uint64(b[9:])
	b = b[fetchRespHdrLen:]
	switch typ {
	case fetchSnapshotType:
		if len(b) < 16 {
			return r, fmt.Errorf("%w: short snapshot response", errBadFetch)
		}
		r.snapshot = true
		r.snapIndex = binary.BigEndian.Uint64(b)
		r.snapTerm = binary.BigEndian.Uint64(b[8:])
		r.snapData = b[16:]
		return r, nil
	case fetchEntriesType:
	default:
		return r, fmt.Errorf("%w: response type %d", errBadFetch, typ)
	}
	if len(b) < 12 {
		return r, fmt.Errorf("%w: short entries response", errBadFetch)
	}
	r.next = binary.BigEndian.Uint64(b)
	n := binary.BigEndian.Uint32(b[8:])
	b = b[12:]
	if uint64(n) > uint64(len(b)/fetchEntryHdrLen) {
		return r, fmt.Errorf("%w: %d entries in %d bytes", errBadFetch, n, len(b))
	}
	r.entries = make([]observedEntry, n)
	for i := range r.entries {
		if len(b) < fetchEntryHdrLen {
			return r, fmt.Errorf("%w: entry %d cut short", errBadFetch, i)
		}
		idx := binary.BigEndian.Uint64(b)
		k := binary.BigEndian.Uint32(b[8:])
		b = b[fetchEntryHdrLen:]
		if uint64(k) > uint64(len(b)) {
			return r, fmt.Errorf("%w: entry %d of %d bytes cut short", errBadFetch, idx, k)
		}
		r.entries[i] = observedEntry{index: idx, data: b[:k:k]}
		b = b[k:]
	}
	if len(b) != 0 {
		return r, fmt.Errorf("%w: %d bytes after the entries", errBadFetch, len(b))
	}
	return r, nil
}
