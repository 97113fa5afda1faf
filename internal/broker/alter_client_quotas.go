package broker

// AlterClientQuotas, v0..1 (KIP-546): client quotas are metadata records
// (metadata/quota.go) written by the active controller, which validates
// each entity on its own (controller/quotas.go: INVALID_REQUEST for an
// unknown entity type or key, an empty name, a fractional byte rate).
// validate_only checks and writes nothing. Relayed to the active
// controller like every metadata change; who may call it is in the
// checks table (AlterConfigs on the cluster).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/quota"
)

func (b *Broker) handleAlterClientQuotas(_ context.Context, r *request) {
	req := r.body.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	alts := make([]controller.QuotaAlteration, len(req.Entries))
	for i, e := range req.Entries {
		for _, p := range e.Entity {
			alts[i].Entity = append(alts[i].Entity, quota.EntityPart{Type: p.Type, Name: p.Name})
		}
		for _, op := range e.Ops {
			alts[i].Ops = append(alts[i].Ops, controller.QuotaOp{Key: op.Key, Value: op.Value, Remove: op.Remove})
		}
	}
	var errs []error
	if !b.opts.Controller.IsActive() {
		errs = make([]error, len(alts))
		for i := range errs {
			errs[i] = controller.ErrNotController
		}
	} else {
		errs = b.opts.Controller.AlterClientQuotas(alts, req.ValidateOnly)
	}
	for i, e := range req.Entries {
		out := kmsg.AlterClientQuotasResponseEntry{}
		for _, p := range e.Entity {
			out.Entity = append(out.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: p.Type, Name: p.Name})
		}
		if err := errs[i]; err != nil {
			out.ErrorCode, out.ErrorMessage = errorCode(err), strp(err.Error())
			b.log.Info("client quota change refused", "entity", alts[i].Entity, "err", err)
		} else if !req.ValidateOnly {
			b.log.Info("client quotas changed", "entity", alts[i].Entity, "ops", alts[i].Ops, "by", r.conn.Principal().String())
		}
		resp.Entries = append(resp.Entries, out)
	}
	r.respond(resp)
}
