package brokerlink

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
)

// registrationListeners lists r's listeners for a BrokerRegistration
// request, the inter-broker one (Host:Port) first: the active controller
// takes the first as the broker's inter-broker endpoint and records them
// all for clients (see "Listeners" in docs/design-notes.md).
func registrationListeners(r controller.BrokerRegistration) []kmsg.BrokerRegistrationRequestListener {
	if len(r.Listeners) == 0 {
		return []kmsg.BrokerRegistrationRequestListener{{Name: "PLAINTEXT", Host: r.Host, Port: uint16(r.Port)}}
	}
	out := make([]kmsg.BrokerRegistrationRequestListener, 0, len(r.Listeners))
	for _, l := range r.Listeners {
		out = append(out, kmsg.BrokerRegistrationRequestListener{Name: l.Name, Host: l.Host, Port: uint16(l.Port), SecurityProtocol: broker.SecurityProtocolID(l.SecurityProtocol)})
	}
	return out
}

// AlterUserScramCredentials changes SCRAM users on the local active
// controller (the broker relays the request there otherwise).
func (l *Link) AlterUserScramCredentials(dels []controller.ScramDeletion, ups []controller.ScramUpsertion) map[string]error {
	c, err := l.local()
	if err != nil {
		out := map[string]error{}
		for _, d := range dels {
			out[d.Name] = err
		}
		for _, u := range ups {
			out[u.Name] = err
		}
		return out
	}
	return c.AlterUserScramCredentials(dels, ups)
}

// UpdateFeatures changes finalized feature levels on the local active
// controller (the broker relays the request there otherwise).
func (l *Link) UpdateFeatures(ups []controller.FeatureUpdate, validateOnly bool) []error {
	c, err := l.local()
	if err != nil {
		out := make([]error, len(ups))
		for i := range out {
			out[i] = err
		}
		return out
	}
	return c.UpdateFeatures(ups, validateOnly)
}
