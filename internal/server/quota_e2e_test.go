package server

import (
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

func str(s string) *string { return &s }

// throttleSeen counts the throttle times a franz-go client is told.
type throttleSeen struct{ n atomic.Int64 }

func (s *throttleSeen) OnBrokerThrottle(kgo.BrokerMetadata, time.Duration, bool) { s.n.Add(1) }

// TestProducerThrottled: a producer over its producer_byte_rate (set with
// kadm, on its client id) is told throttle times, and the throttles show
// in the metrics. (The rate it is held to is measured in the broker
// package's TestProducerHeldToQuota, on a clock that moves by the
// throttle times only.)
func TestProducerThrottled(t *testing.T) {
	n := startNode(t, "", map[string]string{"quota.window.num": "2", "quota.window.size.seconds": "1"})
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "quota"); err != nil {
		t.Fatal(err)
	}
	res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: str("quota-producer")}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 100 << 10}},
	}})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("AlterClientQuotas: %+v, %v", res, err)
	}
	seen := &throttleSeen{}
	p := n.client(kgo.ClientID("quota-producer"), kgo.WithHooks(seen), kgo.DefaultProduceTopic("quota"), kgo.ProducerLinger(0))
	payload := make([]byte, 40<<10)
	_, _ = rand.Read(payload)
	for i := 0; seen.n.Load() == 0; i++ {
		if i == 100 {
			t.Fatal("100 requests of 40 kB at 100 kB/s, never throttled")
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: payload}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := n.scrape().get("strata_client_throttle_time_seconds", "quota", "produce"); !ok || c < 1 {
		t.Fatalf("produce throttles in the metrics: %v %v", c, ok)
	}
}

// TestClientQuotasRoundTrip: kadm's AlterClientQuotas and
// DescribeClientQuotas, validate_only, Kafka's errors, and the quotas
// surviving a restart (they are metadata records, replayed).
func TestClientQuotasRoundTrip(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	alice := kadm.ClientQuotaEntity{{Type: "user", Name: str("alice")}}
	aliceDefault := kadm.ClientQuotaEntity{{Type: "user", Name: str("alice")}, {Type: "client-id"}}
	defClient := kadm.ClientQuotaEntity{{Type: "client-id"}}
	entries := []kadm.AlterClientQuotaEntry{
		{Entity: alice, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1048576}, {Key: "consumer_byte_rate", Value: 2097152}}},
		{Entity: aliceDefault, Ops: []kadm.AlterClientQuotaOp{{Key: "request_percentage", Value: 25.5}}},
		{Entity: defClient, Ops: []kadm.AlterClientQuotaOp{{Key: "controller_mutation_rate", Value: 10}}},
	}
	// validate_only stores nothing.
	if res, err := adm.ValidateAlterClientQuotas(ctx, entries); err != nil || len(res) != 3 || res[0].Err != nil || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("validate: %+v, %v", res, err)
	}
	if d, err := adm.DescribeClientQuotas(ctx, false, nil); err != nil || len(d) != 0 {
		t.Fatalf("after validate_only: %+v, %v", d, err)
	}
	if res, err := adm.AlterClientQuotas(ctx, entries); err != nil || res[0].Err != nil || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("alter: %+v, %v", res, err)
	}
	// Kafka's errors: INVALID_REQUEST for an unknown key or entity type, a
	// fractional byte rate, an empty name.
	bad := []kadm.AlterClientQuotaEntry{
		{Entity: alice, Ops: []kadm.AlterClientQuotaOp{{Key: "nope", Value: 1}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "group", Name: str("g")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: str("bob")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1.5}}},
		{Entity: kadm.ClientQuotaEntity{{Type: "user", Name: str("")}}, Ops: []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1}}},
	}
	res, err := adm.AlterClientQuotas(ctx, bad)
	if err != nil || len(res) != len(bad) {
		t.Fatalf("bad alterations: %+v, %v", res, err)
	}
	for i, r := range res {
		if !errors.Is(r.Err, kerr.InvalidRequest) {
			t.Errorf("bad alteration %d (%v): %v, want INVALID_REQUEST", i, bad[i].Entity, r.Err)
		}
	}
	check := func(when string) {
		t.Helper()
		all, err := adm.DescribeClientQuotas(ctx, false, nil)
		if err != nil || len(all) != 3 {
			t.Fatalf("%s: all quotas %+v, %v", when, all, err)
		}
		// Exact user alice, not strict: alice and alice's default client.
		d, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: str("alice"), MatchType: 0}})
		if err != nil || len(d) != 2 {
			t.Fatalf("%s: user=alice %+v, %v", when, d, err)
		}
		// Strict: alice alone, with both her keys.
		d, err = adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "user", MatchName: str("alice"), MatchType: 0}})
		if err != nil || len(d) != 1 || len(d[0].Values) != 2 {
			t.Fatalf("%s: strict user=alice %+v, %v", when, d, err)
		}
		vals := map[string]float64{}
		for _, v := range d[0].Values {
			vals[v.Key] = v.Value
		}
		if vals["producer_byte_rate"] != 1048576 || vals["consumer_byte_rate"] != 2097152 {
			t.Fatalf("%s: alice's values %+v", when, vals)
		}
		// The default client id, strict.
		d, err = adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 1}})
		if err != nil || len(d) != 1 || d[0].Values[0].Key != "controller_mutation_rate" || d[0].Values[0].Value != 10 || d[0].Entity[0].Name != nil {
			t.Fatalf("%s: default client %+v, %v", when, d, err)
		}
		// Any client id, with any user: alice's default client and the
		// default client.
		d, err = adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchType: 2}})
		if err != nil || len(d) != 2 {
			t.Fatalf("%s: any client %+v, %v", when, d, err)
		}
	}
	check("before restart")
	n.restart()
	adm = n.admin()
	check("after restart")

	// A filter Kafka refuses.
	raw := kmsg.NewPtrDescribeClientQuotasRequest()
	raw.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "user", MatchType: 0}}
	resp, err := raw.RequestWith(ctx, n.client())
	if err != nil || resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("exact match without a name: %+v, %v", resp, err)
	}
	// Removing the keys removes the entity.
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: defClient, Ops: []kadm.AlterClientQuotaOp{{Key: "controller_mutation_rate", Remove: true}}}}); err != nil || res[0].Err != nil {
		t.Fatalf("remove: %+v, %v", res, err)
	}
	if all, err := adm.DescribeClientQuotas(ctx, false, nil); err != nil || len(all) != 2 {
		t.Fatalf("after remove: %+v, %v", all, err)
	}
}

