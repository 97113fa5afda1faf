package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func ptr[T any](v T) *T { return &v }

func TestCreateTopicsErrors(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "exists"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "a.b"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       *kerr.Error
	}{
		{"ok", "fresh", 2, 1, nil, nil},
		{"defaults", "defaults", -1, -1, nil, nil},
		{"exists", "exists", 1, 1, nil, kerr.TopicAlreadyExists},
		{"empty name", "", 1, 1, nil, kerr.InvalidTopicException},
		{"bad char", "bad/name", 1, 1, nil, kerr.InvalidTopicException},
		{"dot", ".", 1, 1, nil, kerr.InvalidTopicException},
		{"too long", string(make([]byte, 250)), 1, 1, nil, kerr.InvalidTopicException},
		{"collides", "a_b", 1, 1, nil, kerr.InvalidTopicException},
		{"zero partitions", "zp", 0, 1, nil, kerr.InvalidPartitions},
		{"too many partitions", "many", 100001, 1, nil, kerr.PolicyViolation},
		{"rf above brokers", "rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"rf zero", "rf0", 1, 0, nil, kerr.InvalidReplicationFactor},
		{"unknown config", "uc", 1, 1, map[string]*string{"no.such": ptr("1")}, kerr.InvalidConfig},
		{"bad config value", "bcv", 1, 1, map[string]*string{"retention.ms": ptr("soon")}, kerr.InvalidConfig},
		{"bad enum", "be", 1, 1, map[string]*string{"cleanup.policy": ptr("shred")}, kerr.InvalidConfig},
		{"good config", "gc", 1, 1, map[string]*string{"cleanup.policy": ptr("compact,delete"), "retention.ms": ptr("1000")}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := adm.CreateTopic(ctx, c.partitions, c.rf, c.configs, c.topic)
			if c.want == nil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if resp.ID == [16]byte{} {
					t.Fatal("no topic id")
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// One request may create controller.max.records.per.batch (10,000)
	// partitions over all its topics: more fails whole, saying why.
	res, err := adm.CreateTopics(ctx, 5001, 1, nil, "half1", "half2")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"half1", "half2"} {
		if r := res[name]; !errors.Is(r.Err, kerr.PolicyViolation) || !strings.Contains(r.ErrMessage, "Excessively large number of partitions per request") {
			t.Fatalf("%s, one of two topics of 5,001 partitions in one request: %v (%q), want POLICY_VIOLATION", name, r.Err, r.ErrMessage)
		}
	}
	// validate_only creates nothing.
	if _, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "validated"); err != nil {
		t.Fatal(err)
	}
	td, err := adm.ListTopics(ctx, "validated")
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("validated") && td["validated"].Err == nil {
		t.Fatal("validate_only created the topic")
	}
}

func TestDeleteTopicsByNameAndID(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "byname"); err != nil {
		t.Fatal(err)
	}
	created, err := adm.CreateTopic(ctx, 2, 1, nil, "byid")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopic(ctx, "byname"); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Topics = []kmsg.DeleteTopicsRequestTopic{{TopicID: created.ID}}
	resp, err := req.RequestWith(ctx, n.client())
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Topics[0].ErrorCode; c != 0 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "byid" {
		t.Fatalf("delete by id: code %d topic %v", c, resp.Topics[0].Topic)
	}
	// Unknown name and id.
	res, err := adm.DeleteTopics(ctx, "byname")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res["byname"].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("deleting twice: %v", res["byname"].Err)
	}
	resp, err = req.RequestWith(ctx, n.client())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicID.Code {
		t.Fatalf("unknown id: code %d", resp.Topics[0].ErrorCode)
	}
	// Gone after a restart too, and the name is reusable.
	n.restart()
	td, err := n.admin().ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if td.Has("byname") || td.Has("byid") {
		t.Fatalf("deleted topics back after restart: %v", td.Names())
	}
	if _, err := n.admin().CreateTopic(ctx, 1, 1, nil, "byname"); err != nil {
		t.Fatal(err)
	}
}

