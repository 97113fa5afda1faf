package broker

import (
	"sort"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/quota"
)

// TestDescribeClientQuotasFilters checks DescribeClientQuotas' filter
// rules (KIP-546, Kafka's ClientQuotasImage) over a fixed set of quotas.
func TestDescribeClientQuotasFilters(t *testing.T) {
	b := newTestBroker(t)
	name := func(s string) *string { return &s }
	ents := [][]quota.EntityPart{
		{{Type: "user", Name: name("alice")}},
		{{Type: "user", Name: name("alice")}, {Type: "client-id", Name: nil}},
		{{Type: "user", Name: name("alice")}, {Type: "client-id", Name: name("app")}},
		{{Type: "user", Name: nil}},
		{{Type: "client-id", Name: name("app")}},
		{{Type: "client-id", Name: nil}},
	}
	var alts []controller.QuotaAlteration
	for _, e := range ents {
		alts = append(alts, controller.QuotaAlteration{Entity: e, Ops: []controller.QuotaOp{{Key: quota.ProducerByteRate, Value: 1}}})
	}
	for i, err := range b.opts.Controller.AlterClientQuotas(alts, false) {
		if err != nil {
			t.Fatalf("entity %d: %v", i, err)
		}
	}
	comp := func(typ string, match int8, m *string) kmsg.DescribeClientQuotasRequestComponent {
		return kmsg.DescribeClientQuotasRequestComponent{EntityType: typ, MatchType: kmsg.QuotasMatchType(match), Match: m}
	}
	for _, c := range []struct {
		name   string
		comps  []kmsg.DescribeClientQuotasRequestComponent
		strict bool
		want   string // entities, sorted, ";"-separated; or an error name
	}{
		{"all", nil, false, "client-id=<default>;client-id=app;user=<default>;user=alice;user=alice,client-id=<default>;user=alice,client-id=app"},
		{"strict nothing", nil, true, ""},
		{"user alice", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, name("alice"))}, false,
			"user=alice;user=alice,client-id=<default>;user=alice,client-id=app"},
		{"user alice strict", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, name("alice"))}, true, "user=alice"},
		{"default user", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 1, nil)}, false, "user=<default>"},
		{"any client of alice", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, name("alice")), comp("client-id", 2, nil)}, true,
			"user=alice,client-id=<default>;user=alice,client-id=app"},
		{"client app", []kmsg.DescribeClientQuotasRequestComponent{comp("client-id", 0, name("app"))}, false, "client-id=app;user=alice,client-id=app"},
		{"ip", []kmsg.DescribeClientQuotasRequestComponent{comp("ip", 2, nil)}, false, ""},
		{"exact without a name", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 0, nil)}, false, "INVALID_REQUEST"},
		{"default with a name", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 1, name("x"))}, false, "INVALID_REQUEST"},
		{"specified with a name", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 2, name("x"))}, false, "INVALID_REQUEST"},
		{"twice", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 2, nil), comp("user", 1, nil)}, false, "INVALID_REQUEST"},
		{"empty type", []kmsg.DescribeClientQuotasRequestComponent{comp("", 2, nil)}, false, "INVALID_REQUEST"},
		{"bad match type", []kmsg.DescribeClientQuotasRequestComponent{comp("user", 7, nil)}, false, "INVALID_REQUEST"},
		{"ip with user", []kmsg.DescribeClientQuotasRequestComponent{comp("ip", 2, nil), comp("user", 2, nil)}, false, "INVALID_REQUEST"},
		{"unknown type", []kmsg.DescribeClientQuotasRequestComponent{comp("group", 2, nil)}, false, "UNSUPPORTED_VERSION"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := v(kmsg.NewPtrDescribeClientQuotasRequest(), 1)
			req.Components, req.Strict = c.comps, c.strict
			resp, err := serveAs(t, b, aliceConn(), req)
			if err != nil {
				t.Fatal(err)
			}
			dr := resp.(*kmsg.DescribeClientQuotasResponse)
			var got string
			if dr.ErrorCode != 0 {
				got = kerr.ErrorForCode(dr.ErrorCode).(*kerr.Error).Message
				if dr.ErrorMessage == nil || *dr.ErrorMessage == "" {
					t.Error("an error without a message")
				}
			} else {
				var es []string
				for _, e := range dr.Entries {
					var parts []string
					for _, p := range e.Entity {
						n := "<default>"
						if p.Name != nil {
							n = *p.Name
						}
						parts = append(parts, p.Type+"="+n)
					}
					es = append(es, strings.Join(parts, ","))
				}
				sort.Strings(es)
				got = strings.Join(es, ";")
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}
