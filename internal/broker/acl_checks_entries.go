package broker

// Per-entry ACL checks (the table is in acl_checks.go): where Kafka checks
// each topic, group or resource of a request on its own, the denied ones
// are taken out of the request and answered with their error by r.patch,
// and the others proceed.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/authz"
)

// split keeps the entries of in that allowed accepts and returns the
// others.
func split[T any](in []T, allowed func(T) bool) (kept, denied []T) {
	for _, e := range in {
		if allowed(e) {
			kept = append(kept, e)
		} else {
			denied = append(denied, e)
		}
	}
	return kept, denied
}

func checkProduce(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.ProduceRequest)
	code := codeTopic
	allowed := func(t kmsg.ProduceRequestTopic) bool {
		return c.can(authz.OpWrite, authz.ResourceTopic, c.topicName(t.Topic, t.TopicID))
	}
	if req.TransactionID != nil && !c.can(authz.OpWrite, authz.ResourceTransactionalID, *req.TransactionID) {
		code = codeTxn
		allowed = func(kmsg.ProduceRequestTopic) bool { return false }
	}
	kept, denied := split(req.Topics, allowed)
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	patch := func(resp kmsg.Response) {
		pr := resp.(*kmsg.ProduceResponse)
		for _, t := range denied {
			rt := kmsg.ProduceResponseTopic{Topic: t.Topic, TopicID: t.TopicID}
			for _, p := range t.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			pr.Topics = append(pr.Topics, rt)
		}
	}
	r.addPatch(patch)
	if len(kept) == 0 {
		if req.Acks != 0 {
			r.respond(req.ResponseKind())
		}
		return false
	}
	return true
}

