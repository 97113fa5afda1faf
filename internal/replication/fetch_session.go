package replication

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetchSession is a fetcher's side of its incremental fetch session
// (KIP-227) with one leader broker, as Kafka's FetchSessionHandler: the
// first fetch is full (epoch 0) and opens a session; the next ones name
// only the partitions whose fetch parameters changed since the leader last
// heard them, and the ones dropped since (forgotten). Any failure (a
// transport error, a fetch cut short, a session error) makes the next
// fetch a full one that closes the old session and opens a new one. It is
// used by the fetcher's goroutine only.
type fetchSession struct {
	addr  string // the leader the session is with
	id    int32  // 0: none
	epoch int32  // of the next request: 0 for a full fetch
	// sent is the session as the leader holds it once the fetch in
	// flight succeeds; next is what the fetch in flight asks.
	sent map[TopicPartition]fetchParams
	next map[TopicPartition]fetchParams
}

// fetchParams are what a fetch asks of a partition.
type fetchParams struct {
	offset      int64
	lastEpoch   int32
	leaderEpoch int32
	logStart    int64
	maxBytes    int32
}

// fetchPart is a partition to fetch with what to ask.
type fetchPart struct {
	tp     TopicPartition
	id     [16]byte
	params fetchParams
}

// fill puts the partitions into req: all of them for a full fetch; for
// an incremental one those added or changed, and the dropped ones as
// forgotten topics.
func (s *fetchSession) fill(req *kmsg.FetchRequest, addr string, parts []fetchPart) {
	if addr != s.addr {
		// Another leader address: any session was with someone else.
		s.addr, s.id, s.epoch, s.sent = addr, 0, 0, nil
	}
	req.SessionID, req.SessionEpoch = s.id, s.epoch
	full := s.epoch == 0
	s.next = make(map[TopicPartition]fetchParams, len(parts))
	byTopic := map[string]int{}
	for _, fp := range parts {
		s.next[fp.tp] = fp.params
		if old, ok := s.sent[fp.tp]; ok && !full && old == fp.params {
			continue
		}
		i, ok := byTopic[fp.tp.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[fp.tp.Topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic, t.TopicID = fp.tp.Topic, fp.id
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = fp.tp.Partition
		rp.FetchOffset, rp.LastFetchedEpoch, rp.CurrentLeaderEpoch, rp.LogStartOffset = fp.params.offset, fp.params.lastEpoch, fp.params.leaderEpoch, fp.params.logStart
		rp.PartitionMaxBytes = fp.params.maxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if full {
		return
	}
	forgotten := map[string]int{}
	for tp := range s.sent {
		if _, ok := s.next[tp]; ok {
			continue
		}
		i, ok := forgotten[tp.Topic]
		if !ok {
			i = len(req.ForgottenTopics)
			forgotten[tp.Topic] = i
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.Topic = tp.Topic
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
		}
		req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, tp.Partition)
	}
}

// failed starts over after a fetch whose fate at the leader is unknown:
// the next fetch is full and closes the session, if there was one.
func (s *fetchSession) failed() { s.epoch, s.sent, s.next = 0, nil, nil }

// answered takes the response's session fields. It reports whether the
// response's partitions are to be applied (false on a top-level error:
// a session error, after which the fetcher asks again at once with a full
// fetch, or another, after which it backs off).
func (s *fetchSession) answered(resp *kmsg.FetchResponse) bool {
	full := s.epoch == 0
	switch {
	case resp.ErrorCode == kerr.FetchSessionIDNotFound.Code:
		s.id = 0
		s.failed()
		return false
	case resp.ErrorCode != 0:
		s.failed()
		return false
	case resp.SessionID == 0:
		// No session (the leader has no room, or closed it): full
		// fetches until one opens.
		s.id = 0
		s.failed()
	case !full && resp.SessionID != s.id:
		// Not the session asked for: start over (closing it).
		s.id = resp.SessionID
		s.failed()
	default:
		s.id = resp.SessionID
		s.epoch = nextSessionEpoch(s.epoch)
		s.sent, s.next = s.next, nil
	}
	return true
}

// nextSessionEpoch is the session epoch after e (1 after a full fetch,
// wrapping to 1 past the largest).
func nextSessionEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}

// sessionError reports whether a fetch's top-level error is about the
// session only (the fetcher retries at once with a full fetch).
func sessionError(code int16) bool {
	switch kerr.ErrorForCode(code) {
	case kerr.FetchSessionIDNotFound, kerr.InvalidFetchSessionEpoch, kerr.FetchSessionTopicIDError:
		return true
	}
	return false
}
