package broker

import (
	"context"
	"net"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/group"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/record"
)

func testBatch() []byte {
	b, err := record.Build(nil, record.NewBatchOptions(record.CodecNone), time.Now().UnixMilli(), []record.Record{{Value: []byte("x")}})
	if err != nil {
		panic(err)
	}
	return b
}

// stubGroups answers every group call at once with nothing: the ACL
// tests only need the group handlers to run (or not) past the checks.
type stubGroups struct{}

func (stubGroups) PartitionFor(string) int32 { return 0 }
func (stubGroups) Join(_ group.JoinRequest, done func(group.JoinResult)) {
	done(group.JoinResult{})
}
func (stubGroups) Sync(_ group.SyncRequest, done func(group.SyncResult)) {
	done(group.SyncResult{})
}
func (stubGroups) Heartbeat(string, int32, string, *string) error { return nil }
func (stubGroups) Leave(_ string, m []group.LeaveMember) ([]error, error) {
	return make([]error, len(m)), nil
}
func (stubGroups) Commit(req group.CommitRequest) ([]error, error) {
	return make([]error, len(req.Offsets)), nil
}
func (stubGroups) Offsets(string) (map[string]map[int32]group.Offset, error) {
	return map[string]map[int32]group.Offset{"t": {0: {Offset: 5}}}, nil
}
func (stubGroups) CommitTxn(req group.TxnCommitRequest) ([]error, error) {
	return make([]error, len(req.Offsets)), nil
}
func (stubGroups) PendingTxnOffsets(_ string, tps []group.TopicPartition) ([]bool, error) {
	return make([]bool, len(tps)), nil
}
func (stubGroups) DeleteOffsets(_ string, tps []group.TopicPartition) ([]error, error) {
	return make([]error, len(tps)), nil
}
func (stubGroups) DeleteGroups(ids []string) []error { return make([]error, len(ids)) }
func (stubGroups) Describe(ids []string) []group.Description {
	out := make([]group.Description, len(ids))
	for i, id := range ids {
		out[i] = group.Description{Group: id, State: "Empty"}
	}
	return out
}
func (stubGroups) List(_, _ []string) ([]group.Listed, error) {
	return []group.Listed{{Group: "g", State: "Empty", Type: "classic"}}, nil
}
func (stubGroups) ConsumerHeartbeat(group.ConsumerHeartbeatRequest) group.ConsumerHeartbeatResult {
	return group.ConsumerHeartbeatResult{}
}
func (stubGroups) ConsumerDescribe(ids []string) []group.ConsumerDescription {
	out := make([]group.ConsumerDescription, len(ids))
	for i, id := range ids {
		out[i] = group.ConsumerDescription{Group: id, State: "empty"}
	}
	return out
}

// newACLBroker is newTestBroker with the group APIs (stubbed) and the
// authorizer on.
func newACLBroker(t *testing.T, cfg authz.Config) *Broker {
	base := newTestBroker(t)
	opts := base.opts
	opts.Groups = stubGroups{}
	opts.Authz = AuthzOptions{Enabled: true, Config: cfg}
	return New(opts)
}

func aliceConn() *network.ConnInfo {
	c := &network.ConnInfo{ID: 9, RemoteAddr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 5000}, LocalAddr: &net.TCPAddr{}}
	c.SetSession(network.Session{Principal: network.Principal{Type: "User", Name: "alice"}})
	return c
}

