package broker

// DescribeProducers, v0: the active producers of each partition as its
// leader knows them (id, epoch, last sequence, last timestamp, coordinator
// epoch of its last marker, start of its ongoing transaction), what
// kafka-transactions.sh describe-producers shows to find a hanging
// transaction. Only the leader answers (NOT_LEADER_OR_FOLLOWER otherwise),
// as Kafka's, which reads the leader's producer state.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDescribeProducers(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeProducersRequest)
	img := b.image()
	resp := kmsg.NewPtrDescribeProducersResponse()
	resp.Topics = make([]kmsg.DescribeProducersResponseTopic, len(req.Topics))
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := &resp.Topics[i]
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.DescribeProducersResponseTopicPartition, len(rt.Partitions))
		t := img.Topics[rt.Topic]
		for j, idx := range rt.Partitions {
			sp := &st.Partitions[j]
			sp.Default()
			sp.Partition = idx
			if t == nil || idx < 0 || int(idx) >= len(t.Partitions) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			p, err := b.partition(rt.Topic, idx)
			if err == nil && !p.IsLeader() {
				err = kerr.NotLeaderForPartition
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				sp.ErrorMessage = errorMessage(err)
				continue
			}
			for _, pi := range p.ActiveProducers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID, ap.ProducerEpoch = pi.ProducerID, int32(pi.ProducerEpoch)
				ap.LastSequence, ap.LastTimestamp = pi.LastSequence, pi.LastTimestamp
				ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = pi.CoordinatorEpoch, pi.CurrentTxnStartOffset
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
		}
	}
	r.respond(resp)
}