// TestControllerMutationQuota: with a controller_mutation_rate, CreateTopics
// v6+ refuses topics once the quota is spent with
// THROTTLING_QUOTA_EXCEEDED and a throttle time (KIP-599).
func TestControllerMutationQuota(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	// A bucket of 10 windows of 1 partition/s: 10 partitions of burst.
	if res, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: str("creator")}},
		Ops: []kadm.AlterClientQuotaOp{{Key: "controller_mutation_rate", Value: 1}}}}); err != nil || res[0].Err != nil {
		t.Fatalf("alter: %+v, %v", res, err)
	}
	creator := kadm.NewClient(n.client(kgo.ClientID("creator")))
	// 8 partitions: allowed, the bucket keeps 2. Then 8 more: allowed
	// (the bucket is not in debt yet) and now 6 in debt. Then refused.
	for i, name := range []string{"m1", "m2"} {
		r, err := creator.CreateTopic(ctx, 8, 1, nil, name)
		if err != nil || r.Err != nil {
			t.Fatalf("topic %d: %+v, %v", i, r, err)
		}
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "m3", 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(ctx, n.client(kgo.ClientID("creator")))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.ThrottlingQuotaExceeded.Code || resp.ThrottleMillis < 5000 {
		t.Fatalf("third creation: %+v (throttle %d ms); want THROTTLING_QUOTA_EXCEEDED and about 6 s of throttle", resp.Topics, resp.ThrottleMillis)
	}
	if td, err := adm.ListTopics(ctx); err != nil || td.Has("m3") {
		t.Fatal("a refused topic was created")
	}
	// Version 5 (before KIP-599) is never refused, only throttled.
	resp, err = req.RequestWith(ctx, n.client(kgo.ClientID("creator"), kgo.MaxVersions(kversion.V2_6_0())))
	if err != nil || resp.Topics[0].ErrorCode != 0 || resp.ThrottleMillis <= 0 {
		t.Fatalf("v5 creation: %+v, %v", resp, err)
	}
}
