package broker

import (
	"maps"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func alterReassignments(t *testing.T, b *Broker, version int16, allowRF bool, topic string, parts map[int32][]int32) *kmsg.AlterPartitionAssignmentsResponse {
	t.Helper()
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.SetVersion(version)
	req.AllowReplicationFactorChange = allowRF
	rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
	rt.Topic = topic
	for _, p := range slices.Sorted(maps.Keys(parts)) {
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = p, parts[p]
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return roundTrip(t, b, req).(*kmsg.AlterPartitionAssignmentsResponse)
}

func listReassignments(t *testing.T, b *Broker, topics []kmsg.ListPartitionReassignmentsRequestTopic) *kmsg.ListPartitionReassignmentsResponse {
	t.Helper()
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	req.Topics = topics
	return roundTrip(t, b, req).(*kmsg.ListPartitionReassignmentsResponse)
}

// partitionCodes maps partition -> error code of a response's only topic.
func partitionCodes(t *testing.T, resp *kmsg.AlterPartitionAssignmentsResponse) map[int32]int16 {
	t.Helper()
	if resp.ErrorCode != 0 || len(resp.Topics) != 1 {
		t.Fatalf("response: %+v", resp)
	}
	out := map[int32]int16{}
	for _, p := range resp.Topics[0].Partitions {
		out[p.Partition] = p.ErrorCode
	}
	return out
}

func TestPartitionReassignmentsHandlers(t *testing.T) {
	b := newTestBroker(t)
	ctrl := b.opts.Controller.(*controller.Controller)
	if _, err := ctrl.RegisterBroker(controller.BrokerRegistration{NodeID: 2, Host: "h2", Port: 9092, PreviousBrokerEpoch: -1}); err != nil {
		t.Fatal(err)
	}
	if resp := listReassignments(t, b, nil); resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Fatalf("list before: %+v", resp)
	}

	// Rejections, per partition.
	codes := partitionCodes(t, alterReassignments(t, b, 0, true, "t", map[int32][]int32{0: {9}, 1: nil, 5: {1}}))
	if want := map[int32]int16{0: kerr.InvalidReplicaAssignment.Code, 1: kerr.NoReassignmentInProgress.Code, 5: kerr.UnknownTopicOrPartition.Code}; !maps.Equal(codes, want) {
		t.Fatalf("rejections: %v, want %v", codes, want)
	}
	codes = partitionCodes(t, alterReassignments(t, b, 0, true, "t", map[int32][]int32{0: {}, 1: {2, 2}}))
	if want := map[int32]int16{0: kerr.InvalidReplicaAssignment.Code, 1: kerr.InvalidReplicaAssignment.Code}; !maps.Equal(codes, want) {
		t.Fatalf("rejections: %v, want %v", codes, want)
	}
	// v1 may forbid changing the replication factor.
	resp := alterReassignments(t, b, 1, false, "t", map[int32][]int32{0: {2, 1}})
	if resp.AllowReplicationFactorChange {
		t.Errorf("v1 response does not echo AllowReplicationFactorChange=false")
	}
	if codes := partitionCodes(t, resp); codes[0] != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("rf change with v1 allow=false: %v", codes)
	}

	// Move t-0 from 1 to 2 (v0: the replication factor may change, but
	// it does not here).
	if codes := partitionCodes(t, alterReassignments(t, b, 0, false, "t", map[int32][]int32{0: {2}})); codes[0] != 0 {
		t.Fatalf("reassign: %v", codes)
	}
	lr := listReassignments(t, b, nil)
	if lr.ErrorCode != 0 || len(lr.Topics) != 1 || lr.Topics[0].Topic != "t" || len(lr.Topics[0].Partitions) != 1 {
		t.Fatalf("list: %+v", lr)
	}
	if p := lr.Topics[0].Partitions[0]; p.Partition != 0 || !slices.Equal(p.Replicas, []int32{2, 1}) ||
		!slices.Equal(p.AddingReplicas, []int32{2}) || !slices.Equal(p.RemovingReplicas, []int32{1}) {
		t.Fatalf("listed: %+v", p)
	}
	// Filtered: t-1 is not being reassigned, "nope" does not exist.
	lt := kmsg.NewListPartitionReassignmentsRequestTopic()
	lt.Topic, lt.Partitions = "t", []int32{1}
	nt := kmsg.NewListPartitionReassignmentsRequestTopic()
	nt.Topic, nt.Partitions = "nope", []int32{0}
	if lr := listReassignments(t, b, []kmsg.ListPartitionReassignmentsRequestTopic{lt, nt}); len(lr.Topics) != 0 {
		t.Fatalf("filtered list: %+v", lr)
	}

	// Metadata reports the full replica set during the reassignment.
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.SetVersion(12)
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("t")
	mreq.Topics = append(mreq.Topics, mt)
	mresp := roundTrip(t, b, mreq).(*kmsg.MetadataResponse)
	if len(mresp.Topics) != 1 || len(mresp.Topics[0].Partitions) != 2 {
		t.Fatalf("metadata: %+v", mresp)
	}
	for _, p := range mresp.Topics[0].Partitions {
		if p.Partition == 0 && (!slices.Equal(p.Replicas, []int32{2, 1}) || p.Leader != 1) {
			t.Fatalf("metadata t-0 during the reassignment: replicas %v leader %d", p.Replicas, p.Leader)
		}
	}

	// Cancel.
	if codes := partitionCodes(t, alterReassignments(t, b, 1, true, "t", map[int32][]int32{0: nil})); codes[0] != 0 {
		t.Fatalf("cancel: %v", codes)
	}
	if lr := listReassignments(t, b, nil); len(lr.Topics) != 0 {
		t.Fatalf("list after cancel: %+v", lr)
	}
	if p := ctrl.Image().Topics["t"].Partitions[0]; !slices.Equal(p.Replicas, []int32{1}) || p.Reassigning() {
		t.Fatalf("t-0 after cancel: %+v", p)
	}
}
