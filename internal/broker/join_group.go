package broker

// JoinGroup, v0..9. v0 has no rebalance timeout (the session timeout is
// used); v4+ new members get MEMBER_ID_REQUIRED with their id first
// (KIP-394); v5+ carries group.instance.id (KIP-345); v9 may tell a static
// leader to skip the assignment. The answer comes when the join phase
// completes, from whichever goroutine completes it: the connection's
// reader never waits.

import (
	"bytes"
	"context"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/coordinator/group"
)

func (b *Broker) handleJoinGroup(_ context.Context, r *request) {
	req := r.body.(*kmsg.JoinGroupRequest)
	jr := group.JoinRequest{
		Group:                req.Group,
		MemberID:             req.MemberID,
		InstanceID:           req.InstanceID,
		ClientID:             r.clientID,
		ClientHost:           clientHost(r),
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout:     time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond,
		ProtocolType:         req.ProtocolType,
		RequireKnownMemberID: r.version >= 4,
	}
	if r.version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: bytes.Clone(p.Metadata)})
	}
	b.opts.Groups.Join(jr, func(res group.JoinResult) {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode = errorCode(res.Err)
		resp.Generation = res.Generation
		resp.MemberID = res.MemberID
		if res.Err == nil {
			resp.LeaderID = res.Leader
			protocol := res.Protocol
			resp.Protocol = &protocol
			if r.version >= 7 {
				pt := res.ProtocolType
				resp.ProtocolType = &pt
			}
			resp.SkipAssignment = res.SkipAssignment && r.version >= 9
			for _, m := range res.Members {
				resp.Members = append(resp.Members, kmsg.JoinGroupResponseMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ProtocolMetadata: m.Metadata})
			}
		} else if r.version < 7 {
			empty := ""
			resp.Protocol = &empty
		}
		r.respond(resp)
	})
}

// clientHost is the client's address as Kafka shows it ("/127.0.0.1").
func clientHost(r *request) string {
	if r.conn == nil || r.conn.RemoteAddr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(r.conn.RemoteAddr.String())
	if err != nil {
		return "/" + r.conn.RemoteAddr.String()
	}
	return "/" + host
}
