package config

import (
	"fmt"
	"sort"
	"strings"
)

// KeyDoc describes one broker key for `strata config list` and
// docs/configuration.md.
type KeyDoc struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Default string `json:"default"`
	Valid   string `json:"valid,omitempty"`
	Dynamic bool   `json:"dynamic"`
	Kafka   string `json:"kafka"` // Kafka's key for the same setting ("" when Kafka has none)
	Doc     string `json:"doc,omitempty"`
}

// strataNames are broker keys of Strata's own, with Kafka's nearest key.
var strataNames = map[string]string{
	"listen":                    "listeners",
	"advertised.address":        "advertised.listeners",
	"data.dir":                  "log.dirs (one directory)",
	"log.fsync":                 "log.flush.interval.messages=1 for always",
	"controller.listen":         "listeners (the CONTROLLER listener)",
	"shutdown.timeout.ms":       "",
	"cluster.id":                "kafka-storage.sh format --cluster-id",
	"controller.quorum.tick.ms": "",
	"transaction.version":       "kafka-storage.sh format --feature transaction.version=N",
}

// probes are values every check helper refuses; the refusal ("must be at
// least 1", "must be one of a, b") is the key's valid range, so the
// reference states exactly the rule the broker enforces.
var probes = []string{"-9223372036854775808", "\x00"}

func validOf(d Def) string {
	if d.Type == TypeBoolean {
		return "true, false"
	}
	if d.Check == nil {
		return ""
	}
	for _, p := range probes {
		if err := d.Check(p); err != nil {
			if v, ok := strings.CutPrefix(err.Error(), "must be "); ok {
				return v
			}
		}
	}
	return ""
}

// Reference lists every broker key, sorted by name.
func Reference() []KeyDoc {
	var out []KeyDoc
	for _, d := range BrokerDefs() {
		k := KeyDoc{Name: d.Name, Type: d.Type.String(), Default: d.Default, Valid: validOf(d), Dynamic: IsDynamicBrokerKey(d.Name), Kafka: d.Name, Doc: d.Doc}
		if n, ok := strataNames[d.Name]; ok {
			k.Kafka = n
		}
		if d.Sensitive {
			k.Default = "(hidden)"
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// IgnoredKafkaKeys lists the Kafka keys accepted with a warning, with why
// they do not apply; RefusedKafkaKeys those refused, with why.
func IgnoredKafkaKeys() [][2]string { return sortedPairs(kafkaIgnored) }

// RefusedKafkaKeys lists the Kafka keys Strata refuses (unless set to the
// value that turns the feature off), with why.
func RefusedKafkaKeys() [][2]string {
	m := map[string]string{}
	for k, r := range kafkaRefused {
		reason := r.reason
		if r.off != "" {
			reason += fmt.Sprintf(" (%s=%s is accepted)", k, r.off)
		}
		m[k] = reason
	}
	return sortedPairs(m)
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// Markdown renders the reference as docs/configuration.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Broker configuration reference\n\n")
	b.WriteString("Generated from the broker's key registry by `make docs` (`strata config list --markdown`);\n")
	b.WriteString("a test fails when this file is stale. Settings come from the defaults, then\n")
	b.WriteString("`--config` (a Kafka-style properties file), then `STRATA_<KEY>` environment\n")
	b.WriteString("variables (dots as underscores, upper case), then flags (`--set key=value`).\n")
	b.WriteString("Dynamic keys can be changed at run time with IncrementalAlterConfigs\n")
	b.WriteString("(`kafka-configs.sh`, `strata` has no command for it yet) per broker or as the\n")
	b.WriteString("cluster default; topic-level configs are listed by `strata topic describe`.\n\n")
	b.WriteString("| key | type | default | valid values | dynamic | Kafka | description |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, k := range Reference() {
		dyn := ""
		if k.Dynamic {
			dyn = "yes"
		}
		kafka := k.Kafka
		switch {
		case kafka == k.Name:
			kafka = "same"
		case kafka == "":
			kafka = "-"
		}
		def := "(empty)"
		if k.Default != "" {
			def = "`" + cell(k.Default) + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", k.Name, k.Type, def, cell(k.Valid), dyn, cell(kafka), cell(k.Doc))
	}
	b.WriteString("\n## Kafka keys accepted and ignored\n\n")
	b.WriteString("A stock Kafka `server.properties` sets these; they mean nothing in Strata.\n")
	b.WriteString("The broker accepts them and names them in one WARN line at start.\n\n")
	b.WriteString("| key | why it does not apply |\n| --- | --- |\n")
	for _, p := range IgnoredKafkaKeys() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", p[0], cell(p[1]))
	}
	b.WriteString("\n## Kafka keys refused\n\n")
	b.WriteString("Setting these would ask for behaviour Strata does not have, so the broker\n")
	b.WriteString("refuses to start rather than silently differ.\n\n")
	b.WriteString("| key | why |\n| --- | --- |\n")
	for _, p := range RefusedKafkaKeys() {
		fmt.Fprintf(&b, "| `%s` | %s |\n", p[0], cell(p[1]))
	}
	return b.String()
}