// serveAs serves req for conn and decodes the response; nil if the
// connection was closed.
func serveAs(t *testing.T, b *Broker, conn *network.ConnInfo, req kmsg.Request) (kmsg.Response, error) {
	t.Helper()
	rec := newRecorder()
	b.Serve(context.Background(), &network.Request{Conn: conn, Data: frameFor(req, 7)}, rec)
	select {
	case <-rec.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no response", kmsg.NameForKey(req.Key()))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.resp == nil {
		return nil, rec.closed
	}
	var buf []byte
	for _, c := range rec.resp.Chunks {
		buf = append(buf, c.Bytes...)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	body := buf[4:]
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		t.Fatalf("decode %s response: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// errorCodes collects every ErrorCode field in a response.
func errorCodes(v reflect.Value, out map[int16]bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			errorCodes(v.Elem(), out)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16 {
				out[int16(v.Field(i).Int())] = true
			}
			if f.IsExported() {
				errorCodes(v.Field(i), out)
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			errorCodes(v.Index(i), out)
		}
	}
}

func codesOf(resp kmsg.Response) map[int16]bool {
	out := map[int16]bool{}
	errorCodes(reflect.ValueOf(resp), out)
	return out
}

var authzCodes = []int16{codeTopic, codeGroup, codeCluster, codeTxn}

type aclCase struct {
	req   func(b *Broker) kmsg.Request
	deny  int16           // the code a principal without ACLs gets
	grant []authz.Binding // ACLs that let the request through
	// hidden, if set, checks that a denied principal is not shown the
	// resource (instead of, or besides, an error).
	hidden func(t *testing.T, resp kmsg.Response, granted bool)
}

func allow(rt authz.ResourceType, name string, op authz.Operation) authz.Binding {
	return authz.Binding{ResourceType: rt, ResourceName: name, PatternType: authz.PatternLiteral, Principal: "User:alice", Host: "*", Operation: op, Permission: authz.Allow}
}

func clusterAllow(op authz.Operation) []authz.Binding {
	return []authz.Binding{allow(authz.ResourceCluster, authz.ClusterName, op)}
}

func v[R kmsg.Request](r R, version int16) R { r.SetVersion(version); return r }

// aclCases has a case for every API key Strata serves.
func aclCases() map[int16]aclCase {
	topic := authz.ResourceTopic
	grp := authz.ResourceGroup
	return map[int16]aclCase{
		0: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrProduceRequest(), 9)
			r.Acks, r.TimeoutMillis = 1, 1000
			t := kmsg.NewProduceRequestTopic()
			t.Topic = "t"
			t.Partitions = []kmsg.ProduceRequestTopicPartition{{Partition: 0}}
			r.Topics = append(r.Topics, t)
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpWrite)}},
		1: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrFetchRequest(), 12)
			r.ReplicaID, r.MaxWaitMillis, r.MaxBytes = -1, 0, 1<<20
			p := kmsg.NewFetchRequestTopicPartition()
			p.Partition, p.PartitionMaxBytes = 0, 1<<20
			r.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{p}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpRead)}},
		2: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrListOffsetsRequest(), 7)
			r.ReplicaID = -1
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Timestamp = -1
			r.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{p}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDescribe)}},
		3: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrMetadataRequest(), 12)
			r.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("t")}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDescribe)}},
		8: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrOffsetCommitRequest(), 8)
			r.Group, r.Generation = "g", -1
			r.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "t", authz.OpRead)}},
		9: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrOffsetFetchRequest(), 7)
			r.Group = "g"
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDescribe), allow(topic, "t", authz.OpDescribe)},
			hidden: func(t *testing.T, resp kmsg.Response, granted bool) {
				if n := len(resp.(*kmsg.OffsetFetchResponse).Topics); granted && n != 1 {
					t.Fatalf("granted: %d topics, want t", n)
				}
			}},
		10: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrFindCoordinatorRequest(), 3)
			r.CoordinatorKey = "g"
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDescribe)}},
		11: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrJoinGroupRequest(), 5)
			r.Group, r.SessionTimeoutMillis, r.RebalanceTimeoutMillis, r.ProtocolType = "g", 10000, 10000, "consumer"
			r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead)}},
		12: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrHeartbeatRequest(), 3)
			r.Group, r.MemberID = "g", "m"
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead)}},
		13: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrLeaveGroupRequest(), 3)
			r.Group = "g"
			r.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead)}},
		14: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrSyncGroupRequest(), 3)
			r.Group, r.MemberID = "g", "m"
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead)}},
		15: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeGroupsRequest(), 5)
			r.Groups, r.IncludeAuthorizedOperations = []string{"g"}, true
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDescribe)},
			hidden: func(t *testing.T, resp kmsg.Response, granted bool) {
				g := resp.(*kmsg.DescribeGroupsResponse).Groups[0]
				if want := int32(1 << authz.OpDescribe); granted && g.AuthorizedOperations != want {
					t.Fatalf("authorized operations %b, want %b", g.AuthorizedOperations, want)
				}
			}},
		16: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrListGroupsRequest(), 4) },
			grant: []authz.Binding{allow(grp, "g", authz.OpDescribe)},
			hidden: func(t *testing.T, resp kmsg.Response, granted bool) {
				if n := len(resp.(*kmsg.ListGroupsResponse).Groups); granted != (n == 1) {
					t.Fatalf("granted=%v: %d groups listed", granted, n)
				}
			}},
		17: {}, 18: {}, 36: {},
		19: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrCreateTopicsRequest(), 5)
			ct := kmsg.NewCreateTopicsRequestTopic()
			ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "n", 1, 1
			r.Topics, r.TimeoutMillis = []kmsg.CreateTopicsRequestTopic{ct}, 5000
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "n", authz.OpCreate)}},
		20: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDeleteTopicsRequest(), 5)
			r.TopicNames, r.TimeoutMillis = []string{"t"}, 5000
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDelete)}},
		21: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDeleteRecordsRequest(), 2)
			r.Topics = []kmsg.DeleteRecordsRequestTopic{{Topic: "t", Partitions: []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: 0}}}}
			r.TimeoutMillis = 5000
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDelete)}},
		22: {req: func(*Broker) kmsg.Request {
			// An idempotent producer: IdempotentWrite on the cluster or
			// Write on some topic (the transactional case is
			// TestACLInitProducerIDTransactional).
			r := v(kmsg.NewPtrInitProducerIDRequest(), 4)
			r.TransactionTimeoutMillis = -1
			return r
		}, deny: codeCluster, grant: []authz.Binding{allow(topic, "t", authz.OpWrite)}},
		23: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrOffsetForLeaderEpochRequest(), 4)
			r.ReplicaID = -1
			r.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDescribe)}},
		27: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrWriteTxnMarkersRequest(), 1)
			r.Markers = []kmsg.WriteTxnMarkersRequestMarker{{ProducerID: 1, ProducerEpoch: 0, Committed: false, CoordinatorEpoch: 0,
				Topics: []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "t", Partitions: []int32{0}}}}}
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpClusterAction)},
		29: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeACLsRequest(), 2)
			r.ResourceType, r.ResourcePatternType, r.Operation, r.PermissionType = 1, 1, 1, 1
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpDescribe)},
		30: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrCreateACLsRequest(), 2)
			r.Creations = []kmsg.CreateACLsRequestCreation{{ResourceType: 2, ResourceName: "x", ResourcePatternType: 3, Principal: "User:bob", Host: "*", Operation: 3, PermissionType: 3}}
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		31: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDeleteACLsRequest(), 2)
			r.Filters = []kmsg.DeleteACLsRequestFilter{{ResourceType: 2, ResourceName: kmsg.StringPtr("x"), ResourcePatternType: 1, Operation: 1, PermissionType: 1}}
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		32: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeConfigsRequest(), 4)
			r.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t"}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpDescribeConfigs)}},
		33: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAlterConfigsRequest(), 1)
			r.Resources = []kmsg.AlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t",
				Configs: []kmsg.AlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("100000")}}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpAlterConfigs)}},
		35: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrDescribeLogDirsRequest(), 4) },
			deny: codeCluster, grant: clusterAllow(authz.OpDescribe)},
		37: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrCreatePartitionsRequest(), 2)
			r.Topics, r.TimeoutMillis = []kmsg.CreatePartitionsRequestTopic{{Topic: "t", Count: 3}}, 5000
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpAlter)}},
		42: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDeleteGroupsRequest(), 2)
			r.Groups = []string{"g"}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDelete)}},
		43: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrElectLeadersRequest(), 2)
			r.TimeoutMillis = 5000
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		44: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrIncrementalAlterConfigsRequest(), 1)
			r.Resources = []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "t",
				Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "retention.ms", Value: kmsg.StringPtr("100000")}}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpAlterConfigs)}},
		45: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAlterPartitionAssignmentsRequest(), 0)
			r.TimeoutMillis = 5000
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		46: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrListPartitionReassignmentsRequest(), 0) },
			deny: codeCluster, grant: clusterAllow(authz.OpDescribe)},
		47: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrOffsetDeleteRequest(), 0)
			r.Group = "g"
			r.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: 0}}}}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDelete), allow(topic, "t", authz.OpRead)}},
		48: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrDescribeClientQuotasRequest(), 1) },
			deny: codeCluster, grant: clusterAllow(authz.OpDescribeConfigs)},
		49: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAlterClientQuotasRequest(), 1)
			r.Entries = []kmsg.AlterClientQuotasRequestEntry{{Entity: []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "user", Name: kmsg.StringPtr("bob")}},
				Ops: []kmsg.AlterClientQuotasRequestEntryOp{{Key: "producer_byte_rate", Value: 1024}}}}
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlterConfigs)},
		50: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrDescribeUserSCRAMCredentialsRequest(), 0) },
			deny: codeCluster, grant: clusterAllow(authz.OpDescribe)},
		51: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAlterUserSCRAMCredentialsRequest(), 0)
			r.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{{Name: "bob", Mechanism: 1}}
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		55: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrDescribeQuorumRequest(), 1) },
			deny: codeCluster, grant: clusterAllow(authz.OpDescribe)},
		57: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrUpdateFeaturesRequest(), 1)
			u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
			u.Feature, u.MaxVersionLevel, u.UpgradeType = "transaction.version", 2, 1
			r.FeatureUpdates, r.ValidateOnly = append(r.FeatureUpdates, u), true
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpAlter)},
		56: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAlterPartitionRequest(), 3)
			r.BrokerID = 1
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpClusterAction)},
		60: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeClusterRequest(), 1)
			r.IncludeClusterAuthorizedOperations = true
			return r
		}, grant: clusterAllow(authz.OpDescribe),
			hidden: func(t *testing.T, resp kmsg.Response, granted bool) {
				ops := resp.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations
				if want := map[bool]int32{false: 0, true: 1 << authz.OpDescribe}[granted]; ops != want {
					t.Fatalf("granted=%v: cluster authorized operations %b, want %b", granted, ops, want)
				}
			}},
		61: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeProducersRequest(), 0)
			r.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			return r
		}, deny: codeTopic, grant: []authz.Binding{allow(topic, "t", authz.OpRead)}},
		62: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrBrokerRegistrationRequest(), 4)
			r.BrokerID, r.ClusterID = 2, "test-cluster"
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpClusterAction)},
		63: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrBrokerHeartbeatRequest(), 1)
			r.BrokerID = 1
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpClusterAction)},
		67: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAllocateProducerIDsRequest(), 0)
			r.BrokerID = 1
			return r
		}, deny: codeCluster, grant: clusterAllow(authz.OpClusterAction)},
		68: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrConsumerGroupHeartbeatRequest(), 0)
			r.Group, r.MemberEpoch, r.RebalanceTimeoutMillis = "g", 0, 10000
			r.SubscribedTopicNames = []string{"t"}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpRead), allow(topic, "t", authz.OpDescribe)}},
		69: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrConsumerGroupDescribeRequest(), 0)
			r.Groups = []string{"g"}
			return r
		}, deny: codeGroup, grant: []authz.Binding{allow(grp, "g", authz.OpDescribe)}},
	}
}

