package cluster

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReassignThrottled: KIP-73 replication throttles on a reassignment. A
// partition on 1,2,3 (1 leading) holds about 20 MB; it is reassigned to
// 1,2,3,4 with a throttle of 2 MB/s: on the follower side
// (follower.replication.throttled.replicas=0:4, the rate on broker 4), or
// on the leader side (leader.replication.throttled.replicas=0:1, the rate
// on broker 1), or both as `strata cluster reassign --execute --throttle`
// sets them (and --verify removes them once done). Broker 4 must take at
// least 70% of bytes/rate to catch up (a throttle that does not throttle
// fails), and the reassignment must complete (a throttled replica still
// progresses).
func TestReassignThrottled(t *testing.T) {
	t.Run("follower", func(t *testing.T) {
		reassignThrottled(t, "follower.replication.throttled.replicas", "0:4", "follower.replication.throttled.rate", 4)
	})
	t.Run("leader", func(t *testing.T) {
		reassignThrottled(t, "leader.replication.throttled.replicas", "0:1", "leader.replication.throttled.rate", 1)
	})
	t.Run("cli", func(t *testing.T) {
		reassignThrottled(t, "", "", "", 0)
	})
}

// reassignThrottled runs one case; an empty replicasKey has the CLI set
// the throttles.
func reassignThrottled(t *testing.T, replicasKey, replicas, rateKey string, rateOn int32) {
	const (
		topic = "throttled"
		rate  = 2 << 20
		value = 10 << 10
		count = 2000 // 20 MB
	)
	// Two windows of a second: the throttle's initial burst is about a
	// second's worth plus one fetch.
	c := newRolesCluster(t, 3, 1, "", "--set", "replication.quota.window.num=2")
	ctx := ctxT(t, 3*time.Minute)
	c.waitBrokers(ctx, 4)
	cl := c.client()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2, 3}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	if replicasKey != "" {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = replicasKey, kmsg.StringPtr(replicas)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl) // an admin request: the client learns the controller
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create on 1,2,3: %v %+v", err, resp)
	}
	adm := kadm.NewClient(cl)
	c.waitFullISR(topic, 1, 30*time.Second)

	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	defer prod.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < count; i++ {
		v := make([]byte, value) // random: the producer compresses
		for j := range v {
			v[j] = byte(rng.Uint32())
		}
		prod.Produce(ctx, &kgo.Record{Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	bytes := logBytes(t, c.node(1).dir, topic)
	t.Logf("%d bytes in the partition", bytes)

	if replicasKey == "" {
		cliThrottled(t, c, ctx, adm, topic, bytes, rate)
		return
	}
	res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: rateKey, Value: kadm.StringPtr("2097152")}}, rateOn)
	if err != nil || res[0].Err != nil {
		t.Fatalf("set %s on %d: %v %v", rateKey, rateOn, err, res)
	}
	waitFor(t, "the broker to see its rate", 10*time.Second, func() bool {
		rc, err := adm.DescribeBrokerConfigs(ctx, rateOn)
		if err != nil || len(rc) != 1 || rc[0].Err != nil {
			return false
		}
		for _, c := range rc[0].Configs {
			if c.Key == rateKey {
				return c.MaybeValue() == "2097152"
			}
		}
		return false
	})
	time.Sleep(200 * time.Millisecond) // the replication manager applies the image after the broker's view

	var areq kadm.AlterPartitionAssignmentsReq
	areq.Assign(topic, 0, []int32{1, 2, 3, 4})
	start := time.Now()
	ares, err := adm.AlterPartitionAssignments(ctx, areq)
	if err != nil || ares.Error() != nil {
		t.Fatalf("reassign: %v %v", err, ares.Error())
	}
	set := kadm.TopicsSet{}
	set.Add(topic, 0)
	waitFor(t, "the throttled reassignment to complete", 120*time.Second, func() bool {
		lr, err := adm.ListPartitionReassignments(ctx, set)
		if err != nil {
			return false
		}
		if _, ok := lr[topic][0]; ok {
			return false
		}
		_, isr, replicas := c.partitionState(topic, 0)
		return slices.Contains(isr, 4) && len(replicas) == 4
	})
	took := time.Since(start)
	lower := time.Duration(float64(bytes) / rate * 0.7 * float64(time.Second))
	t.Logf("broker 4 caught up with %d bytes in %v at a throttle of %d B/s (%.2f MB/s achieved; at least %v expected)",
		bytes, took, rate, float64(bytes)/took.Seconds()/(1<<20), lower)
	if took < lower {
		t.Fatalf("catch-up took %v, less than %v: the throttle did not throttle", took, lower)
	}
	if got := logBytes(t, c.node(4).dir, topic); got != bytes {
		t.Fatalf("broker 4 holds %d bytes, the leader %d", got, bytes)
	}
}

