package broker

// AlterConfigs, v0..2 (legacy: the given set replaces every override of the
// resource) and IncrementalAlterConfigs, v0..1 (SET, DELETE, APPEND,
// SUBTRACT per key). Both work on topics and on this broker's dynamic
// settings (an empty broker name is the cluster-wide default); static broker
// settings are read-only and answer INVALID_CONFIG.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func (b *Broker) handleAlterConfigs(_ context.Context, r *request) {
	req := r.body.(*kmsg.AlterConfigsRequest)
	reqs := make([]controller.AlterConfigResource, len(req.Resources))
	for i, res := range req.Resources {
		a := controller.AlterConfigResource{Type: int8(res.ResourceType), Name: res.ResourceName, Replace: true}
		for _, c := range res.Configs {
			a.Ops = append(a.Ops, controller.ConfigOp{Name: c.Name, Op: controller.OpSet, Value: c.Value})
		}
		reqs[i] = a
	}
	resp := kmsg.NewPtrAlterConfigsResponse()
	for i, err := range b.opts.Controller.AlterConfigs(reqs, req.ValidateOnly) {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = req.Resources[i].ResourceType, req.Resources[i].ResourceName
		rr.ErrorCode = errorCode(err)
		rr.ErrorMessage = errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	r.respond(resp)
}

func (b *Broker) handleIncrementalAlterConfigs(_ context.Context, r *request) {
	req := r.body.(*kmsg.IncrementalAlterConfigsRequest)
	reqs := make([]controller.AlterConfigResource, len(req.Resources))
	for i, res := range req.Resources {
		a := controller.AlterConfigResource{Type: int8(res.ResourceType), Name: res.ResourceName}
		for _, c := range res.Configs {
			a.Ops = append(a.Ops, controller.ConfigOp{Name: c.Name, Op: int8(c.Op), Value: c.Value})
		}
		reqs[i] = a
	}
	resp := kmsg.NewPtrIncrementalAlterConfigsResponse()
	for i, err := range b.opts.Controller.AlterConfigs(reqs, req.ValidateOnly) {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = req.Resources[i].ResourceType, req.Resources[i].ResourceName
		rr.ErrorCode = errorCode(err)
		rr.ErrorMessage = errorMessage(err)
		resp.Resources = append(resp.Resources, rr)
	}
	r.respond(resp)
}
