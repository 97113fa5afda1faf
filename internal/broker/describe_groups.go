package broker

// DescribeGroups, v0..6: state, protocol type and (when Stable) protocol,
// and the members with client id, host, metadata and assignment. An
// unknown group is described as Dead without an error, as Kafka does.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDescribeGroups(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeGroupsRequest)
	resp := kmsg.NewPtrDescribeGroupsResponse()
	for _, d := range b.opts.Groups.Describe(req.Groups) {
		g := kmsg.NewDescribeGroupsResponseGroup()
		g.Group, g.State, g.ProtocolType, g.Protocol = d.Group, d.State, d.ProtocolType, d.Protocol
		g.ErrorCode = errorCode(d.Err)
		if r.version >= 6 {
			g.ErrorMessage = errorMessage(d.Err)
		}
		for _, m := range d.Members {
			gm := kmsg.NewDescribeGroupsResponseGroupMember()
			gm.MemberID, gm.InstanceID, gm.ClientID, gm.ClientHost = m.MemberID, m.InstanceID, m.ClientID, m.ClientHost
			gm.ProtocolMetadata, gm.MemberAssignment = nonNil(m.Metadata), nonNil(m.Assignment)
			g.Members = append(g.Members, gm)
		}
		resp.Groups = append(resp.Groups, g)
	}
	r.respond(resp)
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
