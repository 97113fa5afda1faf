package config

import (
	"fmt"
	"strconv"
	"strings"
)

// connectionDefs are Kafka's connection limits (internal/network's
// connlimit.go enforces them).
func connectionDefs() []Def {
	return []Def{
		{Name: "max.connections", Type: TypeInt, Default: "2147483647", Check: atLeast(1), Doc: "connections the broker accepts in all; at the limit it stops accepting until one closes (the kernel's backlog holds the rest)"},
		{Name: "max.connections.per.ip", Type: TypeInt, Default: "2147483647", Check: atLeast(0), Doc: "connections one client address may hold; more are closed as they arrive (with an INFO line)"},
		{Name: "max.connections.per.ip.overrides", Type: TypeString, Default: "", Check: ipOverrides, Doc: "host-or-ip:count,... per-address exceptions to max.connections.per.ip"},
		{Name: "max.connection.creation.rate", Type: TypeInt, Default: "2147483647", Check: atLeast(0), Doc: "new connections per second the broker accepts; faster arrivals wait to be accepted"},
	}
}

// ParseIPOverrides parses max.connections.per.ip.overrides.
func ParseIPOverrides(v string) (map[string]int, error) {
	out := map[string]int{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		i := strings.LastIndex(p, ":")
		if i <= 0 {
			return nil, fmt.Errorf("%q is not host:count", p)
		}
		n, err := strconv.Atoi(strings.TrimSpace(p[i+1:]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: the count must be a whole number, 0 or more", p)
		}
		out[strings.TrimSpace(p[:i])] = n
	}
	return out, nil
}

func ipOverrides(v string) error {
	_, err := ParseIPOverrides(v)
	return err
}
