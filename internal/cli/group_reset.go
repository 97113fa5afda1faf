package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// GroupResetOffsetsOptions are the options of `group reset-offsets`.
type GroupResetOffsetsOptions struct {
	Group      string
	Topics     []string
	AllTopics  bool    // every topic the group has committed offsets for
	Partitions []int32 // empty: all partitions of the topics
	Offset     string  // start, end, N, -N, @unix-ms
	ShiftBy    int64   // move the committed offset by this much instead
	Execute    bool    // without it, only show the plan (dry run)
}

func groupResetOffsetsCommand(env *Env) *cobra.Command {
	var o GroupResetOffsetsOptions
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP (--topic TOPIC | --all-topics) (-o SPEC | --shift-by N) [--execute]",
		Short: "Move a group's committed offsets (a dry run unless --execute)",
		Long: `Move the committed offsets of an inactive group: to the start or end of each
partition, an offset N, N before the end (-N), the first record at or after a
time (@<unix-ms>), or shifted by --shift-by. New offsets are clamped to the
log's range. --all-topics takes every topic the group has committed offsets
for. Like Kafka's tool this only prints the plan unless --execute.`,
		Example: `  strata group reset-offsets billing --topic orders -o start
  strata group reset-offsets billing --topic orders -o @1700000000000 --execute
  strata group reset-offsets billing --topic orders --shift-by -100 --execute`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(env, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Group = args[0]
			return GroupResetOffsets(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Topics, "topic", "t", nil, "topic to reset (repeatable)")
	f.BoolVar(&o.AllTopics, "all-topics", false, "every topic the group has committed offsets for")
	f.Int32SliceVarP(&o.Partitions, "partitions", "p", nil, "only these partitions")
	f.StringVarP(&o.Offset, "offset", "o", "", "new position: start, end, N, -N or @<unix-ms>")
	f.Int64Var(&o.ShiftBy, "shift-by", 0, "move each committed offset by N (negative: back)")
	f.BoolVar(&o.Execute, "execute", false, "commit the new offsets (default: dry run)")
	cmd.MarkFlagsMutuallyExclusive("topic", "all-topics")
	cmd.MarkFlagsOneRequired("topic", "all-topics")
	_ = cmd.RegisterFlagCompletionFunc("topic", completeTopicFlag(env))
	addJSONFlag(cmd, env)
	return cmd
}

type resetJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current_offset"`
	New       int64  `json:"new_offset"`
	LogStart  int64  `json:"log_start_offset"`
	LogEnd    int64  `json:"log_end_offset"`
	Error     string `json:"error,omitempty"`
}

