package server

import (
	"fmt"
	"strings"

	"github.com/stratalog/strata/internal/authz"
	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/network"
	"github.com/stratalog/strata/internal/security"
)

// authzOptions reads authorizer.class.name, super.users and
// allow.everyone.if.no.acl.found. The brokers' own principal must pass
// every check, as in Kafka where it is a super user: when the
// inter-broker listener uses SASL, the user this node authenticates as
// (the username of the inter-broker mechanism's JAAS config) is added to
// the super users; on a PLAINTEXT or SSL inter-broker listener the
// brokers are User:ANONYMOUS or their certificate's mapped subject, which
// super.users must name (Kafka's rule too).
func (s *Server) authzOptions() (broker.AuthzOptions, error) {
	if s.cfg.String("authorizer.class.name") == "" {
		return broker.AuthzOptions{}, nil
	}
	supers, err := authz.ParseSuperUsers(s.cfg.String("super.users"))
	if err != nil {
		return broker.AuthzOptions{}, err
	}
	r, err := resolveListeners(s.cfg, osHostname)
	if err != nil {
		return broker.AuthzOptions{}, err
	}
	spec := r.inter()
	if spec.Protocol == network.ProtocolSASLPlaintext || spec.Protocol == network.ProtocolSASLSSL {
		mech := s.cfg.String("sasl.mechanism.inter.broker.protocol")
		opts, err := security.ParseJAAS(s.cfg.ListenerJAAS(spec.Name, mech))
		if err != nil {
			return broker.AuthzOptions{}, fmt.Errorf("inter-broker principal: %w", err)
		}
		if u := opts["username"]; u != "" {
			supers = append(supers, network.Principal{Type: "User", Name: u}.String())
		}
		if mech == security.MechOAuthBearer {
			// The principal claim of the brokers' unsecured token.
			claim := strings.TrimSpace(opts["unsecuredLoginPrincipalClaimName"])
			if claim == "" {
				claim = "sub"
			}
			if u := strings.TrimSpace(opts["unsecuredLoginStringClaim_"+claim]); u != "" {
				supers = append(supers, network.Principal{Type: "User", Name: u}.String())
			}
		}
	}
	return broker.AuthzOptions{Enabled: true, Config: authz.Config{SuperUsers: supers, AllowIfNoACL: s.cfg.Bool("allow.everyone.if.no.acl.found")}}, nil
}
