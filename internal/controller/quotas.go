package controller

import (
	"fmt"

	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/quota"
)

// QuotaAlteration is one entity's changes of AlterClientQuotas.
type QuotaAlteration struct {
	Entity []quota.EntityPart
	Ops    []QuotaOp
}

// QuotaOp sets (Remove false) or removes one key.
type QuotaOp struct {
	Key    string
	Value  float64
	Remove bool
}

// AlterClientQuotas applies quota changes as Kafka's
// ClientQuotaControlManager: each entity is validated on its own (an
// unknown entity type or key, an empty name, a fractional byte rate fail
// it with INVALID_REQUEST, and none of its keys change); a set to the
// current value and a removal of an absent key write nothing. The
// changes of the valid entities are committed together, unless
// validateOnly.
func (c *Controller) AlterClientQuotas(alts []QuotaAlteration, validateOnly bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	img := c.images.Image()
	out := make([]error, len(alts))
	var recs []metadata.Record
	var changed []int
	for i, a := range alts {
		rs, err := planQuota(img, a)
		if err != nil {
			out[i] = err
			continue
		}
		if len(rs) > 0 {
			recs = append(recs, rs...)
			changed = append(changed, i)
		}
	}
	if validateOnly || len(recs) == 0 {
		return out
	}
	if _, err := c.commit(recs); err != nil {
		for _, i := range changed {
			out[i] = err
		}
	}
	return out
}

// quotaError is an INVALID_REQUEST whose text is Kafka's message alone.
type quotaError struct{ msg string }

func (e quotaError) Error() string        { return e.msg }
func (e quotaError) Is(target error) bool { return target == ErrInvalidRequest }

func invalidQuota(format string, args ...any) error { return quotaError{fmt.Sprintf(format, args...)} }

func planQuota(img *metadata.Image, a QuotaAlteration) ([]metadata.Record, error) {
	e, err := quota.EntityFromParts(a.Entity)
	if err != nil {
		return nil, invalidQuota("%v", err)
	}
	cur := img.ClientQuotas[e]
	seen := map[string]bool{}
	var recs []metadata.Record
	for _, op := range a.Ops {
		if seen[op.Key] {
			return nil, invalidQuota("key %s altered twice for %s", op.Key, e)
		}
		seen[op.Key] = true
		if op.Remove {
			if !quota.ValidKey(op.Key) {
				return nil, invalidQuota("Invalid configuration key %s", op.Key)
			}
			if _, ok := cur[op.Key]; ok {
				recs = append(recs, &metadata.ClientQuotaRecord{Entity: e.Parts(), Key: op.Key, Remove: true})
			}
			continue
		}
		if err := quota.ValidateValue(op.Key, op.Value); err != nil {
			return nil, invalidQuota("%v", err)
		}
		if v, ok := cur[op.Key]; ok && v == op.Value {
			continue
		}
		recs = append(recs, &metadata.ClientQuotaRecord{Entity: e.Parts(), Key: op.Key, Value: op.Value})
	}
	return recs, nil
}