// TestACLChecksCoverEveryAPI serves one request of every API key the
// registry lists, as User:alice with an authorizer: without ACLs it is
// denied with Kafka's error (or the resource is not shown), with the
// case's ACLs it passes. A key without a row in the checks table or a
// case here fails.
func TestACLChecksCoverEveryAPI(t *testing.T) {
	keyBroker := newACLBroker(t, authz.Config{})
	cases := aclCases()
	for k, c := range txnACLCases() {
		cases[k] = c
	}
	keys := make([]int, 0, len(keyBroker.handlers))
	for k := range keyBroker.handlers {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		key := int16(k)
		t.Run(kmsg.NameForKey(key), func(t *testing.T) {
			rule, ok := aclRules[key]
			if !ok {
				t.Fatalf("API key %d (%s) has no row in aclRules (acl_checks.go)", key, kmsg.NameForKey(key))
			}
			c, ok := cases[key]
			if !ok {
				t.Fatalf("API key %d (%s) has no case in aclCases", key, kmsg.NameForKey(key))
			}
			if c.req == nil {
				if rule.check != nil {
					t.Fatalf("%s has a check but its case none", kmsg.NameForKey(key))
				}
				return // served before authentication: no authorization
			}
			runACLCase(t, c, nil)
		})
	}
}

