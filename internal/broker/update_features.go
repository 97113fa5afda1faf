package broker

// UpdateFeatures, v0..1 (KIP-584; kafka-features.sh upgrade / downgrade):
// changes finalized feature levels on the active controller (the request is
// relayed there), which writes FeatureLevelRecords; ApiVersions advertises
// the result (registry.go). The only feature is transaction.version
// (0..2). A downgrade must be asked for as one (v0 AllowDowngrade, v1
// UpgradeType 2 or 3), else INVALID_UPDATE_VERSION, as are an unknown
// feature and a level out of range; every update is applied or none.
// Errors are per feature; ValidateOnly (v1) writes nothing.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
)

func (b *Broker) handleUpdateFeatures(_ context.Context, r *request) {
	req := r.body.(*kmsg.UpdateFeaturesRequest)
	resp := kmsg.NewPtrUpdateFeaturesResponse()
	ups := make([]controller.FeatureUpdate, len(req.FeatureUpdates))
	for i, fu := range req.FeatureUpdates {
		typ := fu.UpgradeType
		if r.version < 1 {
			typ = controller.FeatureUpgrade
			if fu.AllowDowngrade {
				typ = controller.FeatureSafeDowngrade
			}
		}
		ups[i] = controller.FeatureUpdate{Name: fu.Feature, Level: fu.MaxVersionLevel, UpgradeType: typ}
	}
	errs := b.opts.Controller.UpdateFeatures(ups, r.version >= 1 && req.ValidateOnly)
	for i, fu := range req.FeatureUpdates {
		res := kmsg.NewUpdateFeaturesResponseResult()
		res.Feature = fu.Feature
		if err := errs[i]; err != nil {
			b.log.Info("feature update refused", "feature", fu.Feature, "level", fu.MaxVersionLevel, "err", err)
			res.ErrorCode = errorCode(err)
			if res.ErrorCode == kerr.UnknownServerError.Code {
				res.ErrorCode = kerr.InvalidUpdateVersion.Code
			}
			res.ErrorMessage = errorMessage(err)
		}
		resp.Results = append(resp.Results, res)
	}
	r.respond(resp)
}
