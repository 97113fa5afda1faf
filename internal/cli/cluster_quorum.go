package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func clusterQuorumCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "quorum",
		Short: "The metadata quorum: leader, its epoch, the commit offset, each voter's log end offset and lag",
		Long: `Asks a broker (DescribeQuorum, as kafka-metadata-quorum does) for the
state of the __cluster_metadata Raft quorum. The voters' log end offsets come
from the leader; LAG is how far each voter is behind the high watermark.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ClusterQuorum(cmd.Context(), env)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// ClusterQuorum prints the metadata quorum's state.
func ClusterQuorum(ctx context.Context, env *Env) error {
	cl, err := env.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	req := kmsg.NewPtrDescribeQuorumRequest()
	req.Topics = []kmsg.DescribeQuorumRequestTopic{{Topic: "__cluster_metadata", Partitions: []kmsg.DescribeQuorumRequestTopicPartition{{Partition: 0}}}}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("describe quorum: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("describe quorum: %w", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("describe quorum: the broker answered for %d topics", len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return fmt.Errorf("describe quorum: %w", err)
	}
	type voter struct {
		NodeID       int32  `json:"node_id"`
		Role         string `json:"role"`
		LogEndOffset int64  `json:"log_end_offset"`
		Lag          *int64 `json:"lag"`
	}
	out := struct {
		LeaderID      int32   `json:"leader_id"`
		LeaderEpoch   int32   `json:"leader_epoch"`
		HighWatermark int64   `json:"high_watermark"`
		Voters        []voter `json:"voters"`
	}{LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.HighWatermark, Voters: []voter{}}
	t := newTable("NODE", "ROLE", "LOG-END-OFFSET", "LAG")
	for _, v := range p.CurrentVoters {
		r := voter{NodeID: v.ReplicaID, Role: "follower", LogEndOffset: v.LogEndOffset}
		if v.ReplicaID == p.LeaderID {
			r.Role = "leader"
		}
		leo, lag := "-", "-"
		if v.LogEndOffset >= 0 {
			l := max(p.HighWatermark-v.LogEndOffset, 0)
			r.Lag = &l
			leo, lag = fmt.Sprint(v.LogEndOffset), fmt.Sprint(l)
		}
		out.Voters = append(out.Voters, r)
		t.row(r.NodeID, r.Role, leo, lag)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	leader := fmt.Sprint(p.LeaderID)
	if p.LeaderID < 0 {
		leader = "none (election in progress or no majority)"
	}
	writeFields(env.Stdout, "LEADER", leader, "LEADER-EPOCH", fmt.Sprint(p.LeaderEpoch), "HIGH-WATERMARK", fmt.Sprint(p.HighWatermark))
	fmt.Fprintln(env.Stdout)
	return t.write(env.Stdout, env.Color)
}