// TestACLInitProducerIDTransactional: a transactional producer needs Write
// on its transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED
// before anything else is looked at.
func TestACLInitProducerIDTransactional(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTransactionalID, "other", authz.OpWrite)}); errs[0] != nil {
		t.Fatal(errs)
	}
	r := v(kmsg.NewPtrInitProducerIDRequest(), 4)
	r.TransactionalID, r.TransactionTimeoutMillis = kmsg.StringPtr("tx"), 10000
	resp, err := serveAs(t, b, aliceConn(), r)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.InitProducerIDResponse).ErrorCode; code != codeTxn {
		t.Fatalf("error %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	a := authz.New(authz.Config{}, []authz.Binding{allow(authz.ResourceTransactionalID, "tx", authz.OpWrite)})
	if !a.Authorize("User:alice", "10.0.0.7", authz.OpWrite, authz.ResourceTransactionalID, "tx") {
		t.Fatal("the granting ACL does not allow the transactional id")
	}
}

// TestACLMetadataHidesTopics: an all-topics Metadata request shows only
// the topics the principal may Describe; a named one it may not is
// TOPIC_AUTHORIZATION_FAILED whether or not it exists, and a missing one
// to be auto-created needs Create.
func TestACLMetadataHidesTopics(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "u", authz.OpRead), allow(authz.ResourceTopic, "v", authz.OpDescribe)}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	all := v(kmsg.NewPtrMetadataRequest(), 12)
	all.IncludeTopicAuthorizedOperations = true
	resp, err := serveAs(t, b, aliceConn(), all)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.(*kmsg.MetadataResponse).Topics); n != 0 {
		t.Fatalf("all-topics metadata shows %d topics to a principal with no Describe on t", n)
	}
	named := v(kmsg.NewPtrMetadataRequest(), 12)
	named.AllowAutoTopicCreation = true
	named.IncludeTopicAuthorizedOperations = true
	for _, n := range []string{"t", "nope", "u", "v"} {
		named.Topics = append(named.Topics, kmsg.MetadataRequestTopic{Topic: kmsg.StringPtr(n)})
	}
	resp, err = serveAs(t, b, aliceConn(), named)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kmsg.MetadataResponseTopic{}
	for _, mt := range resp.(*kmsg.MetadataResponse).Topics {
		got[*mt.Topic] = mt
	}
	if got["t"].ErrorCode != codeTopic || got["nope"].ErrorCode != codeTopic {
		t.Fatalf("t: %v, nope: %v; want TOPIC_AUTHORIZATION_FAILED for both", kerr.ErrorForCode(got["t"].ErrorCode), kerr.ErrorForCode(got["nope"].ErrorCode))
	}
	// u and v do not exist, Describe is allowed, Create is not: auto-creation refused.
	if got["u"].ErrorCode != codeTopic || got["v"].ErrorCode != codeTopic {
		t.Fatalf("u: %v, v: %v; want TOPIC_AUTHORIZATION_FAILED (no Create)", kerr.ErrorForCode(got["u"].ErrorCode), kerr.ErrorForCode(got["v"].ErrorCode))
	}
	// Without auto-creation, a describable missing topic is simply unknown.
	named.AllowAutoTopicCreation = false
	named.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("u")}}
	resp, err = serveAs(t, b, aliceConn(), named)
	if err != nil {
		t.Fatal(err)
	}
	if mt := resp.(*kmsg.MetadataResponse).Topics[0]; mt.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("u without auto-creation: %v", kerr.ErrorForCode(mt.ErrorCode))
	}
	// Create on u: auto-created (not an authorization error).
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "u", authz.OpCreate)}); errs[0] != nil {
		t.Fatal(errs)
	}
	named.AllowAutoTopicCreation = true
	resp, err = serveAs(t, b, aliceConn(), named)
	if err != nil {
		t.Fatal(err)
	}
	if mt := resp.(*kmsg.MetadataResponse).Topics[0]; mt.ErrorCode == codeTopic {
		t.Fatal("u with Describe and Create: TOPIC_AUTHORIZATION_FAILED")
	}
	for deadline := time.Now().Add(10 * time.Second); b.image().Topics["u"] == nil; {
		if time.Now().After(deadline) {
			t.Fatal("u was not auto-created")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Granted Read on t: listed, with Read and Describe as its authorized operations.
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "t", authz.OpRead)}); errs[0] != nil {
		t.Fatal(errs)
	}
	resp, err = serveAs(t, b, aliceConn(), all)
	if err != nil {
		t.Fatal(err)
	}
	ts := resp.(*kmsg.MetadataResponse).Topics
	listed := map[string]int32{}
	for _, mt := range ts {
		listed[*mt.Topic] = mt.AuthorizedOperations
	}
	// u (Read, Create) and t (Read) are listed; v does not exist.
	if len(listed) != 2 || listed["t"] != 1<<authz.OpRead|1<<authz.OpDescribe || listed["u"] != 1<<authz.OpRead|1<<authz.OpDescribe|1<<authz.OpCreate {
		t.Fatalf("after the grants: %v", listed)
	}
}