// cliThrottled reassigns with `strata cluster reassign --execute
// --throttle`, waits with --verify until it exits 0, and checks the time
// taken and that the throttles are gone.
func cliThrottled(t *testing.T, c *testCluster, ctx context.Context, adm *kadm.Client, topic string, bytes int64, rate int) {
	plan := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(plan, []byte(`{"version":1,"partitions":[{"topic":"`+topic+`","partition":0,"replicas":[1,2,3,4]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := runCLI(t, c, "cluster", "reassign", "--execute", "--plan", plan, "--throttle", strconv.Itoa(rate))
	t.Logf("execute:\n%s", out)
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil || rcs[0].Err != nil {
		t.Fatal(err, rcs)
	}
	want := map[string]string{"leader.replication.throttled.replicas": "0:1,0:2,0:3", "follower.replication.throttled.replicas": "0:4"}
	for _, cfg := range rcs[0].Configs {
		if w, ok := want[cfg.Key]; ok && cfg.MaybeValue() != w {
			t.Errorf("%s = %q, want %q", cfg.Key, cfg.MaybeValue(), w)
		}
	}
	var verify string
	waitFor(t, "cluster reassign --verify to exit 0", 120*time.Second, func() bool {
		cmd := exec.Command(c.nodes[0].bin, "cluster", "reassign", "--verify", "--plan", plan, "--brokers", strings.Join(c.seeds(), ","))
		o, err := cmd.CombinedOutput()
		verify = string(o)
		return err == nil
	})
	took := time.Since(start)
	lower := time.Duration(float64(bytes) / float64(rate) * 0.7 * float64(time.Second))
	t.Logf("verify:\n%s\nbroker 4 caught up with %d bytes in %v at a throttle of %d B/s (%.2f MB/s; at least %v expected)",
		verify, bytes, took, rate, float64(bytes)/took.Seconds()/(1<<20), lower)
	if took < lower {
		t.Fatalf("catch-up took %v, less than %v: the throttle did not throttle", took, lower)
	}
	if !strings.Contains(verify, "throttles removed") {
		t.Errorf("verify did not remove the throttles")
	}
	for _, id := range []int32{1, 2, 3, 4} {
		brc, err := adm.DescribeBrokerConfigs(ctx, id)
		if err != nil || brc[0].Err != nil {
			t.Fatal(err, brc)
		}
		for _, cfg := range brc[0].Configs {
			if strings.HasSuffix(cfg.Key, ".replication.throttled.rate") && cfg.Source != kmsg.ConfigSourceDefaultConfig {
				t.Errorf("broker %d: %s = %q from %v after verify", id, cfg.Key, cfg.MaybeValue(), cfg.Source)
			}
		}
	}
	rcs, err = adm.DescribeTopicConfigs(ctx, topic)
	if err != nil || rcs[0].Err != nil {
		t.Fatal(err, rcs)
	}
	for _, cfg := range rcs[0].Configs {
		if strings.HasSuffix(cfg.Key, ".replication.throttled.replicas") && cfg.MaybeValue() != "" {
			t.Errorf("%s = %q after verify", cfg.Key, cfg.MaybeValue())
		}
	}
}

// logBytes sums the sizes of a node's segment files of partition 0.
func logBytes(t *testing.T, dir, topic string) int64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "data", topic+"-0", "*.log"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments of %s on %s: %v %v", topic, dir, segs, err)
	}
	var n int64
	for _, s := range segs {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
