package broker

// Fetch, v4..18. Record bytes go from segment files to the socket with
// sendfile: the response framing is encoded by internal/kwire around file
// regions from replication.Partition.Read. A consumer's read stops at the
// high watermark, or with read_committed (IsolationLevel 1) at the last
// stable offset, with the aborted transactions it covers (fetch_txn.go); a
// follower's (replica id >= 0: the field before v15,
// ReplicaState after) at the log end, and its fetch offset tells the leader
// how far it has replicated. The first batch of the first non-empty
// partition is returned whole even past max_bytes (KIP-74). A fetch that
// finds fewer than min_bytes waits up to max_wait for any of its partitions
// to move, without blocking the connection's later requests; a partition
// with an error (or a follower's diverging epoch) answers at once, as
// Kafka does, with whatever the other partitions have.
//
// Incremental fetch sessions (KIP-227) are kept in the broker's
// fetchsession.Cache (fetch_session.go): the partitions read are the
// request's for a full fetch and the session's for an incremental one, and
// an incremental response leaves out the partitions with nothing new.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/fetchsession"
	"github.com/stratalog/strata/internal/kwire"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/quota"
	"github.com/stratalog/strata/internal/replication"
)

// maxFetchRegions bounds the file regions one fetch response carries.
// Each pins its segment's descriptor until the response is sent
// (storage's descriptor cache cannot close a pinned file), so a response
// over every partition of a broker with 100,000 would need 100,000 open
// files, past the process limit. Once the bound is reached, the
// remaining partitions answer without records, as when max_bytes is
// spent: the client fetches them next.
const maxFetchRegions = 1000

type fetch struct {
	ctx     context.Context // the connection's: done when the client goes away
	b       *Broker
	r       *request
	req     *kmsg.FetchRequest
	sess    *fetchsession.Context
	replica int32       // the fetching follower, -1 for a consumer
	out     []fetchPart // one per sess.Partitions()
	reads   []replication.FetchResult
	bytes   int64
	regions int // file regions in reads: each pins a segment's descriptor until sent
	// watch is every partition read without an error: the ones whose
	// movement a waiting fetch wakes on.
	watch []*replication.Partition
	// urgent is set when a partition has an error or a diverging epoch:
	// the fetch answers at once.
	urgent bool
}

func (b *Broker) handleFetch(ctx context.Context, r *request) {
	req := r.body.(*kmsg.FetchRequest)
	replica := req.ReplicaID
	if r.version >= 15 {
		replica = req.ReplicaState.ID
	}
	sess, err := b.sessions.NewContext(sessionRequest(r.version, req, replica))
	if err != nil {
		b.log.Debug("fetch session refused", "client", r.clientID, "session", req.SessionID, "epoch", req.SessionEpoch, "err", err)
		resp := kmsg.NewPtrFetchResponse()
		resp.ErrorCode = sessionErrorCode(err)
		r.respond(resp)
		return
	}
	if replica < 0 && b.quotas.Active(quota.Fetch) {
		req.MaxBytes = b.fetchQuotaMaxBytes(r, req.MaxBytes)
	}
	f := &fetch{ctx: ctx, b: b, r: r, req: req, sess: sess, replica: replica}
	f.read()
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	if f.bytes >= int64(req.MinBytes) || maxWait <= 0 || len(f.watch) == 0 || f.urgent {
		f.send()
		return
	}
	go f.wait(maxWait)
}

// wait re-reads whenever one of its partitions' high watermark or log end
// moves until min_bytes is reached or max_wait passes. It answers early when
// the broker stops, and gives up (releasing the file references) when the
// client disconnects. One Waiter watches every partition (a bell rung
// between the read and the wait stays rung), so a wake-up costs a re-read,
// not a select over thousands of channels.
func (f *fetch) wait(maxWait time.Duration) {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	w := replication.NewWaiter()
	watched := slices.Clone(f.watch) // read reuses f.watch
	for _, p := range watched {
		p.Watch(w)
	}
	defer func() {
		for _, p := range watched {
			p.Unwatch(w)
		}
	}()
	// A partition that moved after the first read and before Watch rang
	// nobody: read once more now that every partition is watched.
	for {
		f.release()
		f.read()
		if f.bytes >= int64(f.req.MinBytes) || f.urgent {
			f.send()
			return
		}
		select {
		case <-timer.C:
			f.send()
			return
		case <-f.b.shutdown:
			f.send()
			return
		case <-f.ctx.Done():
			f.release()
			f.r.resp.CloseConn(context.Cause(f.ctx))
			return
		case <-w.C():
		}
	}
}

