package broker

// SyncGroup, v0..5. The leader's assignments are stored (a group metadata
// record) and handed to every member; followers wait for the leader, and
// are answered from the leader's request. v5 checks protocol type and name.

import (
	"bytes"
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleSyncGroup(_ context.Context, r *request) {
	req := r.body.(*kmsg.SyncGroupRequest)
	sr := group.SyncRequest{Group: req.Group, Generation: req.Generation, MemberID: req.MemberID, InstanceID: req.InstanceID}
	if r.version >= 5 {
		sr.ProtocolType, sr.Protocol = req.ProtocolType, req.Protocol
	}
	if len(req.GroupAssignment) > 0 {
		sr.Assignments = make(map[string][]byte, len(req.GroupAssignment))
		for _, a := range req.GroupAssignment {
			sr.Assignments[a.MemberID] = bytes.Clone(a.MemberAssignment)
		}
	}
	b.opts.Groups.Sync(sr, func(res group.SyncResult) {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = errorCode(res.Err)
		if res.Err == nil {
			resp.MemberAssignment = res.Assignment
			if r.version >= 5 {
				pt, p := res.ProtocolType, res.Protocol
				resp.ProtocolType, resp.Protocol = &pt, &p
			}
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		r.respond(resp)
	})
}
