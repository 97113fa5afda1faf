package cli

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The replication commands (health, elect-leaders, reassign) need several
// brokers, so beyond the single-node startBroker cluster they run against
// a kfake cluster of three (node ids 0, 1, 2; leaders chosen at random, so
// golden output here never shows who leads).

// newKfake starts a kfake cluster of n brokers and returns its first
// address.
func newKfake(t *testing.T, n int, opts ...kfake.Opt) (*kfake.Cluster, string) {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(n), kfake.ClusterID("test-cluster")}, opts...)...)
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()[0]
}

// fakeMetadata makes c answer every Metadata request from now on with the
// answer it gives now, changed by edit: the partition states kfake itself
// never reaches (no leader, a shrunken ISR).
func fakeMetadata(t *testing.T, c *kfake.Cluster, addr string, edit func(*kmsg.MetadataResponse)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	edit(resp)
	c.ControlKey(int16(kmsg.Metadata), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := *resp
		r.Version = req.GetVersion()
		return &r, nil, true
	})
}

// answer makes c answer the next request of key with resp.
func answer(c *kfake.Cluster, key kmsg.Key, resp func(req kmsg.Request) kmsg.Response) {
	c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		return resp(req), nil, true
	})
}

// withoutAPIs is kfake's versions without keys: a cluster that lacks them.
func withoutAPIs(keys ...kmsg.Key) kfake.Opt {
	return kfake.MaxVersions(withoutKeys(keys...))
}

func TestClusterHealthy(t *testing.T) {
	addr := startBroker(t)
	mustRun(t, addr, "", "topic", "create", "h", "-p", "2")
	golden(t, "cluster_health.txt", mustRun(t, addr, "", "cluster", "health"))
	var r healthReport
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "cluster", "health", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Healthy || r.Brokers != 1 || r.Partitions < 2 || len(r.Problems) != 0 {
		t.Errorf("health --json = %+v, want healthy, 1 broker, no problems", r)
	}
}

func TestClusterUnhealthy(t *testing.T) {
	c, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "t", "-p", "5", "-r", "3", "-c", "min.insync.replicas=2")
	mustRun(t, addr, "", "topic", "create", "ok", "-p", "1", "-r", "3")
	fakeMetadata(t, c, addr, func(m *kmsg.MetadataResponse) {
		for i := range m.Topics {
			if *m.Topics[i].Topic != "t" {
				continue
			}
			for j := range m.Topics[i].Partitions {
				p := &m.Topics[i].Partitions[j]
				p.Leader, p.Replicas = 0, []int32{0, 1, 2}
				switch p.Partition {
				case 0: // no leader, and one in-sync replica left
					p.Leader, p.ISR = -1, []int32{0}
				case 1: // alone: acks=all fails
					p.ISR = []int32{0}
				case 2: // one more failure and acks=all fails
					p.ISR = []int32{0, 1}
				case 3: // led by a broker that is not live
					p.Leader, p.Replicas, p.ISR = 7, []int32{7, 1, 2}, []int32{7, 1, 2}
				default:
					p.ISR = []int32{0, 1, 2}
				}
			}
		}
	})
	r := run(t, addr, "", "cluster", "health")
	if ExitCode(r.err) != 2 {
		t.Fatalf("exit code %d (%v), want 2", ExitCode(r.err), r.err)
	}
	if want := "cluster unhealthy: 2 offline, 2 under min ISR (of 6 partitions)"; r.err.Error() != want {
		t.Errorf("error %q, want %q", r.err, want)
	}
	goldenIn(t, "kfake", "cluster_health_unhealthy.txt", r.stdout)

	r = run(t, addr, "", "cluster", "health", "--json")
	var h healthReport
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatal(err)
	}
	if ExitCode(r.err) != 2 || h.Healthy || h.Offline != 2 || h.UnderMinISR != 2 || h.UnderReplicated != 3 || h.AtMinISR != 1 || len(h.Problems) != 4 {
		t.Errorf("health --json: exit %d, %+v", ExitCode(r.err), h)
	}
}

func TestElectLeaders(t *testing.T) {
	c, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "e", "-p", "3", "-r", "3")
	before := c.LeaderFor("e", 2)
	golden2 := mustRun(t, addr, "", "cluster", "elect-leaders", "--topic", "e", "--partition", "0", "--partition", "2")
	goldenIn(t, "kfake", "elect_leaders.txt", golden2)
	if after := c.LeaderFor("e", 2); after == before {
		t.Errorf("e/2 still led by %d after the election", after)
	}
	var rs []partitionResult
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "cluster", "elect-leaders", "--all", "--type", "unclean", "--json")), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0] != (partitionResult{Topic: "e", Partition: 0, Status: "elected"}) {
		t.Errorf("elect-leaders --all --json = %+v, want e/0..2 elected", rs)
	}

	// Per-partition outcomes: not needed is fine, anything else fails.
	answer(c, kmsg.ElectLeaders, func(req kmsg.Request) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
		resp.Version = req.GetVersion()
		msg := "replica 1 is not in sync"
		resp.Topics = []kmsg.ElectLeadersResponseTopic{{Topic: "e", Partitions: []kmsg.ElectLeadersResponseTopicPartition{
			{Partition: 0, ErrorCode: 84}, {Partition: 1, ErrorCode: 80, ErrorMessage: &msg}, {Partition: 2}}}}
		return resp
	})
	r := run(t, addr, "", "cluster", "elect-leaders", "--topic", "e")
	if want := "elect leaders of e/1: replica 1 is not in sync (PREFERRED_LEADER_NOT_AVAILABLE)"; r.err == nil || r.err.Error() != want {
		t.Errorf("error %v, want %q", r.err, want)
	}
	goldenIn(t, "kfake", "elect_leaders_failed.txt", r.stdout)
}

