package broker

// The authorization table: for every API key Strata serves, what Kafka's
// KafkaApis checks before serving it, and the error it answers with. A
// key without a row is refused when an authorizer is configured, and
// TestACLChecksCoverEveryAPI fails, so a new handler needs one line here.
//
// A row's check either denies the whole request (answering it itself) or
// takes the entries the principal may not touch out of the request and
// sets r.patch to put them back into the response with their error, so
// the handler (or the controller the request is relayed to) serves only
// the rest; per-entry functions are in acl_checks_entries.go.

import (
	"reflect"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

type aclRule struct {
	// check authorizes the request; nil: the API needs no authorization
	// (ApiVersions and the SASL exchange, served before authentication).
	check func(c *authCtx, r *request) bool
	// ops: the check also fills authorized operations when asked, so it
	// runs without an authorizer too (every operation is then allowed).
	ops bool
}

var (
	codeTopic   = kerr.TopicAuthorizationFailed.Code
	codeGroup   = kerr.GroupAuthorizationFailed.Code
	codeCluster = kerr.ClusterAuthorizationFailed.Code
	codeTxn     = kerr.TransactionalIDAuthorizationFailed.Code
)

// aclRules is the table, by API key.
var aclRules = map[int16]aclRule{
	0:  {check: checkProduce},
	1:  {check: checkFetch},
	2:  {check: checkListOffsets},
	3:  {check: checkMetadata, ops: true},
	8:  {check: checkOffsetCommit},
	9:  {check: checkOffsetFetch},
	10: {check: checkFindCoordinator},
	11: groupRule(authz.OpRead, func(q kmsg.Request) string { return q.(*kmsg.JoinGroupRequest).Group }),
	12: groupRule(authz.OpRead, func(q kmsg.Request) string { return q.(*kmsg.HeartbeatRequest).Group }),
	13: groupRule(authz.OpRead, func(q kmsg.Request) string { return q.(*kmsg.LeaveGroupRequest).Group }),
	14: groupRule(authz.OpRead, func(q kmsg.Request) string { return q.(*kmsg.SyncGroupRequest).Group }),
	15: {check: checkDescribeGroups, ops: true},
	16: {check: checkListGroups},
	17: {}, // SaslHandshake
	18: {}, // ApiVersions
	19: {check: checkCreateTopics},
	20: {check: checkDeleteTopics},
	21: {check: checkDeleteRecords},
	22: {check: checkInitProducerID},
	23: {check: checkOffsetForLeaderEpoch},
	// Transactions (the coordinator's APIs, acl_checks_txn.go).
	24: {check: checkAddPartitionsToTxn},
	25: {check: checkAddOffsetsToTxn},
	26: txnRule(authz.OpWrite, func(q kmsg.Request) string { return q.(*kmsg.EndTxnRequest).TransactionalID }),
	27: {check: checkWriteTxnMarkers},
	28: {check: checkTxnOffsetCommit},
	29: clusterRule(authz.OpDescribe),
	30: {check: checkCreateAcls},
	31: {check: checkDeleteAcls},
	32: {check: checkDescribeConfigs},
	33: {check: checkAlterConfigs},
	35: clusterRule(authz.OpDescribe),
	36: {}, // SaslAuthenticate
	37: {check: checkCreatePartitions},
	42: {check: checkDeleteGroups},
	43: {check: checkElectLeaders},
	44: {check: checkIncrementalAlterConfigs},
	45: clusterRule(authz.OpAlter),
	46: clusterRule(authz.OpDescribe),
	47: {check: checkOffsetDelete},
	48: clusterRule(authz.OpDescribeConfigs),
	49: {check: checkAlterClientQuotas},
	50: clusterRule(authz.OpDescribe),
	51: {check: checkAlterUserScramCredentials},
	55: clusterRule(authz.OpDescribe),
	57: clusterRule(authz.OpAlter),
	// Inter-broker APIs: the brokers' own principal (a super user).
	56: clusterRule(authz.OpClusterAction),
	60: {check: checkDescribeCluster, ops: true},
	61: {check: checkDescribeProducers},
	62: clusterRule(authz.OpClusterAction),
	65: {check: checkDescribeTransactions},
	66: {check: checkListTransactions},
	63: clusterRule(authz.OpClusterAction),
	67: clusterRule(authz.OpClusterAction),
	68: {check: checkConsumerGroupHeartbeat},
	69: {check: checkConsumerGroupDescribe, ops: true},
}

// clusterRule checks op on the cluster for the whole request.
func clusterRule(op authz.Operation) aclRule {
	return aclRule{check: func(c *authCtx, r *request) bool {
		if c.can(op, authz.ResourceCluster, authz.ClusterName) {
			return true
		}
		return denyWhole(r, codeCluster)
	}}
}

// groupRule checks op on the request's group.
func groupRule(op authz.Operation, group func(kmsg.Request) string) aclRule {
	return aclRule{check: func(c *authCtx, r *request) bool {
		if c.can(op, authz.ResourceGroup, group(r.body)) {
			return true
		}
		return denyWhole(r, codeGroup)
	}}
}

// txnRule checks op on the request's transactional id.
func txnRule(op authz.Operation, id func(kmsg.Request) string) aclRule {
	return aclRule{check: func(c *authCtx, r *request) bool {
		if c.can(op, authz.ResourceTransactionalID, id(r.body)) {
			return true
		}
		return denyWhole(r, codeTxn)
	}}
}

// denyWhole answers the request with code in its response's top-level
// ErrorCode and returns false. An API whose response has none needs its
// own check function (TestACLChecksCoverEveryAPI finds out).
func denyWhole(r *request, code int16) bool {
	resp := r.body.ResponseKind()
	f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode")
	if !f.IsValid() || f.Kind() != reflect.Int16 {
		r.resp.CloseConn(errNoTopLevelError(r))
		return false
	}
	f.SetInt(int64(code))
	r.respond(resp)
	return false
}

type noTopLevelError struct{ api string }

func (e noTopLevelError) Error() string {
	return e.api + " denied, and its response has no top-level error code: the ACL rule must answer per entry"
}

func errNoTopLevelError(r *request) error { return noTopLevelError{kmsg.NameForKey(r.key)} }

// checkElectLeaders: ALTER on the cluster. Denied, every partition named
// gets CLUSTER_AUTHORIZATION_FAILED, and v1+ the top-level error too, as
// Kafka answers (v0 has no top-level error code).
func checkElectLeaders(c *authCtx, r *request) bool {
	if c.can(authz.OpAlter, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	resp.ErrorCode = codeCluster
	for _, t := range req.Topics {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p, codeCluster
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
	return false
}
