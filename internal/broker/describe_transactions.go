package broker

// DescribeTransactions, v0 (KIP-664): the state, producer, timeout, start
// and partitions of each transactional id this broker coordinates;
// NOT_COORDINATOR for the others, TRANSACTIONAL_ID_NOT_FOUND for unknown
// ones. Answered off the request goroutine (it waits for the shards).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDescribeTransactions(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeTransactionsRequest)
	go func() {
		resp := kmsg.NewPtrDescribeTransactionsResponse()
		for _, d := range b.opts.Txns.Describe(req.TransactionalIDs) {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID = d.TransactionalID
			if d.Err != nil {
				st.ErrorCode = errorCode(d.Err)
				st.ProducerID, st.ProducerEpoch = -1, -1
				st.StartTimestamp = -1
				resp.TransactionStates = append(resp.TransactionStates, st)
				continue
			}
			st.State = d.State.String()
			st.TimeoutMillis = d.TimeoutMs
			st.StartTimestamp = d.StartMs
			st.ProducerID, st.ProducerEpoch = d.ProducerID, d.ProducerEpoch
			for _, tp := range d.Partitions {
				if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
					st.Topics = append(st.Topics, kmsg.DescribeTransactionsResponseTransactionStateTopic{Topic: tp.Topic})
				}
				t := &st.Topics[len(st.Topics)-1]
				t.Partitions = append(t.Partitions, tp.Partition)
			}
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		r.respond(resp)
	}()
}