// TestACLProduceSplitsTopics: in one Produce request the topic the
// principal may write proceeds and the other is answered
// TOPIC_AUTHORIZATION_FAILED in its own entry; a super user and a
// broker without an authorizer write both.
func TestACLProduceSplitsTopics(t *testing.T) {
	produce := func(b *Broker, conn *network.ConnInfo) map[string]int16 {
		r := v(kmsg.NewPtrProduceRequest(), 9)
		r.Acks, r.TimeoutMillis = 1, 1000
		for _, n := range []string{"t", "t2"} {
			r.Topics = append(r.Topics, kmsg.ProduceRequestTopic{Topic: n, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: testBatch()}}})
		}
		resp, err := serveAs(t, b, conn, r)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int16{}
		for _, rt := range resp.(*kmsg.ProduceResponse).Topics {
			out[rt.Topic] = rt.Partitions[0].ErrorCode
		}
		return out
	}
	setup := func(b *Broker) {
		if res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: "t2", Partitions: 1, ReplicationFactor: 1}}, false); res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		if !b.opts.Partitions.WaitApplied(b.image().Offset, 10*time.Second) {
			t.Fatal("partitions did not follow")
		}
	}
	b := newACLBroker(t, authz.Config{SuperUsers: []string{"User:root"}})
	setup(b)
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "t", authz.OpWrite)}); errs[0] != nil {
		t.Fatal(errs)
	}
	if got := produce(b, aliceConn()); got["t"] != 0 || got["t2"] != codeTopic {
		t.Fatalf("alice: %v, want t written and t2 TOPIC_AUTHORIZATION_FAILED", got)
	}
	root := aliceConn()
	root.SetSession(network.Session{Principal: network.Principal{Type: "User", Name: "root"}})
	if got := produce(b, root); got["t"] != 0 || got["t2"] != 0 {
		t.Fatalf("super user: %v", got)
	}
	open := newTestBroker(t)
	setup(open)
	if got := produce(open, aliceConn()); got["t"] != 0 || got["t2"] != 0 {
		t.Fatalf("no authorizer: %v", got)
	}
}

