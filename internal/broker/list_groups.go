package broker

// ListGroups, v0..5: v4+ filter by state, v5+ by type ("classic" is the
// only type until KIP-848 groups exist).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleListGroups(_ context.Context, r *request) {
	req := r.body.(*kmsg.ListGroupsRequest)
	resp := kmsg.NewPtrListGroupsResponse()
	var states, types []string
	if r.version >= 4 {
		states = req.StatesFilter
	}
	if r.version >= 5 {
		types = req.TypesFilter
	}
	groups, err := b.opts.Groups.List(states, types)
	resp.ErrorCode = errorCode(err)
	for _, g := range groups {
		resp.Groups = append(resp.Groups, kmsg.ListGroupsResponseGroup{Group: g.Group, ProtocolType: g.ProtocolType, GroupState: g.State, GroupType: g.Type})
	}
	r.respond(resp)
}
