package broker

// DeleteGroups, v0..3: an empty group is deleted with its offsets
// (tombstones in __consumer_offsets); NON_EMPTY_GROUP if it has members,
// GROUP_ID_NOT_FOUND if it does not exist.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDeleteGroups(_ context.Context, r *request) {
	req := r.body.(*kmsg.DeleteGroupsRequest)
	resp := kmsg.NewPtrDeleteGroupsResponse()
	for i, err := range b.opts.Groups.DeleteGroups(req.Groups) {
		g := kmsg.DeleteGroupsResponseGroup{Group: req.Groups[i], ErrorCode: errorCode(err)}
		if r.version >= 3 {
			g.ErrorMessage = errorMessage(err)
		}
		resp.Groups = append(resp.Groups, g)
	}
	r.respond(resp)
}