func TestElectLeadersErrors(t *testing.T) {
	_, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "e", "-p", "2", "-r", "3")
	_, old := newKfake(t, 1, withoutAPIs(kmsg.ElectLeaders))
	mustRun(t, old, "", "topic", "create", "e", "-p", "1")
	tests := []struct {
		addr string
		args []string
		want string
	}{
		{addr, nil, "give --topic T (with --partition P to choose partitions) or --all"},
		{addr, []string{"--all", "--topic", "e"}, "give --topic or --all, not both"},
		{addr, []string{"--all", "--partition", "1"}, "--partition needs --topic"},
		{addr, []string{"--all", "--type", "dirty"}, `--type "dirty": want preferred or unclean`},
		{addr, []string{"--topic", "nope"}, `topic "nope" does not exist`},
		{addr, []string{"--topic", "e", "--partition", "5"}, `topic "e" has no partition 5`},
		{old, []string{"--topic", "e"}, "elect leaders: the cluster does not support ElectLeaders (API 43); it needs brokers that implement it"},
	}
	for _, tt := range tests {
		r := run(t, tt.addr, "", append([]string{"cluster", "elect-leaders"}, tt.args...)...)
		if r.err == nil || r.err.Error() != tt.want {
			t.Errorf("elect-leaders %v: error %v, want %q", tt.args, r.err, tt.want)
		}
	}
}

// topic describe marks under-replicated partitions and, where the cluster
// reports them (DescribeTopicPartitions), shows eligible leader replicas.
func TestTopicDescribeReplication(t *testing.T) {
	c, addr := newKfake(t, 1)
	mustRun(t, addr, "", "topic", "create", "d", "-p", "2")
	fakeMetadata(t, c, addr, func(m *kmsg.MetadataResponse) {
		for i := range m.Topics {
			for j := range m.Topics[i].Partitions {
				if p := &m.Topics[i].Partitions[j]; p.Partition == 1 {
					p.Replicas, p.ISR = []int32{0, 1, 2}, []int32{0}
				}
			}
		}
	})
	out := mustRun(t, addr, "", "topic", "describe", "d")
	goldenIn(t, "kfake", "topic_describe_under_replicated.txt", out)

	answer(c, kmsg.DescribeTopicPartitions, func(req kmsg.Request) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
		topic := "d"
		resp.Topics = []kmsg.DescribeTopicPartitionsResponseTopic{{Topic: &topic, Partitions: []kmsg.DescribeTopicPartitionsResponseTopicPartition{
			{Partition: 1, Replicas: []int32{0, 1, 2}, ISR: []int32{0}, EligibleLeaderReplicas: []int32{1}, LastKnownELR: []int32{2}}}}}
		return resp
	})
	var desc []topicJSON
	if err := json.Unmarshal([]byte(mustRun(t, addr, "", "topic", "describe", "d", "--json")), &desc); err != nil {
		t.Fatal(err)
	}
	p := desc[0].Partitions
	if !slices.Equal(desc[0].UnderReplicated, []int32{1}) || p[0].UnderReplicated || !p[1].UnderReplicated ||
		!slices.Equal(p[1].ELR, []int32{1}) || !slices.Equal(p[1].LastKnownELR, []int32{2}) || p[0].ELR != nil {
		t.Errorf("describe --json = %+v", desc[0])
	}
	answer(c, kmsg.DescribeTopicPartitions, func(req kmsg.Request) kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeTopicPartitionsResponse)
		topic := "d"
		resp.Topics = []kmsg.DescribeTopicPartitionsResponseTopic{{Topic: &topic, Partitions: []kmsg.DescribeTopicPartitionsResponseTopicPartition{
			{Partition: 1, EligibleLeaderReplicas: []int32{1}}}}}
		return resp
	})
	out = mustRun(t, addr, "", "topic", "describe", "d")
	if !strings.Contains(out, "PARTITION  LEADER  EPOCH  REPLICAS  ISR  ELR  LAST-KNOWN-ELR  LOG-START") ||
		!strings.Contains(out, "1          0       0      0,1,2     0 *  1    -               0") {
		t.Errorf("describe with ELR:\n%s", out)
	}
}

// A partition whose every replica is on a broker that is down is shown
// offline, not as waiting for an election.
func TestTopicDescribeOffline(t *testing.T) {
	c, addr := newKfake(t, 3)
	mustRun(t, addr, "", "topic", "create", "t", "-p", "2", "-r", "3")
	fakeMetadata(t, c, addr, func(m *kmsg.MetadataResponse) {
		for i := range m.Topics {
			for j := range m.Topics[i].Partitions {
				p := &m.Topics[i].Partitions[j]
				p.Leader, p.Replicas, p.ISR = -1, []int32{0, 1, 2}, []int32{0}
				if p.Partition == 0 {
					p.OfflineReplicas = []int32{0, 1, 2}
				}
			}
		}
	})
	out := run(t, addr, "", "topic", "describe", "t").stdout
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && (f[0] == "0" || f[0] == "1") {
			rows = append(rows, f[0]+" "+f[1])
		}
	}
	if want := []string{"0 offline", "1 none"}; !slices.Equal(rows, want) {
		t.Errorf("partition leader cells %q, want %q:\n%s", rows, want, out)
	}
}
