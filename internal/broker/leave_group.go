package broker

// LeaveGroup, v0..5. v0-2 name one member; v3+ batch members, by member id
// or group.instance.id, with an error per member.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleLeaveGroup(_ context.Context, r *request) {
	req := r.body.(*kmsg.LeaveGroupRequest)
	resp := kmsg.NewPtrLeaveGroupResponse()
	var members []group.LeaveMember
	if r.version < 3 {
		members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, group.LeaveMember{MemberID: m.MemberID, InstanceID: m.InstanceID})
		}
	}
	errs, err := b.opts.Groups.Leave(req.Group, members)
	switch {
	case err != nil:
		resp.ErrorCode = errorCode(err)
	case r.version < 3:
		resp.ErrorCode = errorCode(errs[0])
	default:
		for i, m := range req.Members {
			resp.Members = append(resp.Members, kmsg.LeaveGroupResponseMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ErrorCode: errorCode(errs[i])})
		}
	}
	r.respond(resp)
}
