package broker

// CreatePartitions, v0..3: grow topics, with optional explicit assignments
// for the new partitions, or validate only.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func (b *Broker) handleCreatePartitions(_ context.Context, r *request) {
	req := r.body.(*kmsg.CreatePartitionsRequest)
	reqs := make([]controller.CreatePartitions, len(req.Topics))
	for i, t := range req.Topics {
		c := controller.CreatePartitions{Topic: t.Topic, Count: t.Count}
		if t.Assignment != nil {
			c.Assignment = make([][]int32, len(t.Assignment))
			for j, a := range t.Assignment {
				c.Assignment[j] = a.Replicas
			}
		}
		reqs[i] = c
	}
	resp := kmsg.NewPtrCreatePartitionsResponse()
	for i, err := range b.opts.Controller.CreatePartitionsAll(reqs, req.ValidateOnly) {
		err = b.nameLogDir(err) // a broker whose log directory is offline
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = req.Topics[i].Topic
		rt.ErrorCode = errorCode(err)
		rt.ErrorMessage = errorMessage(err)
		resp.Topics = append(resp.Topics, rt)
	}
	r.respond(resp)
}
