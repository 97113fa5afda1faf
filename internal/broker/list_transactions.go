package broker

// ListTransactions, v0..2 (KIP-664): the transactions this broker
// coordinates, filtered by state and producer id, by how long they have
// been running (v1, KIP-994) and by a transactional id regular expression
// (v2; Go's RE2 syntax, which covers the patterns kafka-transactions.sh
// users write; an invalid one gets INVALID_REGULAR_EXPRESSION). Unknown
// state names are echoed in UnknownStateFilters and match nothing, as
// Kafka answers. COORDINATOR_LOAD_IN_PROGRESS while a partition loads.

import (
	"context"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/txn"
)

func (b *Broker) handleListTransactions(_ context.Context, r *request) {
	req := r.body.(*kmsg.ListTransactionsRequest)
	resp := kmsg.NewPtrListTransactionsResponse()
	var f txn.ListFilter
	for _, name := range req.StateFilters {
		st, ok := txn.ParseState(name)
		if !ok {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
			continue
		}
		f.States = append(f.States, st)
	}
	if len(req.StateFilters) > 0 && len(f.States) == 0 {
		r.respond(resp) // only unknown states: nothing matches
		return
	}
	f.ProducerIDs = req.ProducerIDFilters
	if r.version >= 1 && req.DurationFilterMillis > 0 {
		f.MinDuration = time.Duration(req.DurationFilterMillis) * time.Millisecond
	}
	var re *regexp.Regexp
	if r.version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + *req.TransactionalIDPattern + ")$"); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			r.respond(resp)
			return
		}
	}
	go func() {
		l, err := b.opts.Txns.List(f)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			r.respond(resp)
			return
		}
		for _, t := range l {
			if re != nil && !re.MatchString(t.TransactionalID) {
				continue
			}
			resp.TransactionStates = append(resp.TransactionStates, kmsg.ListTransactionsResponseTransactionState{
				TransactionalID: t.TransactionalID, ProducerID: t.ProducerID, TransactionState: t.State.String()})
		}
		r.respond(resp)
	}()
}
