package replication

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestFetchSessionClient walks a fetcher's session through the sequence
// of fetches and answers that matter: each step lists the partitions to
// fetch (name=offset), the leader's answer, and what the request sent.
func TestFetchSessionClient(t *testing.T) {
	type step struct {
		addr   string
		parts  string // "a0=5 a1=0": topic a, partition 0 at offset 5...
		answer string // "session=N", "error=CODE", "transport"
		want   string // "id=I epoch=E send=[a0 a1] forget=[b0]"
	}
	steps := []step{
		{"l1", "a0=0 a1=0", "session=7", "id=0 epoch=0 send=[a0 a1] forget=[]"},
		// Nothing changed: an incremental fetch naming nothing.
		{"l1", "a0=0 a1=0", "session=7", "id=7 epoch=1 send=[] forget=[]"},
		// a0 moved, b0 added.
		{"l1", "a0=5 a1=0 b0=0", "session=7", "id=7 epoch=2 send=[a0 b0] forget=[]"},
		// a1 dropped (backing off): forgotten.
		{"l1", "a0=5 b0=0", "session=7", "id=7 epoch=3 send=[] forget=[a1]"},
		// a1 back; then a transport error: the next fetch is full and
		// closes session 7.
		{"l1", "a0=5 a1=0 b0=0", "transport", "id=7 epoch=4 send=[a1] forget=[]"},
		{"l1", "a0=5 a1=0 b0=0", "session=9", "id=7 epoch=0 send=[a0 a1 b0] forget=[]"},
		// The leader lost the session (restart, eviction).
		{"l1", "a0=6 a1=0 b0=0", "error=FETCH_SESSION_ID_NOT_FOUND", "id=9 epoch=1 send=[a0] forget=[]"},
		{"l1", "a0=6 a1=0 b0=0", "session=3", "id=0 epoch=0 send=[a0 a1 b0] forget=[]"},
		// Out of step: a full fetch that closes the session.
		{"l1", "a0=6 a1=0 b0=0", "error=INVALID_FETCH_SESSION_EPOCH", "id=3 epoch=1 send=[] forget=[]"},
		{"l1", "a0=6 a1=0 b0=0", "session=0", "id=3 epoch=0 send=[a0 a1 b0] forget=[]"},
		// No room at the leader: full fetches until a session opens.
		{"l1", "a0=6 a1=0 b0=0", "session=4", "id=0 epoch=0 send=[a0 a1 b0] forget=[]"},
		{"l1", "a0=7 a1=0 b0=0", "session=4", "id=4 epoch=1 send=[a0] forget=[]"},
		// The leader moved to another address: a new session there.
		{"l2", "a0=7 a1=0 b0=0", "session=1", "id=0 epoch=0 send=[a0 a1 b0] forget=[]"},
		// The session closed by the leader (incremental answered with id 0).
		{"l2", "a0=7 a1=0 b0=0", "session=0", "id=1 epoch=1 send=[] forget=[]"},
		{"l2", "a0=7", "session=2", "id=0 epoch=0 send=[a0] forget=[]"},
	}
	var s fetchSession
	for i, st := range steps {
		var parts []fetchPart
		for _, f := range strings.Fields(st.parts) {
			var topic string
			var part int32
			var off int64
			if _, err := fmt.Sscanf(f, "%1s%d=%d", &topic, &part, &off); err != nil {
				t.Fatalf("step %d: %q: %v", i, f, err)
			}
			parts = append(parts, fetchPart{tp: TopicPartition{topic, part}, params: fetchParams{offset: off, lastEpoch: -1, maxBytes: 100}})
		}
		req := kmsg.NewPtrFetchRequest()
		s.fill(req, st.addr, parts)
		var sent, forgot []string
		for _, rt := range req.Topics {
			for _, p := range rt.Partitions {
				sent = append(sent, fmt.Sprintf("%s%d", rt.Topic, p.Partition))
			}
		}
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				forgot = append(forgot, fmt.Sprintf("%s%d", ft.Topic, p))
			}
		}
		slices.Sort(sent)
		slices.Sort(forgot)
		got := fmt.Sprintf("id=%d epoch=%d send=%v forget=%v", req.SessionID, req.SessionEpoch, sent, forgot)
		if got != st.want {
			t.Fatalf("step %d: request %s, want %s", i, got, st.want)
		}
		resp := kmsg.NewPtrFetchResponse()
		switch {
		case st.answer == "transport":
			s.failed()
			continue
		case strings.HasPrefix(st.answer, "error="):
			for _, e := range []*kerr.Error{kerr.FetchSessionIDNotFound, kerr.InvalidFetchSessionEpoch} {
				if e.Message == strings.TrimPrefix(st.answer, "error=") {
					resp.ErrorCode = e.Code
				}
			}
			if resp.ErrorCode == 0 {
				t.Fatalf("step %d: unknown error %s", i, st.answer)
			}
			if s.answered(resp) || !sessionError(resp.ErrorCode) {
				t.Fatalf("step %d: a session error must not be applied and must be retried at once", i)
			}
		default:
			if _, err := fmt.Sscanf(st.answer, "session=%d", &resp.SessionID); err != nil {
				t.Fatal(err)
			}
			if !s.answered(resp) {
				t.Fatalf("step %d: an answer without error must be applied", i)
			}
		}
	}
}
