package server

import (
	"testing"

	"github.com/stratalog/strata/internal/config"
)

func TestConnLimitsFromConfig(t *testing.T) {
	cfg, err := config.LoadBroker("", nil, map[string]string{"max.connections.per.ip": "0", "max.connections.per.ip.overrides": "localhost:5,10.1.2.3:7", "max.connections": "100"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := connLimits(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l.Max != 100 || l.PerIP >= 0 || l.CreationRate != 0 {
		t.Errorf("limits %+v: want max 100, none per address but the overrides, no creation rate", l)
	}
	if l.PerIPOverrides["127.0.0.1"] != 5 || l.PerIPOverrides["10.1.2.3"] != 7 {
		t.Errorf("overrides %v: want localhost resolved to 127.0.0.1:5 and 10.1.2.3:7", l.PerIPOverrides)
	}
	if _, err := config.LoadBroker("", nil, map[string]string{"max.connections.per.ip.overrides": "host"}); err == nil {
		t.Error("an override without a count was accepted")
	}
	def, _ := config.LoadBroker("", nil, nil)
	if l, _ := connLimits(def); l.Max != 0 || l.PerIP != 0 || l.PerIPOverrides != nil {
		t.Errorf("defaults gave limits %+v, want none", l)
	}
}
