package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/record"
)

// sessionFetch is a raw incremental or full fetch of a session.
func sessionFetch(version int16, topic fetchTopic, id, epoch, maxWaitMs int32, parts []fetchPart, forget []int32) *kmsg.FetchRequest {
	req := newFetchRequest(version, topic, maxWaitMs, 1, 1<<20, parts...)
	if len(parts) == 0 {
		req.Topics = nil
	}
	req.SessionID, req.SessionEpoch = id, epoch
	if len(forget) > 0 {
		ft := kmsg.NewFetchRequestForgottenTopic()
		if version >= 13 {
			ft.TopicID = topic.id
		} else {
			ft.Topic = topic.name
		}
		ft.Partitions = forget
		req.ForgottenTopics = append(req.ForgottenTopics, ft)
	}
	return req
}

// carried lists the partitions a fetch response carries with their batch
// counts, and fails on any error.
func carried(t *testing.T, resp *kmsg.FetchResponse) map[int32]int {
	t.Helper()
	if resp.ErrorCode != 0 {
		t.Fatalf("fetch: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	out := map[int32]int{}
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("partition %d: %v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
			out[p.Partition] = len(batchesIn(t, p.RecordBatches))
		}
	}
	return out
}

// TestFetchSessions drives incremental fetch sessions (KIP-227) over the
// wire at the versions where the session addressing changes (v7: sessions;
// v13: topic ids; v17: the latest with ReplicaState): a full fetch opens a
// session, incremental fetches name only changed partitions and get only
// the partitions with news, forgotten partitions leave the session, the
// last one closes it, and the session errors come as Kafka sends them.
func TestFetchSessions(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	for _, version := range []int16{7, 12, 13, 17} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) {
			topic := fmt.Sprintf("sessions-v%d", version)
			if _, err := n.admin().CreateTopic(ctx, 2, 1, nil, topic); err != nil {
				t.Fatal(err)
			}
			c := n.raw()
			batch := func(n int) []byte {
				return buildBatch(t, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), n)
			}
			produceTo(t, c, topic, 0, batch(3))
			id, _ := topicMetadata(t, c, topic)
			ft := fetchTopic{topic, id}
			both := []fetchPart{{0, 0, 1 << 20}, {1, 0, 1 << 20}}

			// A full fetch opens a session and carries every partition.
			resp := c.roundTrip(sessionFetch(version, ft, 0, 0, 0, both, nil)).(*kmsg.FetchResponse)
			if got := carried(t, resp); len(got) != 2 || got[0] != 1 || got[1] != 0 {
				t.Fatalf("full fetch carried %v, want partition 0 with its batch and partition 1 empty", got)
			}
			sid := resp.SessionID
			if sid == 0 {
				t.Fatal("full fetch at epoch 0 opened no session")
			}

			// Partition 0's offset moves past the batch: nothing is new.
			resp = c.roundTrip(sessionFetch(version, ft, sid, 1, 0, []fetchPart{{0, 3, 1 << 20}}, nil)).(*kmsg.FetchResponse)
			if got := carried(t, resp); len(got) != 0 || resp.SessionID != sid {
				t.Fatalf("incremental fetch with nothing new: session %d carried %v, want session %d and nothing", resp.SessionID, got, sid)
			}

			// New data on partition 1, asked for by no partition in the
			// request: the session reads it. The fetch waits for it.
			done := make(chan *kmsg.FetchResponse, 1)
			go func() {
				done <- c.roundTrip(sessionFetch(version, ft, sid, 2, 10000, nil, nil)).(*kmsg.FetchResponse)
			}()
			produceTo(t, n.raw(), topic, 1, batch(2))
			resp = <-done
			if got := carried(t, resp); len(got) != 1 || got[1] != 1 {
				t.Fatalf("incremental fetch after a write to partition 1 carried %v, want partition 1 alone with its batch", got)
			}

			// The same epoch again is refused, and does not move the session.
			resp = c.roundTrip(sessionFetch(version, ft, sid, 2, 0, nil, nil)).(*kmsg.FetchResponse)
			if resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code || len(resp.Topics) != 0 || resp.SessionID != 0 {
				t.Fatalf("repeated epoch: error %v with %d topics, session %d; want INVALID_FETCH_SESSION_EPOCH alone",
					kerr.ErrorForCode(resp.ErrorCode), len(resp.Topics), resp.SessionID)
			}

			// Forget partition 1; then the last one closes the session.
			resp = c.roundTrip(sessionFetch(version, ft, sid, 3, 0, nil, []int32{1})).(*kmsg.FetchResponse)
			if got := carried(t, resp); len(got) != 0 || resp.SessionID != sid {
				t.Fatalf("forgetting partition 1: session %d carried %v", resp.SessionID, got)
			}
			produceTo(t, c, topic, 1, batch(1))
			resp = c.roundTrip(sessionFetch(version, ft, sid, 4, 0, nil, nil)).(*kmsg.FetchResponse)
			if got := carried(t, resp); len(got) != 0 {
				t.Fatalf("a forgotten partition's write was carried: %v", got)
			}
			resp = c.roundTrip(sessionFetch(version, ft, sid, 5, 0, nil, []int32{0})).(*kmsg.FetchResponse)
			if resp.ErrorCode != 0 || resp.SessionID != 0 {
				t.Fatalf("forgetting the last partition: error %v, session %d; want the session closed (id 0)", kerr.ErrorForCode(resp.ErrorCode), resp.SessionID)
			}
			resp = c.roundTrip(sessionFetch(version, ft, sid, 6, 0, nil, nil)).(*kmsg.FetchResponse)
			if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("closed session: %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(resp.ErrorCode))
			}

			// Sessionless full fetches (epoch -1), and a full fetch
			// naming a session it replaces.
			resp = c.roundTrip(sessionFetch(version, ft, 0, -1, 0, both, nil)).(*kmsg.FetchResponse)
			if got := carried(t, resp); len(got) != 2 || resp.SessionID != 0 {
				t.Fatalf("sessionless fetch: session %d carried %v", resp.SessionID, got)
			}
			resp = c.roundTrip(sessionFetch(version, ft, 0, 0, 0, both, nil)).(*kmsg.FetchResponse)
			first := resp.SessionID
			resp = c.roundTrip(sessionFetch(version, ft, first, 0, 0, both, nil)).(*kmsg.FetchResponse)
			if resp.SessionID == 0 || resp.SessionID == first {
				t.Fatalf("full fetch replacing session %d got session %d, want a new one", first, resp.SessionID)
			}
			if r := c.roundTrip(sessionFetch(version, ft, first, 1, 0, nil, nil)).(*kmsg.FetchResponse); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
				t.Fatalf("replaced session: %v, want FETCH_SESSION_ID_NOT_FOUND", kerr.ErrorForCode(r.ErrorCode))
			}

			for _, bad := range []struct{ id, epoch int32 }{{12345, 1}, {0, 1}, {0, -2}} {
				r := c.roundTrip(sessionFetch(version, ft, bad.id, bad.epoch, 0, both, nil)).(*kmsg.FetchResponse)
				if r.ErrorCode != kerr.FetchSessionIDNotFound.Code || len(r.Topics) != 0 {
					t.Fatalf("session %d epoch %d: %v with %d topics, want FETCH_SESSION_ID_NOT_FOUND alone",
						bad.id, bad.epoch, kerr.ErrorForCode(r.ErrorCode), len(r.Topics))
				}
			}
		})
	}
}