func (f *fetch) release() {
	for i := range f.reads {
		f.reads[i].Release()
	}
	f.reads = f.reads[:0]
}

func (f *fetch) send() {
	reads := f.reads
	f.reads = nil
	resp, records := f.response()
	records = f.r.patchFetch(resp, records)
	chunks := kwire.EncodeFetchResponse(nil, f.r.version, f.r.corrID, resp, records)
	if f.replica < 0 && (f.r.throttle > 0 || f.b.quotas.Active(quota.Fetch)) {
		if throttled := f.b.fetchQuota(f.r, resp, chunks); throttled != nil {
			for i := range reads {
				reads[i].Release()
			}
			f.r.resp.Respond(&network.Response{Chunks: kwire.EncodeFetchResponse(nil, f.r.version, f.r.corrID, throttled, nil)})
			return
		}
	}
	for i := range reads {
		reads[i].Sent() // the leader's replication throttle counts what goes out
	}
	f.r.resp.Respond(&network.Response{Chunks: chunks, Release: func() {
		for i := range reads {
			reads[i].Release()
		}
	}})
}

// read builds the response from the partitions' current state. It takes
// each partition it reads without an error in f.watch, for wait.
func (f *fetch) read() {
	req, b := f.req, f.b
	img := b.image()
	parts := f.sess.Partitions()
	f.out = make([]fetchPart, len(parts))
	f.bytes = 0
	f.regions = 0
	f.watch = f.watch[:0]
	f.urgent = false
	// max_bytes 0 still gets the first batch (KIP-74), as from Kafka.
	remaining := max(int64(req.MaxBytes), 0)
	minOne := true
	var t *metadata.Topic
	var tKey fetchsession.Key
	denied := false // READ refused on t (acl_checks_entries.go)
	for j := range parts {
		rq := &parts[j]
		o := &f.out[j]
		rp := &o.rp
		rp.Default()
		rp.Partition = rq.Partition
		rp.HighWatermark = -1
		if j == 0 || rq.TopicID != tKey.TopicID || rq.Topic != tKey.Topic {
			tKey = rq.Key
			if f.r.version >= 13 {
				t = img.TopicsByID[metadata.UUID(rq.TopicID)]
			} else {
				t = img.Topics[rq.Topic]
			}
			denied = t != nil && f.r.topicDenied != nil && f.r.topicDenied(t.Name)
		}
		if denied {
			rp.ErrorCode = codeTopic
			f.urgent = true
			continue
		}
		if t == nil {
			if f.r.version >= 13 {
				rp.ErrorCode = kerr.UnknownTopicID.Code
			} else {
				rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			f.urgent = true
			continue
		}
		p, err := b.partition(t.Name, rq.Partition)
		if err != nil {
			rp.ErrorCode = errorCode(err)
			f.urgent = true
			continue
		}
		limit := min(int64(rq.MaxBytes), remaining)
		if f.regions >= maxFetchRegions {
			limit = 0 // the rest next time, as when max_bytes is spent
		}
		fr, err := p.Read(replication.FetchParams{
			Offset: rq.FetchOffset, MaxBytes: int(max(limit, 0)), MinOneBatch: minOne,
			CurrentLeaderEpoch: rq.CurrentLeaderEpoch, ReplicaID: f.replica, LastFetchedEpoch: rq.LastFetchedEpoch,
			Isolation: fetchIsolation(req),
		})
		if err == nil || errors.Is(err, replication.ErrOffsetOutOfRange) {
			rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = fr.HighWatermark, fr.LastStableOffset, fr.LogStartOffset
		}
		if err != nil {
			rp.ErrorCode = errorCode(err)
			f.urgent = true
			continue
		}
		f.watch = append(f.watch, p)
		if fr.Diverging {
			rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = fr.DivergingEpoch, fr.DivergingEndOffset
			o.diverging = true
			f.urgent = true
			continue
		}
		rp.AbortedTransactions = abortedTransactions(fr.AbortedTxns)
		rr := &fr.Records
		if rr.Size == 0 {
			fr.Release()
			continue
		}
		f.reads = append(f.reads, fr)
		o.chunks = make([]network.Chunk, len(rr.Regions))
		for k, reg := range rr.Regions {
			o.chunks[k] = network.Chunk{File: reg.File, Offset: reg.Offset, Len: reg.Len}
		}
		f.bytes += rr.Size
		f.regions += len(rr.Regions)
		remaining -= rr.Size
		minOne = false
	}
}
