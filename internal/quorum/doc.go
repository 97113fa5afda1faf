// Package quorum is the Raft layer that carries Strata's __cluster_metadata
// log across the controller quorum, in the manner of Kafka's KRaft. It wraps
// go.etcd.io/raft/v3: a single goroutine owns a raft.RawNode (the core,
// core.go) and feeds it ticks, peer messages and proposals; the core persists
// what each Ready asks for before the messages that depend on it leave, then
// applies committed entries to the caller's StateMachine. Disk (wal.go,
// snapfile.go, storage.go) and network (transport.go, wire.go) are thin
// drivers around it.
//
// Membership is static: the voters are the Peers of the Config that first
// formats the data directory, and every node must be started with the same
// set of ids. A node that is the only voter elects itself at Start.
//
// Observers (observer.go), like KRaft's, follow the committed log without
// voting: broker-only nodes. An Observer fetches from one voter at a time
// over the voters' controller listener (observe.go serves it) and hands
// its StateMachine exactly what the voters' receive: Restore for a
// snapshot, then Apply for every committed entry in index order, with the
// same indexes and data, the entries voters skip (conf changes, a new
// leader's empty entry) skipped too. Raft knows nothing of observers. An
// observer keeps nothing on disk (so no files below are its): at Start it
// fetches from index 1, and a voter whose log no longer reaches back that
// far sends its latest snapshot instead.
//
// # Files in Config.Dir
//
//	LOCK                      flock(2)ed while a Node has the directory open
//	meta.json                 {"version":1,"cluster_id":...,"node_id":...}, written
//	                          once (temp file, fsync, rename, fsync dir); a Node
//	                          with another ClusterID or ID refuses to start
//	snapshot                  the latest raft snapshot: magic "SQSNAP01", CRC-32C
//	                          (Castagnoli) of the rest, then the protobuf
//	                          raftpb.Snapshot (metadata and StateMachine data).
//	                          Replaced atomically (snapshot.tmp, fsync, rename,
//	                          fsync dir). A fresh directory gets a bootstrap
//	                          snapshot at index 1, term 1 holding the voters.
//	wal/<seq>-<first>.wal     write-ahead log segments, both numbers 16 hex
//	                          digits: seq counts segments, first is the index the
//	                          first entry written to the segment would have.
//
// A WAL segment is the magic "SQWAL001" followed by records:
//
//	length uint32 (big endian) of type+payload
//	crc    uint32 CRC-32C of type+payload
//	type   uint8: 1 raftpb.Entry, 2 raftpb.HardState, 3 snapshot marker
//	       (index, term as two uint64: the log was reset to a snapshot
//	       received from the leader, so earlier entries are void)
//	payload
//
// Each segment opens with the current HardState, so old segments can be
// deleted without losing it. An entry at index i replaces every entry at i
// and after (Raft's log truncation). Segments roll at SegmentBytes and after
// each snapshot; a segment is deleted once the next one starts at or below
// snapshot index + 1, so the WAL always reaches back to the snapshot.
//
// Recovery loads the snapshot, then replays the segments in order. In the
// last segment an incomplete record, or a record that fails its CRC with
// nothing but zeros or the end of file after it, is a torn write: the file is
// truncated there and a warning logged. Any other bad record is ErrCorrupt:
// committed data is never skipped silently.
//
// # Wire protocol
//
// Each node dials one TCP connection to every other voter and sends its
// messages on it; it receives on the connections others dial to it. A
// connection opens with a handshake in both directions naming the cluster id
// and node ids (wire.go); a wrong cluster id, an unknown or duplicate node id
// is rejected and logged. The hello also carries the dialing process's
// incarnation (random, drawn at start), and a hello claiming node id is
// admitted only if the process listening at id's voter address reports that
// incarnation (known from this node's own handshake with it, else asked on
// a short identify connection): another process configured with a voter's
// id is refused whether or not the voter is connected, and a voter that
// restarted replaces its old, possibly half-open connection at once (see
// transport.admit, which also covers version 1 peers). Then frames follow:
// length uint32, CRC-32C uint32, protobuf raftpb.Message, bounded by
// Config.MaxMessageBytes. Anything malformed closes the connection.
//
// An observer dials the same listener and opens with its own hello (magic
// "SQRO" instead of "SQRH", otherwise the same fields, from being the
// observer's id). The voter refuses another cluster's observer, an observer
// id of 0 or a voter's id, and more than 256 observer connections, with an
// answer status saying why and a log line. Then the observer sends fetch
// requests {from: the next index it wants, maxBytes, maxWait} and the voter
// answers each with its leader id (0 if unknown), its commit index and
// either the entries it has applied from "from" on (at least one if there is
// any, up to maxBytes, capped at 8 MiB: each listed with its index and the
// data StateMachine.Apply receives, plus the index after the last entry
// covered), or, when "from" is below its first retained log index, its
// latest snapshot (index, term, data). A voter serves only what it has
// applied, so what an observer sees is committed and never ahead of that
// voter's state machine. With nothing from "from" on, the voter holds the
// request up to maxWait (observers ask for 500ms, voters cap it at 5s) or
// until it applies more or its leader changes. Requests are at most 64
// bytes; responses are bounded by the voter's MaxMessageBytes and the
// observer's. Anything malformed closes the connection; the observer then
// tries the next voter, with backoff. It prefers the leader: a response
// naming another voter as leader moves it there (at most once per
// RequestTimeout), and a voter that has known no leader for RequestTimeout
// is left for the next. Byte layouts are in wire.go.
//
// It is a leaf: it imports the standard library, go.etcd.io/raft/v3 and
// golang.org/x/sys/unix, nothing of Strata's. The controller is its
// StateMachine; internal/server wires the two.
package quorum
