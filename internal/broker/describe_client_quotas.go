package broker

// DescribeClientQuotas, v0..1 (KIP-546): the client quotas of this
// broker's metadata image that match a filter. Each component names an
// entity type and matches one name (exact), the <default> (default) or
// any name of the type (specified); a strict filter also requires the
// entity to have no other types. The filter is validated as Kafka's
// ClientQuotasImage: a type named twice, a match string where none
// belongs or missing where one does, ip with user or client-id are
// INVALID_REQUEST; a type Kafka does not know is UNSUPPORTED_VERSION.
// Who may call it is in the checks table (DescribeConfigs on the
// cluster).

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/quota"
)

// Match types of DescribeClientQuotas.
const (
	quotaMatchExact     = 0
	quotaMatchDefault   = 1
	quotaMatchSpecified = 2
)

// quotaFilter is a validated DescribeClientQuotas filter.
type quotaFilter struct {
	parts  map[string]kmsg.DescribeClientQuotasRequestComponent
	strict bool
}

func newQuotaFilter(req *kmsg.DescribeClientQuotasRequest) (quotaFilter, *kerr.Error, string) {
	f := quotaFilter{parts: map[string]kmsg.DescribeClientQuotasRequestComponent{}, strict: req.Strict}
	for _, c := range req.Components {
		switch {
		case c.EntityType == "":
			return f, kerr.InvalidRequest, "Invalid empty entity type."
		case hasPart(f, c.EntityType):
			return f, kerr.InvalidRequest, fmt.Sprintf("Entity type %s cannot appear more than once in the filter.", c.EntityType)
		case c.EntityType != quota.TypeUser && c.EntityType != quota.TypeClientID && c.EntityType != quota.TypeIP:
			return f, kerr.UnsupportedVersion, "Unsupported entity type " + c.EntityType
		}
		switch c.MatchType {
		case quotaMatchExact:
			if c.Match == nil {
				return f, kerr.InvalidRequest, "Request specified MATCH_TYPE_EXACT, but set match string to null."
			}
		case quotaMatchDefault:
			if c.Match != nil {
				return f, kerr.InvalidRequest, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
			}
		case quotaMatchSpecified:
			if c.Match != nil {
				return f, kerr.InvalidRequest, "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
			}
		default:
			return f, kerr.InvalidRequest, fmt.Sprintf("Unknown match type %d", c.MatchType)
		}
		f.parts[c.EntityType] = c
	}
	if hasPart(f, quota.TypeIP) && (hasPart(f, quota.TypeUser) || hasPart(f, quota.TypeClientID)) {
		return f, kerr.InvalidRequest, "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
	}
	return f, nil, ""
}

func hasPart(f quotaFilter, typ string) bool { _, ok := f.parts[typ]; return ok }

// matches reports whether the filter selects e.
func (f quotaFilter) matches(e quota.Entity) bool {
	if hasPart(f, quota.TypeIP) {
		return false // Strata keeps no ip quotas
	}
	for _, p := range [...]struct {
		typ string
		c   quota.Component
	}{{quota.TypeUser, e.User}, {quota.TypeClientID, e.ClientID}} {
		typ, c := p.typ, p.c
		fc, ok := f.parts[typ]
		if !ok {
			if f.strict && c.Set {
				return false
			}
			continue
		}
		switch {
		case !c.Set:
			return false
		case fc.MatchType == quotaMatchExact && (c.Default || c.Name != *fc.Match):
			return false
		case fc.MatchType == quotaMatchDefault && !c.Default:
			return false
		}
	}
	return true
}

func (b *Broker) handleDescribeClientQuotas(_ context.Context, r *request) {
	req := r.body.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	f, kerrv, msg := newQuotaFilter(req)
	if kerrv != nil {
		resp.ErrorCode, resp.ErrorMessage = kerrv.Code, strp(msg)
		b.log.Info("DescribeClientQuotas refused", "err", msg)
		r.respond(resp)
		return
	}
	img := b.image()
	for _, e := range img.SortedQuotaEntities() {
		if !f.matches(e) {
			continue
		}
		entry := kmsg.DescribeClientQuotasResponseEntry{}
		for _, p := range e.Parts() {
			entry.Entity = append(entry.Entity, kmsg.DescribeClientQuotasResponseEntryEntity{Type: p.Type, Name: p.Name})
		}
		vals := img.ClientQuotas[e]
		for _, k := range quota.Keys {
			if v, ok := vals[k]; ok {
				entry.Values = append(entry.Values, kmsg.DescribeClientQuotasResponseEntryValue{Key: k, Value: v})
			}
		}
		resp.Entries = append(resp.Entries, entry)
	}
	r.respond(resp)
}