// runACLCase serves c's request without and with its ACLs; prepare, if
// set, adjusts each fresh broker.
func runACLCase(t *testing.T, c aclCase, prepare func(*Broker)) {
	t.Helper()
	for _, granted := range []bool{false, true} {
		b := newACLBroker(t, authz.Config{})
		if prepare != nil {
			prepare(b)
		}
		if granted {
			if errs := b.opts.Controller.CreateAcls(c.grant); errs[0] != nil {
				t.Fatal(errs)
			}
		}
		resp, closed := serveAs(t, b, aliceConn(), c.req(b))
		if resp == nil {
			t.Fatalf("granted=%v: connection closed: %v", granted, closed)
		}
		codes := codesOf(resp)
		if !granted && c.deny != 0 && !codes[c.deny] {
			t.Fatalf("denied: codes %v, want %s", codes, kerr.ErrorForCode(c.deny))
		}
		if granted {
			for _, a := range authzCodes {
				if codes[a] {
					t.Fatalf("granted %v: still %s", c.grant, kerr.ErrorForCode(a))
				}
			}
		}
		if c.hidden != nil {
			c.hidden(t, resp, granted)
		}
	}
}

// txnACLCases are the transaction coordinator's APIs; until their
// handlers are registered, TestACLChecksTransactionAPIs serves them with
// a stand-in that answers an empty success, so the checks are tested now
// and by TestACLChecksCoverEveryAPI once the handlers exist.
func txnACLCases() map[int16]aclCase {
	txn := func(op authz.Operation) authz.Binding { return allow(authz.ResourceTransactionalID, "tx", op) }
	return map[int16]aclCase{
		24: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAddPartitionsToTxnRequest(), 3)
			r.TransactionalID, r.ProducerID = "tx", 1
			r.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "t", Partitions: []int32{0}}}
			return r
		}, deny: codeTxn, grant: []authz.Binding{txn(authz.OpWrite), allow(authz.ResourceTopic, "t", authz.OpWrite)}},
		25: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrAddOffsetsToTxnRequest(), 3)
			r.TransactionalID, r.Group, r.ProducerID = "tx", "g", 1
			return r
		}, deny: codeTxn, grant: []authz.Binding{txn(authz.OpWrite), allow(authz.ResourceGroup, "g", authz.OpRead)}},
		26: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrEndTxnRequest(), 3)
			r.TransactionalID, r.ProducerID = "tx", 1
			return r
		}, deny: codeTxn, grant: []authz.Binding{txn(authz.OpWrite)}},
		28: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrTxnOffsetCommitRequest(), 3)
			r.TransactionalID, r.Group, r.ProducerID = "tx", "g", 1
			r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
			return r
		}, deny: codeTxn, grant: []authz.Binding{txn(authz.OpWrite), allow(authz.ResourceGroup, "g", authz.OpRead), allow(authz.ResourceTopic, "t", authz.OpRead)}},
		65: {req: func(*Broker) kmsg.Request {
			r := v(kmsg.NewPtrDescribeTransactionsRequest(), 0)
			r.TransactionalIDs = []string{"tx"}
			return r
		}, deny: codeTxn, grant: []authz.Binding{txn(authz.OpDescribe)}},
		66: {req: func(*Broker) kmsg.Request { return v(kmsg.NewPtrListTransactionsRequest(), 0) },
			grant: []authz.Binding{txn(authz.OpWrite)}, // WRITE implies DESCRIBE
			hidden: func(t *testing.T, resp kmsg.Response, granted bool) {
				if n := len(resp.(*kmsg.ListTransactionsResponse).TransactionStates); granted != (n == 1) {
					t.Fatalf("granted=%v: %d transactions listed", granted, n)
				}
			}},
	}
}

func TestACLChecksTransactionAPIs(t *testing.T) {
	for key, c := range txnACLCases() {
		t.Run(kmsg.NameForKey(key), func(t *testing.T) {
			if _, ok := aclRules[key]; !ok {
				t.Fatalf("no row for %s", kmsg.NameForKey(key))
			}
			runACLCase(t, c, func(b *Broker) {
				if _, ok := b.handlers[key]; ok {
					return // the real handler
				}
				b.handlers[key] = handler{min: 0, max: 5, fn: func(_ context.Context, r *request) {
					resp := r.body.ResponseKind()
					if lr, ok := resp.(*kmsg.ListTransactionsResponse); ok {
						lr.TransactionStates = []kmsg.ListTransactionsResponseTransactionState{{TransactionalID: "tx", ProducerID: 1, TransactionState: "Ongoing"}}
					}
					r.respond(resp)
				}}
			})
		})
	}
}