// TestFetchSessionTopicIDs checks that a session opened with topic names
// (v12) refuses a v13 incremental fetch (FETCH_SESSION_TOPIC_ID_ERROR), and
// that a request before v7 is served without a session whatever it holds.
func TestFetchSessionTopicIDs(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	const topic = "session-ids"
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	id, _ := topicMetadata(t, c, topic)
	ft := fetchTopic{topic, id}
	part := []fetchPart{{0, 0, 1 << 20}}
	resp := c.roundTrip(sessionFetch(12, ft, 0, 0, 0, part, nil)).(*kmsg.FetchResponse)
	if resp.SessionID == 0 {
		t.Fatal("no session opened")
	}
	r := c.roundTrip(sessionFetch(13, ft, resp.SessionID, 1, 0, nil, nil)).(*kmsg.FetchResponse)
	if r.ErrorCode != kerr.FetchSessionTopicIDError.Code {
		t.Fatalf("v13 on a v12 session: %v, want FETCH_SESSION_TOPIC_ID_ERROR", kerr.ErrorForCode(r.ErrorCode))
	}
	old := newFetchRequest(4, ft, 0, 1, 1<<20, part...)
	if r := c.roundTrip(old).(*kmsg.FetchResponse); r.ErrorCode != 0 || len(r.Topics) != 1 {
		t.Fatalf("v4 fetch: %v with %d topics", kerr.ErrorForCode(r.ErrorCode), len(r.Topics))
	}
}
