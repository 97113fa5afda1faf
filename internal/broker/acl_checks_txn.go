package broker

// ACL checks of the transaction coordinator's APIs (rows in
// acl_checks.go), ready for their handlers.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

// checkAddPartitionsToTxn: a client's request (v0-3) needs WRITE on the
// transactional id (else every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
// and on each topic; if a topic is denied nothing is added (Kafka: the
// denied ones TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED).
// The brokers' verification batches (v4+) need CLUSTER_ACTION.
func checkAddPartitionsToTxn(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.AddPartitionsToTxnRequest)
	if r.version >= 4 {
		if c.can(authz.OpClusterAction, authz.ResourceCluster, authz.ClusterName) {
			return true
		}
		return denyWhole(r, codeCluster)
	}
	txnOK := c.can(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID)
	denied := map[string]bool{}
	for _, t := range req.Topics {
		if txnOK && !c.can(authz.OpWrite, authz.ResourceTopic, t.Topic) {
			denied[t.Topic] = true
		}
	}
	if txnOK && len(denied) == 0 {
		return true
	}
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range req.Topics {
		code := kerr.OperationNotAttempted.Code
		switch {
		case !txnOK:
			code = codeTxn
		case denied[t.Topic]:
			code = codeTopic
		}
		rt := kmsg.AddPartitionsToTxnResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			rt.Partitions = append(rt.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: p, ErrorCode: code})
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
	return false
}

// checkTxnOffsetCommit: WRITE on the transactional id, READ on the group
// (every partition gets the error of the first that fails), READ on each
// topic (the denied ones answered, the others committed).
func checkTxnOffsetCommit(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.TxnOffsetCommitRequest)
	code := codeTopic
	allowed := func(t kmsg.TxnOffsetCommitRequestTopic) bool {
		return c.can(authz.OpRead, authz.ResourceTopic, c.topicName(t.Topic, t.TopicID))
	}
	switch {
	case !c.can(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID):
		code = codeTxn
		allowed = func(kmsg.TxnOffsetCommitRequestTopic) bool { return false }
	case !c.can(authz.OpRead, authz.ResourceGroup, req.Group):
		code = codeGroup
		allowed = func(kmsg.TxnOffsetCommitRequestTopic) bool { return false }
	}
	kept, denied := split(req.Topics, allowed)
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		tr := resp.(*kmsg.TxnOffsetCommitResponse)
		for _, t := range denied {
			rt := kmsg.TxnOffsetCommitResponseTopic{Topic: t.Topic, TopicID: t.TopicID}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.TxnOffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			tr.Topics = append(tr.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkDescribeTransactions: DESCRIBE on each transactional id.
func checkDescribeTransactions(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DescribeTransactionsRequest)
	kept, denied := split(req.TransactionalIDs, func(id string) bool {
		return c.can(authz.OpDescribe, authz.ResourceTransactionalID, id)
	})
	if len(denied) == 0 {
		return true
	}
	req.TransactionalIDs = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeTransactionsResponse)
		for _, id := range denied {
			s := kmsg.NewDescribeTransactionsResponseTransactionState()
			s.TransactionalID, s.ErrorCode, s.ProducerID, s.ProducerEpoch = id, codeTxn, -1, -1
			dr.TransactionStates = append(dr.TransactionStates, s)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkListTransactions lists only the transactional ids the principal may
// DESCRIBE.
func checkListTransactions(c *authCtx, r *request) bool {
	r.addPatch(func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListTransactionsResponse)
		kept := lr.TransactionStates[:0]
		for _, s := range lr.TransactionStates {
			if c.canQuiet(authz.OpDescribe, authz.ResourceTransactionalID, s.TransactionalID) {
				kept = append(kept, s)
			}
		}
		lr.TransactionStates = kept
	})
	return true
}