func checkFetch(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.FetchRequest)
	replica := req.ReplicaID
	if r.version >= 15 {
		replica = req.ReplicaState.ID
	}
	code := codeTopic
	allowed := func(t kmsg.FetchRequestTopic) bool {
		return c.can(authz.OpRead, authz.ResourceTopic, c.topicName(t.Topic, t.TopicID))
	}
	if replica >= 0 {
		// A follower: the cluster's CLUSTER_ACTION, each partition
		// TOPIC_AUTHORIZATION_FAILED otherwise (as Kafka).
		ok := c.can(authz.OpClusterAction, authz.ResourceCluster, authz.ClusterName)
		allowed = func(kmsg.FetchRequestTopic) bool { return ok }
	}
	if replica < 0 && c.a != nil {
		// Partitions an incremental fetch session carries are not in the
		// request: fetch.go asks again for each (quietly: the denial of
		// a named topic was logged here).
		r.topicDenied = func(topic string) bool { return !c.canQuiet(authz.OpRead, authz.ResourceTopic, topic) }
	}
	kept, denied := split(req.Topics, allowed)
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		fr := resp.(*kmsg.FetchResponse)
		for _, t := range denied {
			rt := kmsg.FetchResponseTopic{Topic: t.Topic, TopicID: t.TopicID}
			for _, p := range t.Partitions {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = -1, -1, -1
				// Empty, not null, records, as Kafka sends for an error:
				// librdkafka refuses a null record set (size -1) in the
				// non-flexible versions ("invalid MessageSetSize -1").
				rp.RecordBatches = []byte{}
				rt.Partitions = append(rt.Partitions, rp)
			}
			fr.Topics = append(fr.Topics, rt)
		}
	})
	if len(kept) == 0 && len(req.ForgottenTopics) == 0 {
		// Nothing to wait for: answer now rather than after MaxWait.
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkListOffsets(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.ListOffsetsRequest)
	kept, denied := split(req.Topics, func(t kmsg.ListOffsetsRequestTopic) bool {
		return c.can(authz.OpDescribe, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListOffsetsResponse)
		for _, t := range denied {
			rt := kmsg.ListOffsetsResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rp := kmsg.NewListOffsetsResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, codeTopic
				rt.Partitions = append(rt.Partitions, rp)
			}
			lr.Topics = append(lr.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkMetadata: a topic the principal may not Describe is left out of an
// all-topics answer, and answered TOPIC_AUTHORIZATION_FAILED when named
// (which says nothing about whether it exists); a missing topic that
// would be auto-created (the client asks, or v0-3, and
// auto.create.topics.enable) also needs Create, on the cluster or the
// topic. Authorized operations are filled when asked (v8+).
func checkMetadata(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.MetadataRequest)
	img := c.b.image()
	var denied []kmsg.MetadataRequestTopic
	autoCreate := (r.version < 4 || req.AllowAutoTopicCreation) && c.b.opts.Static != nil && c.b.opts.Static.Bool("auto.create.topics.enable")
	if req.Topics != nil {
		kept, den := split(req.Topics, func(t kmsg.MetadataRequestTopic) bool {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			name = c.topicName(name, t.TopicID)
			if name == "" {
				return true
			}
			if !c.can(authz.OpDescribe, authz.ResourceTopic, name) {
				return false
			}
			if _, exists := img.Topics[name]; !exists && autoCreate {
				return c.canQuiet(authz.OpCreate, authz.ResourceCluster, authz.ClusterName) || c.can(authz.OpCreate, authz.ResourceTopic, name)
			}
			return true
		})
		if len(den) > 0 {
			// An empty (non-null) list would mean "no topics": keep it so.
			req.Topics = append([]kmsg.MetadataRequestTopic{}, kept...)
			denied = den
		}
	}
	all := req.Topics == nil
	r.addPatch(func(resp kmsg.Response) {
		mr := resp.(*kmsg.MetadataResponse)
		if all && c.a != nil {
			kept := mr.Topics[:0]
			for _, t := range mr.Topics {
				if t.Topic == nil || c.canQuiet(authz.OpDescribe, authz.ResourceTopic, *t.Topic) {
					kept = append(kept, t)
				}
			}
			mr.Topics = kept
		}
		for _, t := range denied {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic, mt.TopicID, mt.ErrorCode = t.Topic, t.TopicID, codeTopic
			mr.Topics = append(mr.Topics, mt)
		}
		if req.IncludeTopicAuthorizedOperations && r.version >= 8 {
			for i := range mr.Topics {
				if t := &mr.Topics[i]; t.ErrorCode == 0 && t.Topic != nil {
					t.AuthorizedOperations = c.ops(authz.ResourceTopic, *t.Topic)
				}
			}
		}
		if req.IncludeClusterAuthorizedOperations && r.version >= 8 && r.version <= 10 {
			mr.AuthorizedOperations = c.ops(authz.ResourceCluster, authz.ClusterName)
		}
	})
	return true
}

func checkOffsetCommit(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.OffsetCommitRequest)
	code := codeTopic
	allowed := func(t kmsg.OffsetCommitRequestTopic) bool {
		return c.can(authz.OpRead, authz.ResourceTopic, t.Topic)
	}
	if !c.can(authz.OpRead, authz.ResourceGroup, req.Group) {
		code = codeGroup
		allowed = func(kmsg.OffsetCommitRequestTopic) bool { return false }
	}
	kept, denied := split(req.Topics, allowed)
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		or := resp.(*kmsg.OffsetCommitResponse)
		for _, t := range denied {
			rt := kmsg.OffsetCommitResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetCommitResponseTopicPartition{Partition: p.Partition, ErrorCode: code})
			}
			or.Topics = append(or.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkOffsetFetch: the group needs Describe (GROUP_AUTHORIZATION_FAILED);
// committed offsets of topics the principal may not Describe are left out
// of an all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when
// named.
func checkOffsetFetch(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.OffsetFetchRequest)
	if r.version < 8 {
		if !c.can(authz.OpDescribe, authz.ResourceGroup, req.Group) {
			if r.version >= 2 {
				return denyWhole(r, codeGroup)
			}
			resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
			for _, t := range req.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.ErrorCode, rp.Offset = p, codeGroup, -1
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			r.respond(resp)
			return false
		}
		r.addPatch(func(resp kmsg.Response) {
			or := resp.(*kmsg.OffsetFetchResponse)
			or.Topics = filterOffsetFetchTopics(c, or.Topics, req.Topics == nil)
		})
		return true
	}
	var deniedGroups []string
	kept, denied := split(req.Groups, func(g kmsg.OffsetFetchRequestGroup) bool {
		return c.can(authz.OpDescribe, authz.ResourceGroup, g.Group)
	})
	for _, g := range denied {
		deniedGroups = append(deniedGroups, g.Group)
	}
	req.Groups = kept
	named := map[string]bool{}
	for _, g := range kept {
		named[g.Group] = g.Topics != nil
	}
	r.addPatch(func(resp kmsg.Response) {
		or := resp.(*kmsg.OffsetFetchResponse)
		for i := range or.Groups {
			g := &or.Groups[i]
			var topics []kmsg.OffsetFetchResponseTopic
			for _, t := range g.Topics {
				topics = append(topics, kmsg.OffsetFetchResponseTopic{Topic: t.Topic, Partitions: toOldPartitions(t.Partitions)})
			}
			topics = filterOffsetFetchTopics(c, topics, !named[g.Group])
			g.Topics = g.Topics[:0]
			for _, t := range topics {
				gt := kmsg.OffsetFetchResponseGroupTopic{Topic: t.Topic}
				for _, p := range t.Partitions {
					gt.Partitions = append(gt.Partitions, kmsg.OffsetFetchResponseGroupTopicPartition{Partition: p.Partition, Offset: p.Offset,
						LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata, ErrorCode: p.ErrorCode})
				}
				g.Topics = append(g.Topics, gt)
			}
		}
		for _, g := range deniedGroups {
			or.Groups = append(or.Groups, kmsg.OffsetFetchResponseGroup{Group: g, ErrorCode: codeGroup})
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func toOldPartitions(ps []kmsg.OffsetFetchResponseGroupTopicPartition) []kmsg.OffsetFetchResponseTopicPartition {
	out := make([]kmsg.OffsetFetchResponseTopicPartition, 0, len(ps))
	for _, p := range ps {
		out = append(out, kmsg.OffsetFetchResponseTopicPartition{Partition: p.Partition, Offset: p.Offset, LeaderEpoch: p.LeaderEpoch, Metadata: p.Metadata, ErrorCode: p.ErrorCode})
	}
	return out
}

func filterOffsetFetchTopics(c *authCtx, topics []kmsg.OffsetFetchResponseTopic, all bool) []kmsg.OffsetFetchResponseTopic {
	out := topics[:0]
	for _, t := range topics {
		if all {
			if c.canQuiet(authz.OpDescribe, authz.ResourceTopic, t.Topic) {
				out = append(out, t)
			}
			continue
		}
		if !c.can(authz.OpDescribe, authz.ResourceTopic, t.Topic) {
			for i := range t.Partitions {
				t.Partitions[i] = kmsg.OffsetFetchResponseTopicPartition{Partition: t.Partitions[i].Partition, Offset: -1, LeaderEpoch: -1, ErrorCode: codeTopic}
			}
		}
		out = append(out, t)
	}
	return out
}

// findCoordinatorAllowed: a group key needs Describe on the group, a
// transactional id Describe on it.
func findCoordinatorAllowed(c *authCtx, keyType int8, key string) (bool, int16) {
	if keyType == 1 {
		return c.can(authz.OpDescribe, authz.ResourceTransactionalID, key), codeTxn
	}
	return c.can(authz.OpDescribe, authz.ResourceGroup, key), codeGroup
}

func checkFindCoordinator(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.FindCoordinatorRequest)
	if r.version < 4 {
		if ok, code := findCoordinatorAllowed(c, req.CoordinatorType, req.CoordinatorKey); !ok {
			resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
			resp.ErrorCode, resp.NodeID, resp.Port = code, -1, -1
			r.respond(resp)
			return false
		}
		return true
	}
	type deniedKey struct {
		key  string
		code int16
	}
	var denied []deniedKey
	kept, _ := split(req.CoordinatorKeys, func(k string) bool {
		ok, code := findCoordinatorAllowed(c, req.CoordinatorType, k)
		if !ok {
			denied = append(denied, deniedKey{k, code})
		}
		return ok
	})
	if len(denied) == 0 {
		return true
	}
	req.CoordinatorKeys = kept
	r.addPatch(func(resp kmsg.Response) {
		fr := resp.(*kmsg.FindCoordinatorResponse)
		for _, d := range denied {
			fr.Coordinators = append(fr.Coordinators, kmsg.FindCoordinatorResponseCoordinator{Key: d.key, NodeID: -1, Port: -1, ErrorCode: d.code})
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkDescribeGroups(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DescribeGroupsRequest)
	kept, denied := split(req.Groups, func(g string) bool { return c.can(authz.OpDescribe, authz.ResourceGroup, g) })
	req.Groups = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeGroupsResponse)
		if req.IncludeAuthorizedOperations {
			for i := range dr.Groups {
				if g := &dr.Groups[i]; g.ErrorCode == 0 {
					g.AuthorizedOperations = c.ops(authz.ResourceGroup, g.Group)
				}
			}
		}
		for _, g := range denied {
			dg := kmsg.NewDescribeGroupsResponseGroup()
			dg.Group, dg.ErrorCode = g, codeGroup
			dr.Groups = append(dr.Groups, dg)
		}
	})
	if len(kept) == 0 && len(denied) > 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkListGroups: Describe on the cluster lists every group; otherwise
// only the groups the principal may Describe.
func checkListGroups(c *authCtx, r *request) bool {
	if c.canQuiet(authz.OpDescribe, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	r.addPatch(func(resp kmsg.Response) {
		lr := resp.(*kmsg.ListGroupsResponse)
		kept := lr.Groups[:0]
		for _, g := range lr.Groups {
			if c.canQuiet(authz.OpDescribe, authz.ResourceGroup, g.Group) {
				kept = append(kept, g)
			}
		}
		lr.Groups = kept
	})
	return true
}

// checkCreateTopics: CREATE on the cluster or on each topic; the configs
// of a created topic (v5+) are shown only with DESCRIBE_CONFIGS on it.
func checkCreateTopics(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.CreateTopicsRequest)
	if r.version >= 5 {
		r.addPatch(func(resp kmsg.Response) {
			cr := resp.(*kmsg.CreateTopicsResponse)
			for i := range cr.Topics {
				t := &cr.Topics[i]
				if t.ErrorCode == 0 && !c.canQuiet(authz.OpDescribeConfigs, authz.ResourceTopic, t.Topic) {
					t.Configs, t.NumPartitions, t.ReplicationFactor, t.ConfigErrorCode = nil, -1, -1, codeTopic
				}
			}
		})
	}
	if c.canQuiet(authz.OpCreate, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	kept, denied := split(req.Topics, func(t kmsg.CreateTopicsRequestTopic) bool {
		return c.can(authz.OpCreate, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		cr := resp.(*kmsg.CreateTopicsResponse)
		for _, t := range denied {
			ct := kmsg.NewCreateTopicsResponseTopic()
			ct.Topic, ct.ErrorCode = t.Topic, codeTopic
			ct.NumPartitions, ct.ReplicationFactor = -1, -1
			cr.Topics = append(cr.Topics, ct)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkDeleteTopics(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DeleteTopicsRequest)
	if r.version < 6 {
		kept, denied := split(req.TopicNames, func(t string) bool { return c.can(authz.OpDelete, authz.ResourceTopic, t) })
		if len(denied) == 0 {
			return true
		}
		req.TopicNames = kept
		r.addPatch(func(resp kmsg.Response) {
			dr := resp.(*kmsg.DeleteTopicsResponse)
			for _, t := range denied {
				dr.Topics = append(dr.Topics, kmsg.DeleteTopicsResponseTopic{Topic: kmsg.StringPtr(t), ErrorCode: codeTopic})
			}
		})
		if len(kept) == 0 {
			r.respond(req.ResponseKind())
			return false
		}
		return true
	}
	kept, denied := split(req.Topics, func(t kmsg.DeleteTopicsRequestTopic) bool {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		name = c.topicName(name, t.TopicID)
		return name == "" || c.can(authz.OpDelete, authz.ResourceTopic, name)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteTopicsResponse)
		for _, t := range denied {
			dr.Topics = append(dr.Topics, kmsg.DeleteTopicsResponseTopic{Topic: t.Topic, TopicID: t.TopicID, ErrorCode: codeTopic})
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkDeleteRecords(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DeleteRecordsRequest)
	kept, denied := split(req.Topics, func(t kmsg.DeleteRecordsRequestTopic) bool {
		return c.can(authz.OpDelete, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteRecordsResponse)
		for _, t := range denied {
			rt := kmsg.DeleteRecordsResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.DeleteRecordsResponseTopicPartition{Partition: p.Partition, LowWatermark: -1, ErrorCode: codeTopic})
			}
			dr.Topics = append(dr.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkInitProducerID: a transactional producer needs Write on its
// transactional id; an idempotent one IdempotentWrite on the cluster or
// Write on some topic (Kafka 3.0+).
func checkInitProducerID(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.InitProducerIDRequest)
	if req.TransactionalID != nil {
		if c.can(authz.OpWrite, authz.ResourceTransactionalID, *req.TransactionalID) {
			return true
		}
		return denyWhole(r, codeTxn)
	}
	if c.can(authz.OpIdempotentWrite, authz.ResourceCluster, authz.ClusterName) ||
		c.a == nil || c.a.AuthorizeAny(c.principal, c.host, authz.OpWrite, authz.ResourceTopic) {
		return true
	}
	return denyWhole(r, codeCluster)
}

// checkOffsetForLeaderEpoch: a follower (replica id set, v3+) needs
// ClusterAction; a client Describe on each topic.
func checkOffsetForLeaderEpoch(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.OffsetForLeaderEpochRequest)
	code := codeTopic
	allowed := func(t kmsg.OffsetForLeaderEpochRequestTopic) bool {
		return c.can(authz.OpDescribe, authz.ResourceTopic, t.Topic)
	}
	if r.version >= 3 && req.ReplicaID >= 0 {
		ok := c.can(authz.OpClusterAction, authz.ResourceCluster, authz.ClusterName)
		code = codeCluster
		allowed = func(kmsg.OffsetForLeaderEpochRequestTopic) bool { return ok }
	}
	kept, denied := split(req.Topics, allowed)
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		or := resp.(*kmsg.OffsetForLeaderEpochResponse)
		for _, t := range denied {
			rt := kmsg.OffsetForLeaderEpochResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetForLeaderEpochResponseTopicPartition{Partition: p.Partition, ErrorCode: code, LeaderEpoch: -1, EndOffset: -1})
			}
			or.Topics = append(or.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkAddOffsetsToTxn(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.AddOffsetsToTxnRequest)
	if !c.can(authz.OpWrite, authz.ResourceTransactionalID, req.TransactionalID) {
		return denyWhole(r, codeTxn)
	}
	if !c.can(authz.OpRead, authz.ResourceGroup, req.Group) {
		return denyWhole(r, codeGroup)
	}
	return true
}

// checkWriteTxnMarkers: ClusterAction (the transaction coordinator's
// brokers, or kafka-transactions.sh abort run by an administrator).
func checkWriteTxnMarkers(c *authCtx, r *request) bool {
	if c.can(authz.OpClusterAction, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.WriteTxnMarkersResponseMarker{ProducerID: m.ProducerID}
		for _, t := range m.Topics {
			rt := kmsg.WriteTxnMarkersResponseMarkerTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.WriteTxnMarkersResponseMarkerTopicPartition{Partition: p, ErrorCode: codeCluster})
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	r.respond(resp)
	return false
}

func checkCreateAcls(c *authCtx, r *request) bool {
	if c.can(authz.OpAlter, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	for range req.Creations {
		resp.Results = append(resp.Results, kmsg.CreateACLsResponseResult{ErrorCode: codeCluster})
	}
	r.respond(resp)
	return false
}

func checkDeleteAcls(c *authCtx, r *request) bool {
	if c.can(authz.OpAlter, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	for range req.Filters {
		resp.Results = append(resp.Results, kmsg.DeleteACLsResponseResult{ErrorCode: codeCluster})
	}
	r.respond(resp)
	return false
}

func checkAlterUserScramCredentials(c *authCtx, r *request) bool {
	if c.can(authz.OpAlter, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	seen := map[string]bool{}
	add := func(u string) {
		if !seen[u] {
			seen[u] = true
			resp.Results = append(resp.Results, kmsg.AlterUserSCRAMCredentialsResponseResult{User: u, ErrorCode: codeCluster})
		}
	}
	for _, d := range req.Deletions {
		add(d.Name)
	}
	for _, u := range req.Upsertions {
		add(u.Name)
	}
	r.respond(resp)
	return false
}

// configResourceAllowed: topic configs need op on the topic, group
// configs on the group, broker, broker logger and client-metrics configs
// on the cluster.
func configResourceAllowed(c *authCtx, typ kmsg.ConfigResourceType, name string, op authz.Operation) (bool, int16) {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return c.can(op, authz.ResourceTopic, name), codeTopic
	case kmsg.ConfigResourceType(32): // GROUP (KIP-848)
		return c.can(op, authz.ResourceGroup, name), codeGroup
	}
	return c.can(op, authz.ResourceCluster, authz.ClusterName), codeCluster
}

func checkDescribeConfigs(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DescribeConfigsRequest)
	var denied []kmsg.DescribeConfigsResponseResource
	kept, _ := split(req.Resources, func(res kmsg.DescribeConfigsRequestResource) bool {
		ok, code := configResourceAllowed(c, res.ResourceType, res.ResourceName, authz.OpDescribeConfigs)
		if !ok {
			d := kmsg.NewDescribeConfigsResponseResource()
			d.ResourceType, d.ResourceName, d.ErrorCode = res.ResourceType, res.ResourceName, code
			denied = append(denied, d)
		}
		return ok
	})
	if len(denied) == 0 {
		return true
	}
	req.Resources = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeConfigsResponse)
		dr.Resources = append(dr.Resources, denied...)
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkAlterConfigs(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.AlterConfigsRequest)
	var denied []kmsg.AlterConfigsResponseResource
	kept, _ := split(req.Resources, func(res kmsg.AlterConfigsRequestResource) bool {
		ok, code := configResourceAllowed(c, res.ResourceType, res.ResourceName, authz.OpAlterConfigs)
		if !ok {
			denied = append(denied, kmsg.AlterConfigsResponseResource{ResourceType: res.ResourceType, ResourceName: res.ResourceName, ErrorCode: code})
		}
		return ok
	})
	if len(denied) == 0 {
		return true
	}
	req.Resources = kept
	r.addPatch(func(resp kmsg.Response) {
		ar := resp.(*kmsg.AlterConfigsResponse)
		ar.Resources = append(ar.Resources, denied...)
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkIncrementalAlterConfigs(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.IncrementalAlterConfigsRequest)
	var denied []kmsg.IncrementalAlterConfigsResponseResource
	kept, _ := split(req.Resources, func(res kmsg.IncrementalAlterConfigsRequestResource) bool {
		ok, code := configResourceAllowed(c, res.ResourceType, res.ResourceName, authz.OpAlterConfigs)
		if !ok {
			denied = append(denied, kmsg.IncrementalAlterConfigsResponseResource{ResourceType: res.ResourceType, ResourceName: res.ResourceName, ErrorCode: code})
		}
		return ok
	})
	if len(denied) == 0 {
		return true
	}
	req.Resources = kept
	r.addPatch(func(resp kmsg.Response) {
		ar := resp.(*kmsg.IncrementalAlterConfigsResponse)
		ar.Resources = append(ar.Resources, denied...)
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkCreatePartitions(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.CreatePartitionsRequest)
	kept, denied := split(req.Topics, func(t kmsg.CreatePartitionsRequestTopic) bool {
		return c.can(authz.OpAlter, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		cr := resp.(*kmsg.CreatePartitionsResponse)
		for _, t := range denied {
			cr.Topics = append(cr.Topics, kmsg.CreatePartitionsResponseTopic{Topic: t.Topic, ErrorCode: codeTopic})
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkDeleteGroups(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DeleteGroupsRequest)
	kept, denied := split(req.Groups, func(g string) bool { return c.can(authz.OpDelete, authz.ResourceGroup, g) })
	if len(denied) == 0 {
		return true
	}
	req.Groups = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DeleteGroupsResponse)
		for _, g := range denied {
			dr.Groups = append(dr.Groups, kmsg.DeleteGroupsResponseGroup{Group: g, ErrorCode: codeGroup})
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

func checkOffsetDelete(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.OffsetDeleteRequest)
	if !c.can(authz.OpDelete, authz.ResourceGroup, req.Group) {
		return denyWhole(r, codeGroup)
	}
	kept, denied := split(req.Topics, func(t kmsg.OffsetDeleteRequestTopic) bool {
		return c.can(authz.OpRead, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		or := resp.(*kmsg.OffsetDeleteResponse)
		for _, t := range denied {
			rt := kmsg.OffsetDeleteResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteResponseTopicPartition{Partition: p.Partition, ErrorCode: codeTopic})
			}
			or.Topics = append(or.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkDescribeCluster: no check (as Kafka); the cluster's authorized
// operations when asked.
func checkDescribeCluster(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DescribeClusterRequest)
	if req.IncludeClusterAuthorizedOperations {
		r.addPatch(func(resp kmsg.Response) {
			resp.(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations = c.ops(authz.ResourceCluster, authz.ClusterName)
		})
	}
	return true
}

func checkDescribeProducers(c *authCtx, r *request) bool {
	req := r.body.(*kmsg.DescribeProducersRequest)
	kept, denied := split(req.Topics, func(t kmsg.DescribeProducersRequestTopic) bool {
		return c.can(authz.OpRead, authz.ResourceTopic, t.Topic)
	})
	if len(denied) == 0 {
		return true
	}
	req.Topics = kept
	r.addPatch(func(resp kmsg.Response) {
		dr := resp.(*kmsg.DescribeProducersResponse)
		for _, t := range denied {
			rt := kmsg.DescribeProducersResponseTopic{Topic: t.Topic}
			for _, p := range t.Partitions {
				rt.Partitions = append(rt.Partitions, kmsg.DescribeProducersResponseTopicPartition{Partition: p, ErrorCode: codeTopic})
			}
			dr.Topics = append(dr.Topics, rt)
		}
	})
	if len(kept) == 0 {
		r.respond(req.ResponseKind())
		return false
	}
	return true
}

// checkAlterClientQuotas needs AlterConfigs on the cluster, as Kafka's;
// denied, every entry is answered CLUSTER_AUTHORIZATION_FAILED.
func checkAlterClientQuotas(c *authCtx, r *request) bool {
	if c.can(authz.OpAlterConfigs, authz.ResourceCluster, authz.ClusterName) {
		return true
	}
	req := r.body.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, e := range req.Entries {
		out := kmsg.AlterClientQuotasResponseEntry{ErrorCode: codeCluster}
		for _, p := range e.Entity {
			out.Entity = append(out.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: p.Type, Name: p.Name})
		}
		resp.Entries = append(resp.Entries, out)
	}
	r.respond(resp)
	return false
}
