package metadata

import (
	"fmt"
	"maps"
	"sort"

	"github.com/stratalog/strata/internal/quota"
)

// Client quotas live in the metadata log, as in KRaft (ClientQuotaRecord):
// one record sets or removes one key of one entity; the image keeps every
// entity's keys (quota.Manager enforces them on each broker).

// ClientQuotaRecord sets (Remove false) or removes one quota key of an
// entity. Entity lists its parts (user, client-id; a nil name is
// <default>) as Kafka's record does.
type ClientQuotaRecord struct {
	Entity []quota.EntityPart `json:"entity"`
	Key    string             `json:"key"`
	Value  float64            `json:"value"`
	Remove bool               `json:"remove,omitempty"`
}

func (*ClientQuotaRecord) Type() RecordType { return TypeClientQuota }

// applyQuota applies r to m, a copy the caller owns whose inner maps are
// still shared with the previous image.
func applyQuota(m map[quota.Entity]map[string]float64, r *ClientQuotaRecord) error {
	e, err := quota.EntityFromParts(r.Entity)
	if err != nil {
		return fmt.Errorf("client quota record: %w", err)
	}
	vals := maps.Clone(m[e])
	if vals == nil {
		vals = map[string]float64{}
	}
	if r.Remove {
		delete(vals, r.Key)
	} else {
		vals[r.Key] = r.Value
	}
	if len(vals) == 0 {
		delete(m, e)
	} else {
		m[e] = vals
	}
	return nil
}

// SortedQuotaEntities returns the entities with quotas in display order.
func (im *Image) SortedQuotaEntities() []quota.Entity {
	out := make([]quota.Entity, 0, len(im.ClientQuotas))
	for e := range im.ClientQuotas {
		out = append(out, e)
	}
	quota.SortEntities(out)
	return out
}

// quotaRecords are the records that rebuild the client quotas.
func (im *Image) quotaRecords() []Record {
	var out []Record
	for _, e := range im.SortedQuotaEntities() {
		vals := im.ClientQuotas[e]
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, &ClientQuotaRecord{Entity: e.Parts(), Key: k, Value: vals[k]})
		}
	}
	return out
}
