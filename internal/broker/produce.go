package broker

// Produce, v0..13. Versions are advertised from 0 because librdkafka turns
// compression off unless they are (DESIGN.md section 4), but only record
// batch v2 (magic 2) is accepted: older message sets get
// UNSUPPORTED_FOR_MESSAGE_FORMAT. Each partition carries exactly one batch,
// as Kafka requires for v3+. v13 names topics by id.
//
// The partition owns the rules (replication.Partition.AppendAsLeader: sizes,
// magic, CRC, records, timestamps, recompression, min.insync.replicas); this
// file decodes, calls and encodes. Appends happen on the connection's reader
// goroutine, in request order, so a producer's pipelined batches land in
// sequence order. Waiting (fsync with log.fsync=always; acks=all until
// every in-sync replica has the batch, bounded by the request's timeout)
// happens on another goroutine, except for acks=0, whose sync runs on the
// reader (nobody waits for it, and the next request then waits its turn).
// acks=0 gets no response; if any partition failed, the connection is
// closed instead, as Kafka does, so the client notices. Transactional
// batches (produce_txn.go) need the request's transactional id, and with a
// TxnVerifier the coordinator's word before they open a transaction on a
// partition: such a request, and the connection's later produce requests
// until it has appended, are served off the reader, in order.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/replication"
)

// pendingSync is an appended batch whose acknowledgement waits for fsync
// (log.fsync=always) or for the ISR (acks=all) through its last offset.
type pendingSync struct {
	p      *replication.Partition
	offset int64
	rp     *kmsg.ProduceResponseTopicPartition
}

func (b *Broker) handleProduce(_ context.Context, r *request) {
	req := r.body.(*kmsg.ProduceRequest)
	// Transactional batches may need their coordinator's word first
	// (produce_txn.go); then the request, and every later one on the
	// connection until it is appended, goes off the reader, in order.
	if run, async := b.produceOrdered(r, req); async {
		go run()
		return
	}
	// Every append below is synchronous and nothing kept refers to the
	// request's bytes (record slices alias them; topic names were copied
	// by the decoder), so the buffer can go back for the next request.
	resp, syncs, failed := b.produceAppend(r, req, nil)
	r.raw.Recycle()
	b.produceFinish(r, req, resp, syncs, failed)
}

// produceAppend appends every partition's batch and fills the response;
// verified holds the outcome of the transaction verifications done for the
// request (nil when none were).
func (b *Broker) produceAppend(r *request, req *kmsg.ProduceRequest, verified map[topicPartition]txnVerification) (*kmsg.ProduceResponse, []pendingSync, bool) {
	img := b.image()
	resp := kmsg.NewPtrProduceResponse()
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	acksOK := req.Acks == 0 || req.Acks == 1 || req.Acks == -1
	fsyncAlways := b.opts.Static.FsyncAlways()
	var syncs []pendingSync
	var journaled *replication.Partition // a partition appended to, for syncJournal
	// The journal saves writes when one write covers several partitions'
	// batches. A request to one partition gets nothing from it (one write
	// either way, and its tail would be written again later), so its batch
	// goes to the segment directly; except with log.fsync=always, where
	// the journal's fsync is shared by the requests of every partition
	// waiting at the same moment.
	useJournal := fsyncAlways || requestPartitions(req) > 1
	failed := false
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := &resp.Topics[i]
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		var t *metadata.Topic
		if r.version >= 13 {
			t = img.TopicsByID[metadata.UUID(rt.TopicID)]
		} else {
			t = img.Topics[rt.Topic]
		}
		for j := range rt.Partitions {
			rp := &st.Partitions[j]
			rp.Default()
			rp.Partition = rt.Partitions[j].Partition
			records := rt.Partitions[j].Records
			var err error
			switch {
			case !acksOK:
				err = kerr.InvalidRequiredAcks
			case t == nil && r.version >= 13:
				err = kerr.UnknownTopicID
			case t == nil:
				err = kerr.UnknownTopicOrPartition
			case internalTopic(t.Name):
				// The broker writes its internal topics in-process; no
				// client id lifts this, so a client cannot claim one.
				err = fmt.Errorf("%w: cannot append to internal topic %s", kerr.InvalidTopicException, t.Name)
			default:
				err = b.checkTxnProduce(req, records)
				if err != nil {
					break
				}
				var p *replication.Partition
				p, err = b.partition(t.Name, rp.Partition)
				if err == nil {
					var last int64
					var inJournal bool
					last, inJournal, err = b.produceOne(p, records, req.Acks, rp, verified[topicPartition{t.Name, rp.Partition}], useJournal)
					if inJournal {
						journaled = p
					}
					// acks=all waits only if the high watermark is not
					// past the batch already (it is at once when the
					// leader is the only in-sync replica).
					if err == nil && (fsyncAlways || req.Acks == -1 && p.HighWatermark() <= last) {
						syncs = append(syncs, pendingSync{p, last, rp})
					}
				}
			}
			if err != nil {
				failed = true
				rp.ErrorCode = errorCode(err)
				if r.version >= 8 {
					rp.ErrorMessage = errorMessage(err)
				}
			}
		}
	}
	// With log.fsync=always the journal is durable: its write and fsync
	// happen in each partition's Sync (syncAll, off the reader, shared by
	// the requests waiting), not here, where the fsync would hold up the
	// connection's next request.
	if journaled != nil && !fsyncAlways {
		if b.syncJournal(journaled, resp, r.version) {
			failed, syncs = true, nil
		}
	}
	return resp, syncs, failed
}

// requestPartitions counts the partitions a produce request writes to.
func requestPartitions(req *kmsg.ProduceRequest) int {
	n := 0
	for i := range req.Topics {
		n += len(req.Topics[i].Partitions)
	}
	return n
}