func TestCreatePartitions(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "grow"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		topic string
		total int
		want  *kerr.Error
	}{
		{"grow", "grow", 5, nil},
		{"same count", "grow", 5, kerr.InvalidPartitions},
		{"shrink", "grow", 3, kerr.InvalidPartitions},
		{"unknown", "nope", 3, kerr.UnknownTopicOrPartition},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := adm.UpdatePartitions(ctx, c.total, c.topic)
			if err != nil {
				t.Fatal(err)
			}
			if got := res[c.topic].Err; !errors.Is(got, c.want) && !(c.want == nil && got == nil) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	td, err := adm.ListTopics(ctx, "grow")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(td["grow"].Partitions); got != 5 {
		t.Fatalf("%d partitions, want 5", got)
	}
	// The new partitions take writes.
	cl := n.client()
	for p := int32(0); p < 5; p++ {
		if err := cl.ProduceSync(ctx, recordTo("grow", p, "v")).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
}

func TestConfigsDescribeAndAlter(t *testing.T) {
	n := startNode(t, "", map[string]string{"log.retention.ms": "3600000"})
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": ptr("1000")}, "cfg"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "cfg2"); err != nil {
		t.Fatal(err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "cfg", "cfg2")
	if err != nil {
		t.Fatal(err)
	}
	get := func(rcs kadm.ResourceConfigs, res, key string) kadm.Config {
		t.Helper()
		for _, r := range rcs {
			if r.Name != res {
				continue
			}
			if r.Err != nil {
				t.Fatalf("%s: %v", res, r.Err)
			}
			for _, c := range r.Configs {
				if c.Key == key {
					return c
				}
			}
		}
		t.Fatalf("%s: no config %s", res, key)
		return kadm.Config{}
	}
	if c := get(rc, "cfg", "retention.ms"); c.MaybeValue() != "1000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("cfg retention.ms = %q from %v", c.MaybeValue(), c.Source)
	}
	if c := get(rc, "cfg2", "retention.ms"); c.MaybeValue() != "3600000" || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Fatalf("cfg2 retention.ms = %q from %v, want the static broker value", c.MaybeValue(), c.Source)
	}
	if c := get(rc, "cfg2", "segment.bytes"); c.MaybeValue() != "1073741824" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("cfg2 segment.bytes = %q from %v", c.MaybeValue(), c.Source)
	}

	// Incremental: set, append to a list, delete; bad values rejected.
	alter := []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: ptr("2000000")},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: ptr("compact")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}
	if _, err := adm.AlterTopicConfigs(ctx, alter, "cfg"); err != nil {
		t.Fatal(err)
	}
	rc, err = adm.DescribeTopicConfigs(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c := get(rc, "cfg", "max.message.bytes"); c.MaybeValue() != "2000000" {
		t.Fatalf("max.message.bytes = %q", c.MaybeValue())
	}
	if c := get(rc, "cfg", "cleanup.policy"); c.MaybeValue() != "delete,compact" {
		t.Fatalf("cleanup.policy = %q", c.MaybeValue())
	}
	if c := get(rc, "cfg", "retention.ms"); c.MaybeValue() != "3600000" {
		t.Fatalf("retention.ms after delete = %q", c.MaybeValue())
	}
	for _, bad := range []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: ptr("x")},
		{Op: kadm.SetConfig, Name: "no.such.key", Value: ptr("1")},
		{Op: kadm.AppendConfig, Name: "retention.ms", Value: ptr("1")},
	} {
		res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{bad}, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(res[0].Err, kerr.InvalidConfig) {
			t.Fatalf("%s=%v: got %v, want INVALID_CONFIG", bad.Name, bad.Value, res[0].Err)
		}
	}
	res, err := adm.AlterTopicConfigs(ctx, alter[:1], "missing")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("alter unknown topic: %v", res[0].Err)
	}

	// Broker: dynamic cluster default applies to topics without overrides;
	// static keys are read-only.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: ptr("7200000")}}); err != nil {
		t.Fatal(err)
	}
	rc, err = adm.DescribeTopicConfigs(ctx, "cfg2")
	if err != nil {
		t.Fatal(err)
	}
	if c := get(rc, "cfg2", "retention.ms"); c.MaybeValue() != "7200000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("cfg2 retention.ms = %q from %v after the cluster default changed", c.MaybeValue(), c.Source)
	}
	bres, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "data.dir", Value: ptr("/tmp")}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(bres[0].Err, kerr.InvalidConfig) {
		t.Fatalf("altering a static broker key: %v", bres[0].Err)
	}
	brc, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := get(brc, "1", "log.retention.ms"); c.MaybeValue() != "7200000" || c.Source != kmsg.ConfigSourceDynamicDefaultBrokerConfig {
		t.Fatalf("broker log.retention.ms = %q from %v, want the dynamic cluster default", c.MaybeValue(), c.Source)
	}
	if c := get(brc, "1", "data.dir"); c.MaybeValue() != n.dir || c.Source != kmsg.ConfigSourceStaticBrokerConfig {
		t.Fatalf("broker data.dir = %q from %v", c.MaybeValue(), c.Source)
	}

	// Configs survive restart.
	n.restart()
	rc, err = n.admin().DescribeTopicConfigs(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	if c := get(rc, "cfg", "max.message.bytes"); c.MaybeValue() != "2000000" {
		t.Fatalf("after restart max.message.bytes = %q", c.MaybeValue())
	}
}

