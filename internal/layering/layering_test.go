package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stratalog/strata/"

// pkg is one package as go list sees it: its direct imports and all its
// dependencies, module-relative (internal/...).
type pkg struct {
	imports, deps []string
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}|{{join .Deps \",\"}}", module+"...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	ours := func(s string) []string {
		var r []string
		for _, p := range strings.Split(s, ",") {
			if rel, ok := strings.CutPrefix(p, module); ok {
				r = append(r, rel)
			}
		}
		return r
	}
	pkgs := map[string]pkg{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			t.Fatalf("go list line %q", line)
		}
		pkgs[strings.TrimPrefix(f[0], module)] = pkg{imports: ours(f[1]), deps: ours(f[2])}
	}
	return pkgs
}

// under reports whether p is dir or a package below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// TestLayering: the composition root (server) and the broker-to-controller
// channel sit above everything else; the metadata loader, the controller's
// write path and the replication layer sit below the broker; the broker
// reaches storage only through the partitions it hosts.
func TestLayering(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	rules := []struct {
		from   string   // a package and those below it
		direct bool     // direct imports only (else every dependency)
		not    []string // may not depend on these (or packages below them)
	}{
		// Nothing depends on the composition root or the command line.
		{"internal", false, []string{"internal/server", "cmd", "internal/cli"}},
		// The channel to the controller is wiring's: only server uses it.
		{"internal/broker", false, []string{"internal/brokerlink"}},
		{"internal/replication", false, []string{"internal/brokerlink", "internal/broker", "internal/controller", "internal/quorum"}},
		{"internal/controller", false, []string{"internal/brokerlink", "internal/broker", "internal/replication", "internal/metadata/loader", "internal/quorum"}},
		{"internal/metadata", false, []string{"internal/storage", "internal/controller", "internal/replication", "internal/broker", "internal/quorum"}},
		{"internal/storage", false, []string{"internal/metadata", "internal/replication", "internal/controller", "internal/broker"}},
		{"internal/quorum", false, []string{"internal/metadata", "internal/controller", "internal/replication", "internal/broker", "internal/storage"}},
		{"internal/brokerlink", true, []string{"internal/storage", "internal/quorum"}},
		// Coordinators are state machines over their logs' seams
		// (DESIGN 7.4): no partitions, network, controller or storage.
		{"internal/coordinator", false, []string{"internal/broker", "internal/brokerlink", "internal/replication", "internal/controller", "internal/storage", "internal/network", "internal/quorum", "internal/metadata"}},
		// The partition owns the partition rules (DESIGN 7.1).
		{"internal/broker", true, []string{"internal/storage", "internal/quorum"}},
	}
	for _, r := range rules {
		for name, p := range pkgs {
			if !under(name, r.from) || (r.from == "internal" && (under(name, "internal/server") || under(name, "internal/cli"))) {
				continue
			}
			deps := p.deps
			if r.direct {
				deps = p.imports
			}
			for _, d := range deps {
				if slices.ContainsFunc(r.not, func(n string) bool { return under(d, n) && !under(name, n) }) {
					how := "depends on"
					if r.direct {
						how = "imports"
					}
					t.Errorf("%s %s %s", name, how, d)
				}
			}
		}
	}
}
