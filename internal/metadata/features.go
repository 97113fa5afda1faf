package metadata

import "sort"

// Feature flags live in the metadata log, as in KRaft
// (FeatureLevelRecord): the finalized level of each feature the cluster
// agreed on, which ApiVersions advertises (KIP-584). A feature without a
// record is at level 0, as in Kafka. The only feature Strata finalizes is
// transaction.version (KIP-890): clients use transaction version 2 (a new
// producer epoch for every transaction) only once it is at 2.

// TransactionVersionFeature is the name of the transaction version
// feature.
const TransactionVersionFeature = "transaction.version"

// MaxTransactionVersion is the highest transaction.version level Strata
// supports (and formats new clusters with by default).
const MaxTransactionVersion int16 = 2

// FeatureLevelRecord sets a feature's finalized level; level 0 removes it.
type FeatureLevelRecord struct {
	Name         string `json:"name"`
	FeatureLevel int16  `json:"feature_level"`
}

func (*FeatureLevelRecord) Type() RecordType { return TypeFeatureLevel }

// FeatureLevel is the finalized level of feature name, 0 if it has none.
func (im *Image) FeatureLevel(name string) int16 { return im.Features[name] }

// featureRecords are the records that rebuild the finalized features.
func (im *Image) featureRecords() []Record {
	names := make([]string, 0, len(im.Features))
	for n := range im.Features {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]Record, 0, len(names))
	for _, n := range names {
		out = append(out, &FeatureLevelRecord{Name: n, FeatureLevel: im.Features[n]})
	}
	return out
}
