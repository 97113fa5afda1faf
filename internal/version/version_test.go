package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestLinkerValuesWin(t *testing.T) {
	read := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-2026"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-01-01T00:00:00Z"}}}, true
	}
	got := get("v1.2.0", "feedface", "2026-12-03T00:00:00Z", read)
	if got.Version != "v1.2.0" || got.Commit != "feedface" || got.Date != "2026-12-03T00:00:00Z" || got.GoVersion != "go1.26.0" {
		t.Fatalf("with -X values: %+v", got)
	}
	got = get("", "", "", read)
	if got.Version != "v0.0.0-2026" || got.Commit != "0123456789ab" || got.Date != "2026-01-01T00:00:00Z" {
		t.Fatalf("from build info: %+v", got)
	}
}

func TestFallbacks(t *testing.T) {
	got := get("", "", "", func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.modified", Value: "true"}}}, true
	})
	if got.Version != "dev" || got.Commit != "unknown" || got.Date != "unknown" || !got.Modified {
		t.Fatalf("%+v", got)
	}
	if s := got.String(); !strings.HasPrefix(s, "strata dev (commit unknown-dirty, built unknown, go1.26.0, ") {
		t.Fatalf("String() = %q", s)
	}
	if got := get("", "", "", func() (*debug.BuildInfo, bool) { return nil, false }); got.GoVersion == "" || got.Version != "dev" {
		t.Fatalf("without build info: %+v", got)
	}
}
