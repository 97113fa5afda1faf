package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var dashboardPath = filepath.Join("..", "..", "deploy", "grafana", "strata.json")

// queries walks the dashboard JSON and returns every PromQL expression
// (panel targets' expr) and every templating query (label_values(...)).
func queries(v any, out *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
				*out = append(*out, s)
				continue
			}
			queries(x, out)
		}
	case []any:
		for _, x := range v {
			queries(x, out)
		}
	}
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// promWords are PromQL's keywords and the functions the dashboard
	// may use; an identifier followed by "(" is a function anyway.
	promWords = map[string]bool{"sum": true, "max": true, "min": true, "avg": true, "count": true, "by": true, "without": true,
		"rate": true, "irate": true, "increase": true, "histogram_quantile": true, "label_values": true, "and": true, "or": true,
		"unless": true, "offset": true, "bool": true, "le": true, "topk": true, "bottomk": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true}
)

// metricNames returns the metric names a PromQL expression reads.
func metricNames(expr string) []string {
	e := promStrings.ReplaceAllString(expr, `""`)
	e = promMatchers.ReplaceAllString(e, " ")
	e = promRanges.ReplaceAllString(e, " ")
	e = promGrouping.ReplaceAllString(e, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(e, -1) {
		name := e[loc[0]:loc[1]]
		rest := strings.TrimSpace(e[loc[1]:])
		if promWords[name] || strings.HasPrefix(rest, "(") {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.' || e[loc[0]-1] == '$') {
			continue // part of a number (1e3) or a Grafana variable
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesParser(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (le, api) (rate(strata_request_duration_seconds_bucket{stage="total",x=~"a|b"}[$__rate_interval]))) / on (instance) group_left go_goroutines`)
	if strings.Join(got, ",") != "strata_request_duration_seconds_bucket,go_goroutines" {
		t.Fatalf("metricNames = %v", got)
	}
	if got := metricNames(`label_values(strata_build_info, instance)`); strings.Join(got, ",") != "strata_build_info,instance" {
		t.Fatalf("label_values: %v", got)
	}
}

// TestDashboardQueriesNameExportedMetrics: every query of the Grafana
// dashboard reads at least one metric, and only metrics the broker
// exports.
func TestDashboardQueriesNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var qs []string
	queries(dash, &qs)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found in %s", len(qs), dashboardPath)
	}
	exported := exportedNames(t)
	for _, q := range qs {
		names := metricNames(q)
		if strings.HasPrefix(q, "label_values(") {
			names = names[:1] // label_values(metric, label)
		}
		if len(names) == 0 {
			t.Errorf("query reads no metric: %s", q)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("query names %s, which the broker does not export: %s", n, q)
			}
		}
	}
}
