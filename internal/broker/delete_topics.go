package broker

// DeleteTopics, v0..6. v6+ may name topics by id.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/metadata"
)

func (b *Broker) handleDeleteTopics(_ context.Context, r *request) {
	req := r.body.(*kmsg.DeleteTopicsRequest)
	var reqs []controller.DeleteTopic
	if r.version >= 6 {
		for _, t := range req.Topics {
			d := controller.DeleteTopic{ID: metadata.UUID(t.TopicID)}
			if t.Topic != nil {
				d.Name = *t.Topic
			}
			reqs = append(reqs, d)
		}
	} else {
		for _, n := range req.TopicNames {
			reqs = append(reqs, controller.DeleteTopic{Name: n})
		}
	}
	resp := kmsg.NewPtrDeleteTopicsResponse()
	for _, res := range b.opts.Controller.DeleteTopics(reqs) {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		name := res.Name
		rt.Topic = &name
		rt.TopicID = res.ID
		rt.ErrorCode = errorCode(res.Err)
		if r.version >= 5 {
			rt.ErrorMessage = errorMessage(res.Err)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}
