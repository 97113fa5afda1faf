package cli

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func clusterCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Cluster id, brokers, quorum and health; leader elections and replica reassignment",
	}
	info := &cobra.Command{
		Use:   "info",
		Short: "Cluster id, controller, broker and topic counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ClusterInfo(cmd.Context(), env)
		},
	}
	addJSONFlag(info, env)
	brokers := &cobra.Command{
		Use:   "brokers",
		Short: "The brokers of the cluster and their state (online or fenced)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ClusterBrokers(cmd.Context(), env)
		},
	}
	addJSONFlag(brokers, env)
	cmd.AddCommand(info, brokers, clusterQuorumCommand(env), clusterHealthCommand(env),
		clusterElectCommand(env), clusterReassignCommand(env))
	return cmd
}

// clusterView is what the cluster commands show: metadata for topics and
// partitions, and the brokers with their state. DescribeCluster v2 lists
// fenced brokers too; where a cluster does not answer it (older Kafka),
// Metadata's live brokers are all there is.
type clusterView struct {
	md     kadm.Metadata
	fenced map[int32]bool
	extra  []kadm.BrokerDetail // fenced brokers, which Metadata leaves out
}

func loadCluster(ctx context.Context, env *Env) (clusterView, error) {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return clusterView{}, err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	return loadClusterWith(ctx, env, adm, cl)
}

// loadClusterWith is loadCluster on a client the caller goes on using.
func loadClusterWith(ctx context.Context, env *Env, adm *kadm.Client, cl *kgo.Client) (clusterView, error) {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return clusterView{}, env.wrap("load cluster metadata", err)
	}
	v := clusterView{md: md, fenced: map[int32]bool{}}
	req := kmsg.NewPtrDescribeClusterRequest()
	req.EndpointType = 1 // brokers
	req.IncludeFencedBrokers = true
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		if env.Verbose {
			fmt.Fprintf(env.Stderr, "strata: DescribeCluster unavailable, fenced brokers not shown: %v\n", describeErr(err))
		}
		return v, nil
	}
	live := map[int32]bool{}
	for _, b := range md.Brokers {
		live[b.NodeID] = true
	}
	for _, b := range resp.Brokers {
		if !b.IsFenced {
			continue
		}
		v.fenced[b.NodeID] = true
		if !live[b.NodeID] {
			v.extra = append(v.extra, kadm.BrokerDetail{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
		}
	}
	return v, nil
}

// ClusterInfo prints the cluster id, controller and counts.
func ClusterInfo(ctx context.Context, env *Env) error {
	v, err := loadCluster(ctx, env)
	if err != nil {
		return err
	}
	md := v.md
	parts, internal := 0, 0
	for _, t := range md.Topics {
		parts += len(t.Partitions)
		if t.IsInternal {
			internal++
		}
	}
	info := struct {
		ClusterID      string `json:"cluster_id"`
		Controller     int32  `json:"controller"`
		Brokers        int    `json:"brokers"`
		FencedBrokers  int    `json:"fenced_brokers"`
		Topics         int    `json:"topics"`
		InternalTopics int    `json:"internal_topics"`
		Partitions     int    `json:"partitions"`
	}{md.Cluster, md.Controller, len(md.Brokers) + len(v.extra), len(v.fenced), len(md.Topics), internal, parts}
	if env.JSON {
		return writeJSON(env.Stdout, info)
	}
	brokers := fmt.Sprint(info.Brokers)
	if info.FencedBrokers > 0 {
		brokers += fmt.Sprintf(" (%d fenced)", info.FencedBrokers)
	}
	writeFields(env.Stdout, "CLUSTER-ID", orDash(info.ClusterID), "CONTROLLER", fmt.Sprint(info.Controller), "BROKERS", brokers,
		"TOPICS", fmt.Sprintf("%d (%d internal)", info.Topics, info.InternalTopics), "PARTITIONS", fmt.Sprint(info.Partitions))
	return nil
}

// ClusterBrokers prints one row per broker: online, or fenced (registered
// but not serving: unreachable, shutting down, or not caught up).
func ClusterBrokers(ctx context.Context, env *Env) error {
	v, err := loadCluster(ctx, env)
	if err != nil {
		return err
	}
	md := v.md
	leaders := map[int32]int{}
	replicas := map[int32]int{}
	md.Topics.EachPartition(func(p kadm.PartitionDetail) {
		leaders[p.Leader]++
		for _, r := range p.Replicas {
			replicas[r]++
		}
	})
	type row struct {
		NodeID     int32  `json:"node_id"`
		Host       string `json:"host"`
		Port       int32  `json:"port"`
		Rack       string `json:"rack,omitempty"`
		Controller bool   `json:"controller"`
		State      string `json:"state"`
		Leaders    int    `json:"leader_partitions"`
		Replicas   int    `json:"replica_partitions"`
	}
	out := []row{}
	t := newTable("NODE", "HOST", "PORT", "RACK", "CONTROLLER", "STATE", "LEADERS", "REPLICAS")
	brokers := append(append([]kadm.BrokerDetail(nil), md.Brokers...), v.extra...)
	slices.SortFunc(brokers, func(a, b kadm.BrokerDetail) int { return cmp.Compare(a.NodeID, b.NodeID) })
	for _, b := range brokers {
		r := row{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Controller: b.NodeID == md.Controller, State: "online",
			Leaders: leaders[b.NodeID], Replicas: replicas[b.NodeID]}
		if v.fenced[b.NodeID] {
			r.State = "fenced"
		}
		if b.Rack != nil {
			r.Rack = *b.Rack
		}
		out = append(out, r)
		ctl := ""
		if r.Controller {
			ctl = "yes"
		}
		s := plain
		if r.State != "online" {
			s = red
		}
		t.styledRow(s, r.NodeID, r.Host, r.Port, r.Rack, ctl, r.State, r.Leaders, r.Replicas)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	return t.write(env.Stdout, env.Color)
}
