package server

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupWireBadInputAndOldVersions drives the group APIs with raw
// requests: old versions legacy clients send, and bad input that must get
// Kafka's errors while the group keeps working.
func TestGroupWireBadInputAndOldVersions(t *testing.T) {
	t.Parallel()
	n := startNode(t, "", groupOverrides)
	if _, err := n.admin().CreateTopic(ctxT(t), 1, 1, nil, "wt"); err != nil {
		t.Fatal(err)
	}
	c := n.raw()
	check := func(what string, code int16, want error) {
		t.Helper()
		if got := kerr.ErrorForCode(code); got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(0)
	fc.CoordinatorKey = "wg"
	fr := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
	check("find coordinator v0", fr.ErrorCode, nil)
	if fr.NodeID != 1 {
		t.Fatalf("coordinator %d", fr.NodeID)
	}

	join := func(v int16, member string, protos []kmsg.JoinGroupRequestProtocol) *kmsg.JoinGroupResponse {
		j := kmsg.NewPtrJoinGroupRequest()
		j.SetVersion(v)
		j.Group, j.MemberID, j.SessionTimeoutMillis, j.RebalanceTimeoutMillis = "wg", member, 5000, 5000
		j.ProtocolType, j.Protocols = "consumer", protos
		return c.roundTrip(j).(*kmsg.JoinGroupResponse)
	}
	check("join with no protocols", join(1, "", nil).ErrorCode, kerr.InconsistentGroupProtocol)
	big := []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: make([]byte, 1<<20+1)}}
	check("join with oversized metadata", join(1, "", big).ErrorCode, kerr.InvalidRequest)

	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(0)
	hb.Group, hb.Generation, hb.MemberID = "no-such-group", 1, "m"
	check("heartbeat unknown group", c.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.UnknownMemberID)

	// JoinGroup v0 and SyncGroup v0: a one-member group.
	protos := []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 0, 0, 0, 0, 1, 0, 2, 'w', 't', 0, 0, 0, 0}}}
	jr := join(0, "", protos)
	check("join v0", jr.ErrorCode, nil)
	sg := kmsg.NewPtrSyncGroupRequest()
	sg.SetVersion(0)
	sg.Group, sg.Generation, sg.MemberID = "wg", jr.Generation, jr.MemberID
	sg.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("a")}}
	sr := c.roundTrip(sg).(*kmsg.SyncGroupResponse)
	check("sync v0", sr.ErrorCode, nil)
	if string(sr.MemberAssignment) != "a" {
		t.Fatalf("assignment %q", sr.MemberAssignment)
	}

	commit := func(gen int32) int16 {
		oc := kmsg.NewPtrOffsetCommitRequest()
		oc.SetVersion(2)
		oc.Group, oc.Generation, oc.MemberID, oc.RetentionTimeMillis = "wg", gen, jr.MemberID, -1
		oc.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "wt", Partitions: []kmsg.OffsetCommitRequestTopicPartition{{Partition: 0, Offset: 17}}}}
		return c.roundTrip(oc).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	check("commit stale generation", commit(jr.Generation-1), kerr.IllegalGeneration)
	check("commit v2", commit(jr.Generation), nil)

	of := kmsg.NewPtrOffsetFetchRequest()
	of.SetVersion(1)
	of.Group = "wg"
	of.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "wt", Partitions: []int32{0, 5}}}
	ofr := c.roundTrip(of).(*kmsg.OffsetFetchResponse)
	if ps := ofr.Topics[0].Partitions; ps[0].Offset != 17 || ps[1].Offset != -1 {
		t.Fatalf("offset fetch v1: %+v", ps)
	}

	// The group still works: heartbeat, then leave (v0).
	hb.Group, hb.Generation, hb.MemberID = "wg", jr.Generation, jr.MemberID
	check("heartbeat", c.roundTrip(hb).(*kmsg.HeartbeatResponse).ErrorCode, nil)
	dg := kmsg.NewPtrDeleteGroupsRequest()
	dg.Groups = []string{"wg"}
	check("delete non-empty group", c.roundTrip(dg).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.NonEmptyGroup)
	lg := kmsg.NewPtrLeaveGroupRequest()
	lg.SetVersion(0)
	lg.Group, lg.MemberID = "wg", jr.MemberID
	check("leave v0", c.roundTrip(lg).(*kmsg.LeaveGroupResponse).ErrorCode, nil)
	check("delete empty group", c.roundTrip(dg).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, nil)
	check("delete again", c.roundTrip(dg).(*kmsg.DeleteGroupsResponse).Groups[0].ErrorCode, kerr.GroupIDNotFound)
}