// standbyController is a controller that is not the active one: the
// broker relays metadata writes through Options.Forward.
type standbyController struct{ *controller.Controller }

func (standbyController) IsActive() bool { return false }

// TestACLCheckedBeforeRelay: a CreateTopics relayed to the active
// controller carries only the topics the client may create (the relay's
// own principal would pass every check there), and the client's answer
// has the denied one with TOPIC_AUTHORIZATION_FAILED.
func TestACLCheckedBeforeRelay(t *testing.T) {
	base := newTestBroker(t)
	ctrl := base.opts.Controller.(*controller.Controller)
	if errs := ctrl.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "ok", authz.OpCreate)}); errs[0] != nil {
		t.Fatal(errs)
	}
	var relayed []string
	opts := base.opts
	opts.Controller = standbyController{ctrl}
	opts.Authz = AuthzOptions{Enabled: true}
	opts.Forward = func(_ context.Context, req kmsg.Request) (kmsg.Response, error) {
		cr := req.(*kmsg.CreateTopicsRequest)
		resp := cr.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, tp := range cr.Topics {
			relayed = append(relayed, tp.Topic)
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = tp.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil
	}
	b := New(opts)
	req := v(kmsg.NewPtrCreateTopicsRequest(), 5)
	for _, name := range []string{"ok", "nope"} {
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = name, 1, 1
		req.Topics = append(req.Topics, ct)
	}
	resp, err := serveAs(t, b, aliceConn(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(relayed) != 1 || relayed[0] != "ok" {
		t.Fatalf("relayed %v, want only ok", relayed)
	}
	got := map[string]int16{}
	for _, rt := range resp.(*kmsg.CreateTopicsResponse).Topics {
		got[rt.Topic] = rt.ErrorCode
	}
	if len(got) != 2 || got["ok"] != 0 || got["nope"] != codeTopic {
		t.Fatalf("answer %v, want ok created and nope TOPIC_AUTHORIZATION_FAILED", got)
	}
}

// TestACLFetchSplitsTopics: a Fetch of a readable and an unreadable topic
// answers both (the denied one TOPIC_AUTHORIZATION_FAILED) though fetch.go
// encodes its response itself.
func TestACLFetchSplitsTopics(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	if res := b.opts.Controller.CreateTopics([]controller.CreateTopic{{Name: "t2", Partitions: 1, ReplicationFactor: 1}}, false); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if !b.opts.Partitions.WaitApplied(b.image().Offset, 10*time.Second) {
		t.Fatal("partitions did not follow")
	}
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "t", authz.OpRead)}); errs[0] != nil {
		t.Fatal(errs)
	}
	r := v(kmsg.NewPtrFetchRequest(), 12)
	r.ReplicaID, r.MaxWaitMillis, r.MaxBytes, r.SessionEpoch = -1, 0, 1<<20, -1
	for _, n := range []string{"t", "t2"} {
		p := kmsg.NewFetchRequestTopicPartition()
		p.PartitionMaxBytes = 1 << 20
		r.Topics = append(r.Topics, kmsg.FetchRequestTopic{Topic: n, Partitions: []kmsg.FetchRequestTopicPartition{p}})
	}
	resp, err := serveAs(t, b, aliceConn(), r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int16{}
	for _, ft := range resp.(*kmsg.FetchResponse).Topics {
		got[ft.Topic] = ft.Partitions[0].ErrorCode
	}
	if len(got) != 2 || got["t"] != 0 || got["t2"] != codeTopic {
		t.Fatalf("fetch answered %v, want t served and t2 TOPIC_AUTHORIZATION_FAILED", got)
	}
}

