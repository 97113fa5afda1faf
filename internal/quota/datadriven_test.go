package quota

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/ against a Manager on a fake
// clock that only moves with tick.
//
//	new [samples=N] [size=MS] [csamples=N] [csize=MS]   (a fresh manager at t=0)
//	set user=U|<default> client=C|<default> key=value...   (an entity's quotas)
//	clear                                                 (no quotas)
//	tick ms=N                                             (advance the clock)
//	lookup type=T user=U client=C                         (the quota that applies)
//	record type=produce|fetch user=U client=C bytes=N...  (one record per value; prints throttle ms)
//	unrecord type=T user=U client=C bytes=N
//	request user=U client=C ms=N                          (throttle before, then N ms of handler time)
//	mutation user=U client=C strict permits=N...          (one request: each record's outcome, then its throttle)
//	rates                                                 (the measurements kept)
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := &harness{}
		h.reset(Options{})
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return h.run(t, td)
		})
	})
}

type harness struct {
	now    time.Time
	m      *Manager
	quotas map[Entity]map[string]float64
}

func (h *harness) reset(o Options) {
	h.now = time.Unix(1_000_000, 0)
	o.Now = func() time.Time { return h.now }
	h.m = NewManager(o)
	h.quotas = map[Entity]map[string]float64{}
}

func component(s string) Component {
	switch s {
	case "":
		return Component{}
	case "<default>":
		return Default
	}
	return Named(s)
}

func parseType(s string) Type {
	for t := range numTypes {
		if t.String() == s {
			return t
		}
	}
	panic("unknown type " + s)
}

func (h *harness) run(t *testing.T, td *datadriven.TestData) string {
	args := map[string][]string{}
	for _, a := range td.CmdArgs {
		args[a.Key] = a.Vals
	}
	str := func(k string) string {
		if v := args[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	num := func(k string) float64 {
		f, err := strconv.ParseFloat(str(k), 64)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", td.Pos, k, str(k), err)
		}
		return f
	}
	nums := func(k string) []float64 {
		var out []float64
		for _, v := range args[k] {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", td.Pos, k, err)
			}
			out = append(out, f)
		}
		return out
	}
	var b strings.Builder
	switch td.Cmd {
	case "new":
		o := Options{}
		if _, ok := args["samples"]; ok {
			o.Window.Samples = int(num("samples"))
		}
		if _, ok := args["size"]; ok {
			o.Window.Size = time.Duration(num("size")) * time.Millisecond
		}
		if _, ok := args["csamples"]; ok {
			o.ControllerWindow.Samples = int(num("csamples"))
		}
		if _, ok := args["csize"]; ok {
			o.ControllerWindow.Size = time.Duration(num("csize")) * time.Millisecond
		}
		h.reset(o)
		return "ok"
	case "set":
		e := Entity{User: component(str("user")), ClientID: component(str("client"))}
		vals := map[string]float64{}
		for _, a := range td.CmdArgs {
			if a.Key == "user" || a.Key == "client" {
				continue
			}
			f, err := strconv.ParseFloat(a.Vals[0], 64)
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateValue(a.Key, f); err != nil {
				return "error: " + err.Error()
			}
			vals[a.Key] = f
		}
		next := map[Entity]map[string]float64{}
		for k, v := range h.quotas {
			next[k] = v
		}
		next[e] = vals
		h.quotas = next
		h.m.Set(next)
		return "ok"
	case "clear":
		h.quotas = map[Entity]map[string]float64{}
		h.m.Set(h.quotas)
		return "ok"
	case "tick":
		h.now = h.now.Add(time.Duration(num("ms")) * time.Millisecond)
		return "ok"
	case "lookup":
		q, on, ok := h.m.Lookup(parseType(str("type")), str("user"), str("client"))
		if !ok {
			return "none"
		}
		return fmt.Sprintf("%v on %s", q, on)
	case "record":
		typ := parseType(str("type"))
		for _, v := range nums("bytes") {
			fmt.Fprintf(&b, "%v: throttle %dms\n", v, h.m.Record(typ, str("user"), str("client"), v).Milliseconds())
		}
		return b.String()
	case "unrecord":
		h.m.Unrecord(parseType(str("type")), str("user"), str("client"), num("bytes"))
		return "ok"
	case "request":
		th := h.m.RequestThrottle(str("user"), str("client"))
		h.m.RecordRequestTime(str("user"), str("client"), time.Duration(num("ms"))*time.Millisecond)
		return fmt.Sprintf("throttle %dms", th.Milliseconds())
	case "mutation":
		_, strict := args["strict"]
		q := h.m.Mutation(str("user"), str("client"), strict)
		if q == nil {
			return "no quota"
		}
		for _, p := range nums("permits") {
			if err := q.Record(p); err != nil {
				fmt.Fprintf(&b, "%v: %v\n", p, err)
			} else {
				fmt.Fprintf(&b, "%v: ok\n", p)
			}
		}
		fmt.Fprintf(&b, "throttle %dms\n", q.Throttle().Milliseconds())
		return b.String()
	case "rates":
		h.m.mu.Lock()
		defer h.m.mu.Unlock()
		var lines []string
		for k := range h.m.rates {
			lines = append(lines, fmt.Sprintf("%s user=%q client=%q", k.t, k.user, k.clientID))
		}
		sort.Strings(lines)
		if len(lines) == 0 {
			return "none"
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("%s: unknown command %s", td.Pos, td.Cmd)
	return ""
}
