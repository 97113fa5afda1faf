package controller

import (
	"fmt"

	"github.com/stratalog/strata/internal/metadata"
)

// A feature update the controller refuses (an unknown feature, a level out
// of the supported range, a downgrade not asked for as one) is
// ErrInvalidUpdateVersion, Kafka's INVALID_UPDATE_VERSION.

// Feature upgrade types (UpdateFeatures v1; v0's AllowDowngrade is
// FeatureSafeDowngrade).
const (
	FeatureUpgrade         int8 = 1
	FeatureSafeDowngrade   int8 = 2
	FeatureUnsafeDowngrade int8 = 3
)

// FeatureUpdate is one feature of an UpdateFeatures request.
type FeatureUpdate struct {
	Name        string
	Level       int16 // 0 removes the feature (level 0)
	UpgradeType int8
}

// supportedFeatures are the features this controller can finalize, with
// their highest level (the lowest is 0).
var supportedFeatures = map[string]int16{metadata.TransactionVersionFeature: metadata.MaxTransactionVersion}

// UpdateFeatures changes finalized feature levels (KIP-584, kafka-features.sh
// upgrade / downgrade) with FeatureLevelRecords, as Kafka's
// FeatureControlManager: every update is valid or nothing is written; the
// errors are per update, in order. A level below the finalized one needs a
// downgrade type; the same level is a no-op. (Kafka also checks that every
// registered broker supports the level; Strata's nodes run one binary.)
func (c *Controller) UpdateFeatures(ups []FeatureUpdate, validateOnly bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	errs := make([]error, len(ups))
	var recs []metadata.Record
	failed := false
	seen := map[string]bool{}
	for i, u := range ups {
		max, ok := supportedFeatures[u.Name]
		cur := img.FeatureLevel(u.Name)
		switch {
		case seen[u.Name]:
			errs[i] = fmt.Errorf("%w: feature %q named twice", ErrInvalidRequest, u.Name)
		case !ok:
			errs[i] = fmt.Errorf("%w: unknown feature %q", ErrInvalidUpdateVersion, u.Name)
		case u.Level < 0 || u.Level > max:
			errs[i] = fmt.Errorf("%w: %s level %d is outside the supported 0..%d", ErrInvalidUpdateVersion, u.Name, u.Level, max)
		case u.Level < cur && u.UpgradeType != FeatureSafeDowngrade && u.UpgradeType != FeatureUnsafeDowngrade:
			errs[i] = fmt.Errorf("%w: %s is at %d; a downgrade to %d must be asked for as one", ErrInvalidUpdateVersion, u.Name, cur, u.Level)
		case u.Level > cur && u.UpgradeType != FeatureUpgrade:
			errs[i] = fmt.Errorf("%w: %s is at %d; %d is an upgrade, not a downgrade", ErrInvalidUpdateVersion, u.Name, cur, u.Level)
		case u.Level != cur:
			recs = append(recs, &metadata.FeatureLevelRecord{Name: u.Name, FeatureLevel: u.Level})
		}
		seen[u.Name] = true
		failed = failed || errs[i] != nil
	}
	if failed || validateOnly || len(recs) == 0 {
		return errs
	}
	if !c.IsActive() {
		return fill(errs, ErrNotController)
	}
	if _, err := c.commit(recs); err != nil {
		return fill(errs, err)
	}
	for _, r := range recs {
		fr := r.(*metadata.FeatureLevelRecord)
		c.opts.Logger.Info("feature level finalized", "feature", fr.Name, "level", fr.FeatureLevel)
	}
	return errs
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}
