package server

import (
	"fmt"
	"math"
	"net"

	"github.com/stratalog/strata/internal/config"
	"github.com/stratalog/strata/internal/network"
)

// connLimits resolves Kafka's connection-limit keys for the network layer;
// hosts in max.connections.per.ip.overrides are resolved to their
// addresses once, at start, as Kafka does.
func connLimits(cfg *config.Broker) (network.ConnLimits, error) {
	unlimited := func(n int64) int {
		if n >= math.MaxInt32 {
			return 0
		}
		return int(n)
	}
	l := network.ConnLimits{
		Max:          unlimited(cfg.Int64("max.connections")),
		CreationRate: unlimited(cfg.Int64("max.connection.creation.rate")),
	}
	if n := cfg.Int64("max.connections.per.ip"); n < math.MaxInt32 {
		l.PerIP = int(n)
		if n == 0 {
			l.PerIP = -1 // zero: no connection unless overridden
		}
	}
	over, err := config.ParseIPOverrides(cfg.String("max.connections.per.ip.overrides"))
	if err != nil {
		return l, fmt.Errorf("max.connections.per.ip.overrides: %w", err)
	}
	if len(over) > 0 {
		l.PerIPOverrides = map[string]int{}
		for host, n := range over {
			ips := []string{host}
			if net.ParseIP(host) == nil {
				if ips, err = net.LookupHost(host); err != nil {
					return l, fmt.Errorf("max.connections.per.ip.overrides: resolving %q: %w", host, err)
				}
			}
			for _, ip := range ips {
				l.PerIPOverrides[ip] = n
			}
		}
	}
	return l, nil
}
