package broker

// Heartbeat, v0..4: keeps a member's session alive; REBALANCE_IN_PROGRESS
// tells it to rejoin.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleHeartbeat(_ context.Context, r *request) {
	req := r.body.(*kmsg.HeartbeatRequest)
	resp := kmsg.NewPtrHeartbeatResponse()
	resp.ErrorCode = errorCode(b.opts.Groups.Heartbeat(req.Group, req.Generation, req.MemberID, req.InstanceID))
	r.respond(resp)
}
