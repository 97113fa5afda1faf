package broker

// Fetch sessions (KIP-227) on the broker side of Fetch: the request's
// session fields become a fetchsession.Request, the cache says what to
// read (the request's partitions for a full fetch, the session's for an
// incremental one), and the response carries the session id and only the
// partitions the cache says the fetcher must hear about. Requests before
// v7 have no session fields and are sessionless full fetches.

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/fetchsession"
	"github.com/stratalog/strata/internal/network"
)

// fetchPart is what a read found for one partition of a fetch.
type fetchPart struct {
	rp        kmsg.FetchResponseTopicPartition
	chunks    []network.Chunk // the records, as file regions
	diverging bool
}

// newSessionCache sizes the broker's session cache from
// max.incremental.fetch.session.cache.slots.
func newSessionCache(opts Options) *fetchsession.Cache {
	slots := 1000
	if opts.Static != nil {
		slots = int(opts.Static.Int64("max.incremental.fetch.session.cache.slots"))
	}
	return fetchsession.NewCache(fetchsession.Config{Slots: slots, Now: opts.Now})
}

// FetchSessions describes the broker's fetch session cache.
func (b *Broker) FetchSessions() fetchsession.Stats { return b.sessions.Stats() }

// sessionRequest maps a Fetch request onto the session cache's terms:
// partitions keyed by topic id from v13, by name before.
func sessionRequest(version int16, req *kmsg.FetchRequest, replica int32) fetchsession.Request {
	sr := fetchsession.Request{SessionID: req.SessionID, Epoch: req.SessionEpoch,
		TopicIDs: version >= 13, Privileged: replica >= 0}
	if version < 7 {
		sr.SessionID, sr.Epoch = 0, fetchsession.FinalEpoch
	}
	key := func(topic string, id [16]byte, partition int32) fetchsession.Key {
		if sr.TopicIDs {
			return fetchsession.Key{TopicID: id, Partition: partition}
		}
		return fetchsession.Key{Topic: topic, Partition: partition}
	}
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	sr.Partitions = make([]fetchsession.Partition, 0, n)
	for i := range req.Topics {
		rt := &req.Topics[i]
		for j := range rt.Partitions {
			rq := &rt.Partitions[j]
			sr.Partitions = append(sr.Partitions, fetchsession.Partition{
				Key: key(rt.Topic, rt.TopicID, rq.Partition),
				Params: fetchsession.Params{FetchOffset: rq.FetchOffset, LogStartOffset: rq.LogStartOffset,
					MaxBytes: rq.PartitionMaxBytes, CurrentLeaderEpoch: rq.CurrentLeaderEpoch, LastFetchedEpoch: rq.LastFetchedEpoch},
			})
		}
	}
	if version >= 7 {
		for i := range req.ForgottenTopics {
			ft := &req.ForgottenTopics[i]
			for _, p := range ft.Partitions {
				sr.Forgotten = append(sr.Forgotten, key(ft.Topic, ft.TopicID, p))
			}
		}
	}
	return sr
}

// sessionErrorCode is the Fetch top-level error for a session refused.
func sessionErrorCode(err error) int16 {
	switch {
	case errors.Is(err, fetchsession.ErrSessionNotFound):
		return kerr.FetchSessionIDNotFound.Code
	case errors.Is(err, fetchsession.ErrInvalidEpoch):
		return kerr.InvalidFetchSessionEpoch.Code
	case errors.Is(err, fetchsession.ErrTopicIDMismatch):
		return kerr.FetchSessionTopicIDError.Code
	}
	return kerr.UnknownServerError.Code
}

// response closes the fetch's session step (opening a session for a full
// fetch, updating an incremental one) and builds the response from the
// partitions it must carry, grouping consecutive partitions of a topic
// as Kafka does. records[i][j] are the chunks of Topics[i].Partitions[j].
func (f *fetch) response() (*kmsg.FetchResponse, [][][]network.Chunk) {
	parts := f.sess.Partitions()
	results := make([]fetchsession.Result, len(f.out))
	for i := range f.out {
		o := &f.out[i]
		results[i] = fetchsession.Result{HighWatermark: o.rp.HighWatermark, LogStartOffset: o.rp.LogStartOffset, LastStableOffset: o.rp.LastStableOffset,
			HasRecords: len(o.chunks) > 0, Error: o.rp.ErrorCode != 0, Diverging: o.diverging}
	}
	id, include := f.sess.Finish(results)
	resp := kmsg.NewPtrFetchResponse()
	resp.SessionID = id
	var records [][][]network.Chunk
	for i := range parts {
		if !include[i] {
			continue
		}
		k := &parts[i].Key
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].TopicID != k.TopicID || resp.Topics[n-1].Topic != k.Topic {
			t := kmsg.NewFetchResponseTopic()
			t.Topic, t.TopicID = k.Topic, k.TopicID
			resp.Topics = append(resp.Topics, t)
			records = append(records, nil)
		}
		n := len(resp.Topics) - 1
		resp.Topics[n].Partitions = append(resp.Topics[n].Partitions, f.out[i].rp)
		records[n] = append(records[n], f.out[i].chunks)
	}
	return resp, records
}