// GroupResetOffsets plans, and with Execute commits, new group offsets.
func GroupResetOffsets(ctx context.Context, env *Env, o GroupResetOffsetsOptions) error {
	var spec OffsetSpec
	switch {
	case o.Offset != "" && o.ShiftBy != 0:
		return fmt.Errorf("reset-offsets: give -o/--offset or --shift-by, not both")
	case o.Offset != "":
		var err error
		if spec, err = ParseOffsetSpec(o.Offset); err != nil {
			return err
		}
	case o.ShiftBy == 0:
		return errNothingToReset
	}
	if (len(o.Topics) == 0) == !o.AllTopics {
		return fmt.Errorf("reset-offsets: give --topic or --all-topics")
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	if o.AllTopics {
		all, err := adm.FetchOffsets(ctx, o.Group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return env.wrap(fmt.Sprintf("fetch offsets of group %q", o.Group), err)
		}
		for t := range all {
			o.Topics = append(o.Topics, t)
		}
		if len(o.Topics) == 0 {
			return fmt.Errorf("reset-offsets: group %q has no committed offsets; name topics with --topic", o.Group)
		}
		slices.Sort(o.Topics)
	}

	details, err := requireTopics(ctx, env, adm, o.Topics...)
	if err != nil {
		return fmt.Errorf("reset-offsets: %w", err)
	}
	groups, err := adm.DescribeGroups(ctx, o.Group)
	if err != nil {
		return env.wrap(fmt.Sprintf("describe group %q", o.Group), err)
	}
	if g, ok := groups[o.Group]; ok {
		if g.Err != nil {
			return fmt.Errorf("describe group %q: %w", o.Group, errWithMessage(g.Err, g.ErrMessage))
		}
		if o.Execute && len(g.Members) > 0 {
			return fmt.Errorf("reset-offsets: group %q has %d active members (state %s); stop its consumers first", o.Group, len(g.Members), g.State)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, o.Topics...)
	if err != nil {
		return env.wrap("list start offsets", err)
	}
	ends, err := adm.ListEndOffsets(ctx, o.Topics...)
	if err != nil {
		return env.wrap("list end offsets", err)
	}
	var atTime kadm.ListedOffsets
	if o.Offset != "" && spec.Kind == offTime {
		if atTime, err = adm.ListOffsetsAfterMilli(ctx, spec.N, o.Topics...); err != nil {
			return env.wrap("list offsets by time", err)
		}
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, o.Group, o.Topics...)
	if errors.Is(err, kerr.GroupIDNotFound) {
		err = nil // no commits yet; --execute creates them
	}
	if err != nil {
		return env.wrap(fmt.Sprintf("fetch offsets of group %q", o.Group), err)
	}

	var plan []resetJSON
	newOffsets := kadm.Offsets{}
	for _, topic := range o.Topics {
		all := details[topic].Partitions.Numbers()
		parts := all
		if len(o.Partitions) > 0 {
			parts = nil
			for _, p := range o.Partitions {
				if !slices.Contains(all, p) {
					return fmt.Errorf("reset-offsets: topic %q has no partition %d (it has %d)", topic, p, len(all))
				}
				parts = append(parts, p)
			}
		}
		for _, p := range parts {
			s, _ := starts.Lookup(topic, p)
			e, _ := ends.Lookup(topic, p)
			if s.Err != nil || e.Err != nil {
				return fmt.Errorf("reset-offsets: offsets of %s/%d unavailable", topic, p)
			}
			cur := int64(-1)
			if c, ok := committed.Lookup(topic, p); ok && c.Err == nil {
				cur = c.At
			}
			var to int64
			if o.Offset != "" {
				t := int64(-1)
				if lo, ok := atTime.Lookup(topic, p); ok && lo.Err == nil {
					t = lo.Offset
				}
				to = spec.Resolve(s.Offset, e.Offset, t)
			} else {
				base := cur
				if base < 0 {
					base = s.Offset
				}
				to = min(max(base+o.ShiftBy, s.Offset), e.Offset)
			}
			plan = append(plan, resetJSON{Topic: topic, Partition: p, Current: cur, New: to, LogStart: s.Offset, LogEnd: e.Offset})
			newOffsets.AddOffset(topic, p, to, -1)
		}
	}

	var failed []failure
	if o.Execute {
		resps, err := adm.CommitOffsets(ctx, o.Group, newOffsets)
		if err != nil {
			return env.wrap(fmt.Sprintf("commit offsets of group %q", o.Group), err)
		}
		for i := range plan {
			if r, ok := resps.Lookup(plan[i].Topic, plan[i].Partition); ok && r.Err != nil {
				plan[i].Error = describeErr(r.Err).Error()
				failed = append(failed, failure{fmt.Sprintf("%s/%d", plan[i].Topic, plan[i].Partition), plan[i].Error})
			}
		}
	}
	if env.JSON {
		if err := writeJSON(env.Stdout, map[string]any{"group": o.Group, "executed": o.Execute, "offsets": plan}); err != nil {
			return err
		}
	} else {
		t := newTable("TOPIC", "PARTITION", "CURRENT", "NEW", "LOG-START", "LOG-END", "STATUS")
		for _, r := range plan {
			status := "dry run"
			s := plain
			if o.Execute {
				status = "committed"
			}
			if r.Error != "" {
				status, s = r.Error, red
			}
			t.styledRow(s, r.Topic, r.Partition, offsetCell(r.Current), r.New, r.LogStart, r.LogEnd, status)
		}
		if err := t.write(env.Stdout, env.Color); err != nil {
			return err
		}
		if !o.Execute {
			fmt.Fprintln(env.Stdout, "dry run: nothing committed; add --execute to apply")
		}
	}
	return joinFailures(fmt.Sprintf("reset offsets of group %q for", o.Group), failed)
}
