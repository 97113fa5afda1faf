package broker

// WriteTxnMarkers, v0..2: the transaction coordinator (or an admin's
// kafka-transactions.sh abort) asks the leaders of a transaction's
// partitions to write its commit or abort marker. Each marker is appended
// as the partition leader (replication.Partition.AppendTxnMarker: producer
// and coordinator epoch checks, min.insync.replicas) on the connection's
// reader, in request order; the answer waits, off the reader, until every
// marker written is durable by the fsync policy and replicated to the ISR
// (Kafka appends markers with acks=all), within writeTxnMarkersTimeout.
// v2 carries the transaction version: a version 2 marker (KIP-890 part 2)
// must carry an epoch newer than the producer's, else
// INVALID_PRODUCER_EPOCH, except a resend of the marker the partition
// already holds, which is answered like the first send: once that marker
// is durable and replicated.
// Errors are per partition: UNKNOWN_TOPIC_OR_PARTITION,
// NOT_LEADER_OR_FOLLOWER, INVALID_PRODUCER_EPOCH,
// TRANSACTION_COORDINATOR_FENCED, NOT_ENOUGH_REPLICAS(_AFTER_APPEND),
// REQUEST_TIMED_OUT. A marker replicated on a __consumer_offsets partition
// is then passed to Options.TxnMarkers, so the group coordinator can make
// the transaction's offset commits visible (or drop them).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/replication"
)

// TxnMarkers hears of transaction markers written to __consumer_offsets
// partitions (the group coordinator materializes or discards the
// transaction's offset commits, Kafka's
// GroupCoordinator.onTransactionCompleted). OnTxnMarker is called once the
// marker at offset is replicated, from the goroutine that answers the
// request; it must not block for long.
type TxnMarkers interface {
	OnTxnMarker(partition int32, producerID int64, producerEpoch int16, commit bool, offset int64)
}

// writeTxnMarkersTimeout bounds the wait for markers to replicate (Kafka
// uses request.timeout.ms, 30 s by default); the coordinator retries a
// marker that timed out.
const writeTxnMarkersTimeout = 30 * time.Second

// markerWrite is one appended marker waiting for durability.
type markerWrite struct {
	p      *replication.Partition
	m      *kmsg.WriteTxnMarkersRequestMarker
	offset int64
	rp     *kmsg.WriteTxnMarkersResponseMarkerTopicPartition
}

func (b *Broker) handleWriteTxnMarkers(_ context.Context, r *request) {
	req := r.body.(*kmsg.WriteTxnMarkersRequest)
	img := b.image()
	resp := kmsg.NewPtrWriteTxnMarkersResponse()
	resp.Markers = make([]kmsg.WriteTxnMarkersResponseMarker, len(req.Markers))
	var writes []markerWrite
	for i := range req.Markers {
		m := &req.Markers[i]
		rm := &resp.Markers[i]
		rm.ProducerID = m.ProducerID
		rm.Topics = make([]kmsg.WriteTxnMarkersResponseMarkerTopic, len(m.Topics))
		for j := range m.Topics {
			mt := &m.Topics[j]
			rt := &rm.Topics[j]
			rt.Topic = mt.Topic
			rt.Partitions = make([]kmsg.WriteTxnMarkersResponseMarkerTopicPartition, len(mt.Partitions))
			for k, idx := range mt.Partitions {
				rp := &rt.Partitions[k]
				rp.Default()
				rp.Partition = idx
				if t := img.Topics[mt.Topic]; t == nil || idx < 0 || int(idx) >= len(t.Partitions) {
					rp.ErrorCode = kerr.UnknownTopicOrPartition.Code
					continue
				}
				p, err := b.partition(mt.Topic, idx)
				if err == nil {
					var res replication.AppendResult
					tv := int8(0)
					if r.version >= 2 {
						tv = m.TransactionVersion
					}
					res, err = p.AppendTxnMarkerVersion(m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Committed, tv)
					if err == nil {
						writes = append(writes, markerWrite{p: p, m: m, offset: res.BaseOffset, rp: rp})
					}
				}
				if err != nil {
					b.log.Info("transaction marker not written", "topic", mt.Topic, "partition", idx, "producer_id", m.ProducerID,
						"producer_epoch", m.ProducerEpoch, "coordinator_epoch", m.CoordinatorEpoch, "commit", m.Committed, "err", err)
					rp.ErrorCode = errorCode(err)
				}
			}
		}
	}
	if len(writes) == 0 {
		r.respond(resp)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), writeTxnMarkersTimeout)
		defer cancel()
		for _, w := range writes {
			err := w.p.Sync(w.offset)
			if err == nil {
				err = w.p.WaitReplicated(ctx, w.offset)
			}
			if err != nil {
				b.log.Info("transaction marker not replicated", "topic", w.p.Topic, "partition", w.p.Index, "producer_id", w.m.ProducerID, "offset", w.offset, "err", err)
				w.rp.ErrorCode = errorCode(err)
				continue
			}
			if w.p.Topic == OffsetsTopic && b.opts.TxnMarkers != nil {
				b.opts.TxnMarkers.OnTxnMarker(w.p.Index, w.m.ProducerID, w.m.ProducerEpoch, w.m.Committed, w.offset)
			}
		}
		r.respond(resp)
	}()
}