// syncJournal writes the request's journaled batches (one write for all
// its partitions; nothing when the journal is off) before the answer. If
// that fails, no batch of the request is acknowledged: every partition
// that had succeeded gets KAFKA_STORAGE_ERROR, and it reports true.
func (b *Broker) syncJournal(p *replication.Partition, resp *kmsg.ProduceResponse, version int16) bool {
	err := p.SyncJournal()
	if err == nil {
		return false
	}
	b.log.Warn("produce: journal write failed; the request's batches are not acknowledged", "err", err)
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			rp := &resp.Topics[i].Partitions[j]
			if rp.ErrorCode == 0 {
				rp.ErrorCode = kerr.KafkaStorageError.Code
				if version >= 8 {
					rp.ErrorMessage = errorMessage(err)
				}
			}
		}
	}
	return true
}

// produceFinish answers once the appended batches are durable and, for
// acks=all, replicated; it may wait, and so runs off the reader unless
// nothing is to be waited for.
func (b *Broker) produceFinish(r *request, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse, syncs []pendingSync, failed bool) {
	if req.Acks == 0 {
		// Nobody waits, but with log.fsync=always the high watermark
		// moves only once a batch is durable: without this sync, records
		// produced with acks=0 would stay invisible to consumers. It runs
		// here, on the connection's reader, as Kafka flushes in the
		// request's thread: the client's next request waits for it, which
		// bounds the work a fast acks=0 producer can queue up.
		b.syncAll(context.Background(), syncs, 0)
		if failed {
			r.resp.CloseConn(fmt.Errorf("acks=0 produce failed on at least one partition"))
		} else {
			r.resp.NoResponse()
		}
		return
	}
	if len(syncs) == 0 {
		r.respond(resp)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(req.TimeoutMillis, 0))*time.Millisecond)
		defer cancel()
		b.syncAll(ctx, syncs, req.Acks)
		r.respond(resp)
	}()
}

// syncAll waits until each appended batch is durable (log.fsync=always) and,
// for acks=all, in every in-sync replica, marking each that failed with
// its error.
func (b *Broker) syncAll(ctx context.Context, syncs []pendingSync, acks int16) {
	for _, s := range syncs {
		if err := s.p.Sync(s.offset); err != nil {
			// The partition logged the failure (once, not per request).
			b.log.Debug("fsync of produced batch", "topic", s.p.Topic, "partition", s.p.Index, "err", err)
			s.rp.ErrorCode = kerr.KafkaStorageError.Code
			s.rp.ErrorMessage = errorMessage(err) // encoded from v8 only
			continue
		}
		if acks != -1 {
			continue
		}
		if err := s.p.WaitReplicated(ctx, s.offset); err != nil {
			b.log.Debug("acks=all produce not acknowledged", "topic", s.p.Topic, "partition", s.p.Index, "err", err)
			s.rp.ErrorCode = errorCode(err)
		}
	}
}

// produceOne appends the partition's records through the partition's rules,
// filling rp, and returns the offset of the batch's last record, and
// whether the answer must wait for the journal's write (syncJournal).
func (b *Broker) produceOne(p *replication.Partition, records []byte, acks int16, rp *kmsg.ProduceResponseTopicPartition, v txnVerification, useJournal bool) (int64, bool, error) {
	var res replication.AppendResult
	var err error
	switch {
	case v.err != nil:
		err = v.err
	case b.opts.TxnVerifier != nil && batchTransactional(records):
		// Verified, or not in need of it when the partition looked: the
		// log refuses the batch if a marker ended the transaction since.
		res, err = p.AppendAsLeaderVerified(records, acks, v.guard)
	case useJournal:
		// Buffered in the shared journal if it is on: produceAppend
		// writes it once for the whole request (syncJournal).
		res, err = p.AppendAsLeaderJournaled(records, acks)
	default:
		res, err = p.AppendAsLeader(records, acks)
	}
	if err != nil {
		return -1, false, err
	}
	rp.BaseOffset = res.BaseOffset
	rp.LogAppendTime = res.LogAppendTime
	rp.LogStartOffset = res.LogStartOffset
	return res.LastOffset, res.Journaled, nil
}

// partition returns the hosted partition, or the error a client should see.
// When the image names this broker the leader but its partitions have not
// followed that image yet (a topic created, or a leadership moved, a moment
// ago: the manager applies images on its own goroutine), it waits briefly
// for them rather than answer NOT_LEADER_OR_FOLLOWER, which clients only
// act on at their next metadata refresh (franz-go: 5 s later).
func (b *Broker) partition(topic string, idx int32) (*replication.Partition, error) {
	p, err := b.opts.Partitions.Get(topic, idx)
	if err != nil {
		return nil, err
	}
	img := b.image()
	var pm *metadata.Partition
	if t := img.Topics[topic]; t != nil && idx >= 0 && int(idx) < len(t.Partitions) {
		pm = t.Partitions[idx]
	}
	if pm != nil && pm.Leader == b.opts.NodeID && (p == nil || !p.IsLeader() || p.LeaderEpoch() < pm.LeaderEpoch) {
		if b.opts.Partitions.WaitApplied(img.Offset, settleWait) {
			if p, err = b.opts.Partitions.Get(topic, idx); err != nil {
				return nil, err
			}
		}
	}
	if p == nil {
		// A partition of the cluster this broker has no replica of: the
		// client refreshes metadata. (A replica here that does not lead
		// answers the same from its own checks.)
		if pm != nil {
			return nil, kerr.NotLeaderForPartition
		}
		return nil, kerr.UnknownTopicOrPartition
	}
	return p, nil
}

// settleWait bounds how long a request waits for this broker's partitions
// to follow an image that already names it leader.
const settleWait = 500 * time.Millisecond