// TestACLFetchSessionRevoked: a partition already in an incremental fetch
// session is refused TOPIC_AUTHORIZATION_FAILED at the next fetch once its
// READ ACL is deleted, though that fetch does not name it.
func TestACLFetchSessionRevoked(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	grant := allow(authz.ResourceTopic, "t", authz.OpRead)
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{grant}); errs[0] != nil {
		t.Fatal(errs)
	}
	full := v(kmsg.NewPtrFetchRequest(), 12)
	full.ReplicaID, full.MaxWaitMillis, full.MaxBytes, full.SessionEpoch = -1, 0, 1<<20, 0
	p := kmsg.NewFetchRequestTopicPartition()
	p.PartitionMaxBytes = 1 << 20
	full.Topics = []kmsg.FetchRequestTopic{{Topic: "t", Partitions: []kmsg.FetchRequestTopicPartition{p}}}
	conn := aliceConn()
	resp, err := serveAs(t, b, conn, full)
	if err != nil {
		t.Fatal(err)
	}
	fr := resp.(*kmsg.FetchResponse)
	if fr.SessionID == 0 || len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("full fetch: session %d, %+v", fr.SessionID, fr.Topics)
	}
	name := "t"
	if res := b.opts.Controller.DeleteAcls([]authz.Filter{{ResourceType: authz.ResourceTopic, ResourceName: &name, PatternType: authz.PatternLiteral,
		Operation: authz.OpAny, Permission: authz.PermissionAny}}); res[0].Err != nil || len(res[0].Deleted) != 1 {
		t.Fatalf("DeleteAcls: %+v", res)
	}
	inc := v(kmsg.NewPtrFetchRequest(), 12)
	inc.ReplicaID, inc.MaxWaitMillis, inc.MaxBytes = -1, 0, 1<<20
	inc.SessionID, inc.SessionEpoch = fr.SessionID, 1
	resp, err = serveAs(t, b, conn, inc)
	if err != nil {
		t.Fatal(err)
	}
	fr = resp.(*kmsg.FetchResponse)
	if len(fr.Topics) != 1 || fr.Topics[0].Partitions[0].ErrorCode != codeTopic {
		t.Fatalf("incremental fetch after the revocation: %+v, want t TOPIC_AUTHORIZATION_FAILED", fr.Topics)
	}
}

// TestACLOffsetFetchV8: the batched form checks DESCRIBE per group and
// leaves out the committed offsets of topics the principal may not
// Describe.
func TestACLOffsetFetchV8(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	fetch := func() *kmsg.OffsetFetchResponse {
		r := v(kmsg.NewPtrOffsetFetchRequest(), 8)
		r.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "g"}, {Group: "h"}}
		resp, err := serveAs(t, b, aliceConn(), r)
		if err != nil {
			t.Fatal(err)
		}
		return resp.(*kmsg.OffsetFetchResponse)
	}
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceGroup, "g", authz.OpDescribe)}); errs[0] != nil {
		t.Fatal(errs)
	}
	groups := map[string]kmsg.OffsetFetchResponseGroup{}
	for _, g := range fetch().Groups {
		groups[g.Group] = g
	}
	if groups["h"].ErrorCode != codeGroup || groups["g"].ErrorCode != 0 || len(groups["g"].Topics) != 0 {
		t.Fatalf("g (Describe, no topic ACL) and h (no ACL): %+v", groups)
	}
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceTopic, "t", authz.OpDescribe)}); errs[0] != nil {
		t.Fatal(errs)
	}
	for _, g := range fetch().Groups {
		groups[g.Group] = g
	}
	if gt := groups["g"].Topics; len(gt) != 1 || gt[0].Topic != "t" || gt[0].Partitions[0].Offset != 5 {
		t.Fatalf("g with Describe on t: %+v", gt)
	}
}

// TestACLCreateTopicsHidesConfigs: a topic created without DESCRIBE_CONFIGS
// on it is answered without its configs (ConfigErrorCode
// TOPIC_AUTHORIZATION_FAILED), as Kafka's controller does.
func TestACLCreateTopicsHidesConfigs(t *testing.T) {
	b := newACLBroker(t, authz.Config{})
	if errs := b.opts.Controller.CreateAcls([]authz.Binding{allow(authz.ResourceCluster, authz.ClusterName, authz.OpCreate),
		allow(authz.ResourceTopic, "m", authz.OpAlterConfigs)}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	req := v(kmsg.NewPtrCreateTopicsRequest(), 5)
	req.TimeoutMillis = 5000
	for _, n := range []string{"n", "m"} {
		ct := kmsg.NewCreateTopicsRequestTopic()
		ct.Topic, ct.NumPartitions, ct.ReplicationFactor = n, 1, 1
		req.Topics = append(req.Topics, ct)
	}
	resp, err := serveAs(t, b, aliceConn(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]kmsg.CreateTopicsResponseTopic{}
	for _, ct := range resp.(*kmsg.CreateTopicsResponse).Topics {
		got[ct.Topic] = ct
	}
	if n := got["n"]; n.ErrorCode != 0 || n.ConfigErrorCode != codeTopic || n.NumPartitions != -1 || len(n.Configs) != 0 {
		t.Fatalf("n (no DESCRIBE_CONFIGS): %+v", n)
	}
	if m := got["m"]; m.ErrorCode != 0 || m.ConfigErrorCode != 0 || m.NumPartitions != 1 || len(m.Configs) == 0 {
		t.Fatalf("m (ALTER_CONFIGS implies DESCRIBE_CONFIGS): %+v", m)
	}
}
