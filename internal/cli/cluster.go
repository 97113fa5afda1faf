package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func clusterCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster id, controller and brokers",
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
		Short: "The brokers of the cluster and their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ClusterBrokers(cmd.Context(), env)
		},
	}
	addJSONFlag(brokers, env)
	cmd.AddCommand(info, brokers)
	return cmd
}

func clusterMetadata(ctx context.Context, env *Env) (kadm.Metadata, error) {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return kadm.Metadata{}, err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return md, env.wrap("load cluster metadata", err)
	}
	return md, nil
}

// ClusterInfo prints the cluster id, controller and counts.
func ClusterInfo(ctx context.Context, env *Env) error {
	md, err := clusterMetadata(ctx, env)
	if err != nil {
		return err
	}
	parts := 0
	for _, t := range md.Topics {
		parts += len(t.Partitions)
	}
	info := struct {
		ClusterID  string `json:"cluster_id"`
		Controller int32  `json:"controller"`
		Brokers    int    `json:"brokers"`
		Topics     int    `json:"topics"`
		Partitions int    `json:"partitions"`
	}{md.Cluster, md.Controller, len(md.Brokers), len(md.Topics), parts}
	if env.JSON {
		return writeJSON(env.Stdout, info)
	}
	_, err = fmt.Fprintf(env.Stdout, "CLUSTER-ID   %s\nCONTROLLER   %d\nBROKERS      %d\nTOPICS       %d\nPARTITIONS   %d\n",
		orDash(info.ClusterID), info.Controller, info.Brokers, info.Topics, info.Partitions)
	return err
}

// ClusterBrokers prints one row per broker. Metadata lists only live
// brokers, so every listed broker is "online"; partitions led are counted.
func ClusterBrokers(ctx context.Context, env *Env) error {
	md, err := clusterMetadata(ctx, env)
	if err != nil {
		return err
	}
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
	for _, b := range md.Brokers {
		r := row{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Controller: b.NodeID == md.Controller, State: "online",
			Leaders: leaders[b.NodeID], Replicas: replicas[b.NodeID]}
		if b.Rack != nil {
			r.Rack = *b.Rack
		}
		out = append(out, r)
		ctl := ""
		if r.Controller {
			ctl = "yes"
		}
		t.row(r.NodeID, r.Host, r.Port, r.Rack, ctl, r.State, r.Leaders, r.Replicas)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	return t.write(env.Stdout, env.Color)
}
