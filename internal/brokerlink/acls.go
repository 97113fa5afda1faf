package brokerlink

import (
	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/controller"
)

// CreateAcls stores ACLs on the local active controller (the broker
// relays CreateAcls there otherwise).
func (l *Link) CreateAcls(bindings []authz.Binding) []error {
	c, err := l.local()
	if err != nil {
		out := make([]error, len(bindings))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return c.CreateAcls(bindings)
}

// DeleteAcls deletes ACLs on the local active controller.
func (l *Link) DeleteAcls(filters []authz.Filter) []controller.DeleteAclsResult {
	c, err := l.local()
	if err != nil {
		out := make([]controller.DeleteAclsResult, len(filters))
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	return c.DeleteAcls(filters)
}

// AlterClientQuotas changes client quotas on the local active controller
// (the broker relays AlterClientQuotas there otherwise).
func (l *Link) AlterClientQuotas(alts []controller.QuotaAlteration, validateOnly bool) []error {
	c, err := l.local()
	if err != nil {
		out := make([]error, len(alts))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return c.AlterClientQuotas(alts, validateOnly)
}
