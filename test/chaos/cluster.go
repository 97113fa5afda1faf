package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cluster is the set of nodes of one schedule.
type Cluster struct {
	Nodes []*Node
	net   Net
}

func newCluster(bin, dir string, nw Net, n int, extra []string, tmpfsMiB map[int]int) *Cluster {
	c := &Cluster{net: nw}
	var q []string
	for i := 1; i <= n; i++ {
		_, ctrl := nw.Addrs(i)
		q = append(q, fmt.Sprintf("%d@%s", i, ctrl))
	}
	for i := 1; i <= n; i++ {
		c.Nodes = append(c.Nodes, &Node{ID: i, bin: bin, dir: filepath.Join(dir, fmt.Sprintf("n%d", i)), net: nw,
			voters: strings.Join(q, ","), extra: extra, tmpfs: tmpfsMiB[i]})
	}
	return c
}

func (c *Cluster) node(id int) *Node { return c.Nodes[id-1] }

// Start starts every node (in parallel: a quorum needs a majority to come up).
func (c *Cluster) Start(ctx context.Context) error {
	errs := make(chan error, len(c.Nodes))
	for _, n := range c.Nodes {
		go func(n *Node) { errs <- n.Start(ctx) }(n)
	}
	var first error
	for range c.Nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown kills every node and unmounts tmpfs data dirs.
func (c *Cluster) Shutdown() {
	for _, n := range c.Nodes {
		n.Resume()
		n.Kill()
		n.unmount()
	}
}

func (c *Cluster) seeds() []string {
	var s []string
	for _, n := range c.Nodes {
		s = append(s, n.kafka())
	}
	return s
}

// clientOpts are the options every client of the harness shares: quick
// metadata refreshes and retries, so clients follow failovers.
func (c *Cluster) clientOpts() []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(c.seeds()...),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.MetadataMaxAge(2 * time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.DialTimeout(2 * time.Second),
		kgo.RequestTimeoutOverhead(3 * time.Second),
		kgo.RetryTimeout(5 * time.Second),
	}
}

func (c *Cluster) admin() (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(c.clientOpts()...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// await polls cond every 100ms until it holds, ctx ends or timeout passes.
func await(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ok := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quorumLeader asks node n for the metadata quorum's leader (-1: none).
func (c *Cluster) quorumLeader(ctx context.Context, n *Node) int32 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(n.kafka()), kgo.DialTimeout(time.Second))
	if err != nil {
		return -1
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeQuorumRequest()
	req.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
	r, err := cl.SeedBrokers()[0].RetriableRequest(ctx, req)
	if err != nil {
		return -1
	}
	resp := r.(*kmsg.DescribeQuorumResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return -1
	}
	return resp.Topics[0].Partitions[0].LeaderID
}

// Controller returns the active controller as every running node sees
// it, or -1 while they disagree or know none.
func (c *Cluster) Controller(ctx context.Context) int32 {
	leader := int32(-2)
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		l := c.quorumLeader(ctx, n)
		if l < 0 || (leader != -2 && l != leader) {
			return -1
		}
		leader = l
	}
	if leader == -2 {
		return -1
	}
	return leader
}

// Ready waits until every node runs, agrees on a controller and every
// node is a registered, unfenced broker.
func (c *Cluster) Ready(ctx context.Context, timeout time.Duration) error {
	for _, n := range c.Nodes {
		if !n.Running() {
			return fmt.Errorf("node %d is down", n.ID)
		}
	}
	if err := await(ctx, "a controller every node agrees on", timeout, func(ctx context.Context) bool { return c.Controller(ctx) > 0 }); err != nil {
		return err
	}
	adm, done, err := c.admin()
	if err != nil {
		return err
	}
	defer done()
	return await(ctx, fmt.Sprintf("%d brokers in metadata", len(c.Nodes)), timeout, func(ctx context.Context) bool {
		md, err := adm.BrokerMetadata(ctx)
		return err == nil && len(md.Brokers) == len(c.Nodes)
	})
}

// ErrRefused marks a topic creation the cluster definitely refused.
var ErrRefused = errors.New("refused")

// CreateTopic creates topic, retrying through elections; a definite
// refusal (an invalid replication factor) returns ErrRefused.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, parts int32, rf int16, minISR int) error {
	adm, done, err := c.admin()
	if err != nil {
		return err
	}
	defer done()
	var cfg map[string]*string
	if rf > 1 && minISR > 0 {
		v := fmt.Sprint(minISR)
		cfg = map[string]*string{"min.insync.replicas": &v}
	}
	var last error
	err = await(ctx, "topic "+topic, 60*time.Second, func(ctx context.Context) bool {
		res, err := adm.CreateTopic(ctx, parts, rf, cfg, topic)
		if err == nil {
			err = res.Err
		}
		last = err
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists) || errors.Is(err, kerr.InvalidReplicationFactor) ||
			errors.Is(err, kerr.InvalidConfig) || errors.Is(err, kerr.InvalidRequest)
	})
	if err != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	if last != nil && !errors.Is(last, kerr.TopicAlreadyExists) {
		return fmt.Errorf("%w: %v", ErrRefused, last)
	}
	return c.AwaitLeaders(ctx, topic, 60*time.Second)
}

// Leaders returns each partition's leader (-1: none).
func (c *Cluster) Leaders(ctx context.Context, topic string) (map[int32]int32, error) {
	adm, done, err := c.admin()
	if err != nil {
		return nil, err
	}
	defer done()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		return nil, fmt.Errorf("topic %s: %v", topic, t.Err)
	}
	out := map[int32]int32{}
	for p, pd := range t.Partitions {
		out[p] = pd.Leader
		if pd.Err != nil {
			out[p] = -1
		}
	}
	return out, nil
}

// AwaitLeaders waits until every partition of topic has a leader.
func (c *Cluster) AwaitLeaders(ctx context.Context, topic string, timeout time.Duration) error {
	return await(ctx, "a leader for every partition of "+topic, timeout, func(ctx context.Context) bool {
		l, err := c.Leaders(ctx, topic)
		if err != nil || len(l) == 0 {
			return false
		}
		for _, v := range l {
			if v < 0 {
				return false
			}
		}
		return true
	})
}

// AwaitFullISR waits until every replica of every partition of topic is
// in its ISR: a replica restarted or cut off near the end of a schedule
// catches up before the replicas' files are compared.
func (c *Cluster) AwaitFullISR(ctx context.Context, topic string, timeout time.Duration) error {
	return await(ctx, "every replica of "+topic+" in sync", timeout, func(ctx context.Context) bool {
		adm, done, err := c.admin()
		if err != nil {
			return false
		}
		defer done()
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		t, ok := md.Topics[topic]
		if !ok || t.Err != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, pd := range t.Partitions {
			if pd.Err != nil || len(pd.ISR) != len(pd.Replicas) {
				return false
			}
		}
		return true
	})
}

// copyLogs copies every node's log into dir.
func (c *Cluster) copyLogs(dir string) {
	for _, n := range c.Nodes {
		b, err := os.ReadFile(filepath.Join(n.dir, "strata.log"))
		if err == nil {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.log", n.ID)), b, 0o644)
		}
	}
}
