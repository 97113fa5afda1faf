package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ElectLeadersOptions are the options of `cluster elect-leaders`.
type ElectLeadersOptions struct {
	Type       string // preferred or unclean
	Topic      string
	Partitions []int32 // of Topic; none: all of them
	All        bool    // every partition of the cluster
}

func clusterElectCommand(env *Env) *cobra.Command {
	var o ElectLeadersOptions
	cmd := &cobra.Command{
		Use:   "elect-leaders (--topic T [--partition P]... | --all)",
		Short: "Move leadership to the preferred replica, or elect an out-of-sync one (unclean)",
		Long: `Asks the controller to elect leaders (ElectLeaders, as kafka-leader-election
does). --type preferred moves leadership back to each partition's first
replica where it is in sync; ELECTION_NOT_NEEDED means it already leads.
--type unclean elects a live replica that is not in sync for partitions
that have no leader, losing the records it lacks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return ElectLeaders(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Type, "type", "preferred", "election type: preferred or unclean")
	f.StringVar(&o.Topic, "topic", "", "the topic whose partitions to elect")
	f.Int32SliceVar(&o.Partitions, "partition", nil, "a partition of --topic (repeatable; default all)")
	f.BoolVar(&o.All, "all", false, "every partition of the cluster")
	_ = cmd.RegisterFlagCompletionFunc("topic", completeTopicFlag(env))
	addJSONFlag(cmd, env)
	return cmd
}

func (o ElectLeadersOptions) how() (kadm.ElectLeadersHow, error) {
	switch o.Type {
	case "preferred":
		return kadm.ElectPreferredReplica, nil
	case "unclean":
		return kadm.ElectLiveReplica, nil
	}
	return 0, fmt.Errorf("--type %q: want preferred or unclean", o.Type)
}

func (o ElectLeadersOptions) check() error {
	switch {
	case o.All && o.Topic != "":
		return errors.New("give --topic or --all, not both")
	case !o.All && o.Topic == "":
		return errors.New("give --topic T (with --partition P to choose partitions) or --all")
	case o.Topic == "" && len(o.Partitions) > 0:
		return errors.New("--partition needs --topic")
	}
	return nil
}

// ElectLeaders runs a leader election and prints each partition's result.
func ElectLeaders(ctx context.Context, env *Env, o ElectLeadersOptions) error {
	how, err := o.how()
	if err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	var set kadm.TopicsSet // nil: all partitions
	if o.Topic != "" {
		details, err := requireTopics(ctx, env, adm, o.Topic)
		if err != nil {
			return err
		}
		set = kadm.TopicsSet{}
		parts := o.Partitions
		if len(parts) == 0 {
			parts = details[o.Topic].Partitions.Numbers()
		}
		for _, p := range parts {
			if _, ok := details[o.Topic].Partitions[p]; !ok {
				return fmt.Errorf("topic %q has no partition %d", o.Topic, p)
			}
		}
		set.Add(o.Topic, parts...)
	}
	if err := requireAPI(ctx, env, cl, "elect leaders", kmsg.ElectLeaders.Int16()); err != nil {
		return err
	}
	res, err := adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return apiErr(env, "elect leaders", kmsg.ElectLeaders.Int16(), err)
	}
	var rs []partitionResult
	for _, ps := range res {
		for _, r := range ps {
			rs = append(rs, newPartitionResult(r.Topic, r.Partition, "elected", r.Err, r.ErrMessage, kerr.ElectionNotNeeded))
		}
	}
	return writePartitionResults(env, "elect leaders of", rs)
}
