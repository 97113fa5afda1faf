package config

import (
	"os"
	"strings"
	"testing"
)

// docs/configuration.md is generated from the registry; regenerate it with
// `make docs` when a key changes.
func TestConfigurationDocIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != Markdown() {
		t.Fatal("docs/configuration.md is stale: run `make docs`")
	}
}

// The valid-values column states the rule the broker enforces.
func TestReferenceValidValues(t *testing.T) {
	byName := map[string]KeyDoc{}
	for _, k := range Reference() {
		byName[k.Name] = k
	}
	for key, want := range map[string]string{
		"log.fsync":                 "one of always, interval",
		"num.partitions":            "at least 1",
		"log.cleanup.policy":        "one of delete, compact",
		"auto.create.topics.enable": "true, false",
	} {
		if got := byName[key].Valid; got != want {
			t.Errorf("%s: valid %q, want %q", key, got, want)
		}
	}
	if k := byName["data.dir"]; !strings.HasPrefix(k.Kafka, "log.dirs") {
		t.Errorf("data.dir's Kafka name %q", k.Kafka)
	}
	if k := byName["num.partitions"]; k.Kafka != "num.partitions" || k.Dynamic {
		t.Errorf("num.partitions: %+v", k)
	}
	if k := byName["retention.ms"]; k.Name != "" {
		t.Errorf("topic key listed as a broker key: %+v", k)
	}
	if k := byName["log.retention.ms"]; !k.Dynamic {
		t.Errorf("log.retention.ms is dynamic: %+v", k)
	}
}