// TestReplicationThrottleConfigs: the KIP-73 keys through AlterConfigs and
// DescribeConfigs, and the rates reaching the replication manager.
func TestReplicationThrottleConfigs(t *testing.T) {
	n := startNode(t, "", nil)
	ctx := ctxT(t)
	adm := n.admin()
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "thr"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value string
		ok    bool
	}{{"0:1,1:1", true}, {"*", true}, {"", true}, {"0-1", false}, {"*,0:1", false}, {",0:1", false}} {
		res, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "follower.replication.throttled.replicas", Value: ptr(tc.value)}}, "thr")
		if err != nil {
			t.Fatal(err)
		}
		if (res[0].Err == nil) != tc.ok || (!tc.ok && !errors.Is(res[0].Err, kerr.InvalidConfig)) {
			t.Fatalf("follower.replication.throttled.replicas=%q: %v, want ok=%v", tc.value, res[0].Err, tc.ok)
		}
	}
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "leader.replication.throttled.replicas", Value: ptr("0:1")}}, "thr"); err != nil {
		t.Fatal(err)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "thr")
	if err != nil || rc[0].Err != nil {
		t.Fatal(err, rc)
	}
	found := 0
	for _, c := range rc[0].Configs {
		switch c.Key {
		case "leader.replication.throttled.replicas":
			found++
			if c.MaybeValue() != "0:1" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
				t.Errorf("%s = %q from %v", c.Key, c.MaybeValue(), c.Source)
			}
		case "follower.replication.throttled.replicas":
			found++
			if c.MaybeValue() != "" {
				t.Errorf("%s = %q", c.Key, c.MaybeValue())
			}
		}
	}
	if found != 2 {
		t.Fatalf("throttled-replica keys described %d times", found)
	}

	// The rates are dynamic, per broker and cluster-wide.
	if _, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "follower.replication.throttled.rate", Value: ptr("2000000")}}); err != nil {
		t.Fatal(err)
	}
	res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "leader.replication.throttled.rate", Value: ptr("1000000")}}, 1)
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	res, err = adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "leader.replication.throttled.rate", Value: ptr("-5")}}, 1)
	if err != nil || !errors.Is(res[0].Err, kerr.InvalidConfig) {
		t.Fatalf("negative rate: %v %v", err, res)
	}
	waitFor(t, ctx, "the manager to take the rates", func() bool {
		l, f := n.srv.parts.ThrottleRates()
		return l == 1000000 && f == 2000000
	})
	brc, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil || brc[0].Err != nil {
		t.Fatal(err, brc)
	}
	for _, c := range brc[0].Configs {
		if c.Key == "leader.replication.throttled.rate" && (c.MaybeValue() != "1000000" || c.Source != kmsg.ConfigSourceDynamicBrokerConfig) {
			t.Fatalf("%s = %q from %v", c.Key, c.MaybeValue(), c.Source)
		}
	}
}
