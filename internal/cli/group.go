package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func groupCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe, delete consumer groups and manage their offsets",
	}
	cmd.AddCommand(groupListCommand(env), groupDescribeCommand(env), groupDeleteCommand(env),
		groupResetOffsetsCommand(env), groupDeleteOffsetsCommand(env))
	return cmd
}

func groupListCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return GroupList(cmd.Context(), env)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// GroupList prints every group with its coordinator, type and state.
func GroupList(ctx context.Context, env *Env) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return env.wrap("list groups", err)
	}
	type row struct {
		Group        string `json:"group"`
		Coordinator  int32  `json:"coordinator"`
		ProtocolType string `json:"protocol_type"`
		State        string `json:"state"`
	}
	out := []row{}
	t := newTable("GROUP", "COORDINATOR", "TYPE", "STATE")
	for _, g := range groups.Sorted() {
		out = append(out, row{g.Group, g.Coordinator, g.ProtocolType, g.State})
		t.row(g.Group, g.Coordinator, g.ProtocolType, g.State)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	return t.write(env.Stdout, env.Color)
}

func groupDescribeCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "describe GROUP...",
		Short:             "Show members, assignments, committed offsets, end offsets and lag",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeGroups(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			return GroupDescribe(cmd.Context(), env, args)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

type groupPartitionJSON struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed_offset"`
	LogStart  int64  `json:"log_start_offset"`
	LogEnd    int64  `json:"log_end_offset"`
	Lag       int64  `json:"lag"`
	MemberID  string `json:"member_id,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Host      string `json:"host,omitempty"`
	Error     string `json:"error,omitempty"`
}

type groupMemberJSON struct {
	MemberID   string   `json:"member_id"`
	InstanceID string   `json:"instance_id,omitempty"`
	ClientID   string   `json:"client_id"`
	Host       string   `json:"host"`
	Assigned   []string `json:"assigned"`
}

type groupJSON struct {
	Group       string               `json:"group"`
	Coordinator int32                `json:"coordinator"`
	State       string               `json:"state"`
	Protocol    string               `json:"protocol"`
	Members     []groupMemberJSON    `json:"members"`
	Partitions  []groupPartitionJSON `json:"partitions"`
	TotalLag    int64                `json:"total_lag"`
}

// GroupDescribe prints each group's members and per-partition lag with
// totals.
func GroupDescribe(ctx context.Context, env *Env, groups []string) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return env.wrap("describe groups", err)
	}
	var out []groupJSON
	for _, name := range groups {
		l, ok := lags[name]
		if !ok {
			return fmt.Errorf("describe group %q: no answer for it", name)
		}
		if err := l.Error(); err != nil {
			return fmt.Errorf("describe group %q: %w", name, describeErr(err))
		}
		if l.State == "Dead" {
			return fmt.Errorf("group %q does not exist", name)
		}
		gj := groupJSON{Group: name, Coordinator: l.Coordinator.NodeID, State: l.State, Protocol: l.Protocol,
			Members: []groupMemberJSON{}, Partitions: []groupPartitionJSON{}}
		for _, m := range l.Members {
			mj := groupMemberJSON{MemberID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: []string{}}
			if m.InstanceID != nil {
				mj.InstanceID = *m.InstanceID
			}
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range c.Topics {
					ps := append([]int32(nil), t.Partitions...)
					sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
					mj.Assigned = append(mj.Assigned, t.Topic+":"+cellString(ps))
				}
			}
			gj.Members = append(gj.Members, mj)
		}
		for _, ml := range l.Lag.Sorted() {
			pj := groupPartitionJSON{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At,
				LogStart: ml.Start.Offset, LogEnd: ml.End.Offset, Lag: ml.Lag, Error: errString(ml.Err)}
			if ml.Member != nil {
				pj.MemberID, pj.ClientID, pj.Host = ml.Member.MemberID, ml.Member.ClientID, ml.Member.ClientHost
			}
			if ml.Lag > 0 {
				gj.TotalLag += ml.Lag
			}
			gj.Partitions = append(gj.Partitions, pj)
		}
		out = append(out, gj)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	for i, gj := range out {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		fmt.Fprintf(env.Stdout, "GROUP        %s\nCOORDINATOR  %d\nSTATE        %s\nPROTOCOL     %s\nMEMBERS      %d\nTOTAL-LAG    %d\n\n",
			gj.Group, gj.Coordinator, gj.State, orDash(gj.Protocol), len(gj.Members), gj.TotalLag)
		if len(gj.Members) > 0 {
			mt := newTable("MEMBER", "CLIENT-ID", "HOST", "ASSIGNED")
			for _, m := range gj.Members {
				mt.row(m.MemberID, m.ClientID, m.Host, strings.Join(m.Assigned, " "))
			}
			if err := mt.write(env.Stdout, env.Color); err != nil {
				return err
			}
			fmt.Fprintln(env.Stdout)
		}
		t := newTable("TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "MEMBER")
		for _, p := range gj.Partitions {
			s := plain
			if p.Lag > 0 {
				s = yellow
			}
			if p.Error != "" {
				s = red
			}
			t.styledRow(s, p.Topic, p.Partition, offsetCell(p.Committed), offsetCell(p.LogEnd), offsetCell(p.Lag), p.MemberID)
		}
		if err := t.write(env.Stdout, env.Color); err != nil {
			return err
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func groupDeleteCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "delete GROUP...",
		Aliases:           []string{"rm"},
		Short:             "Delete consumer groups (they must have no members)",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeGroups(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			return GroupDelete(cmd.Context(), env, args)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// GroupDelete deletes groups, printing each result.
func GroupDelete(ctx context.Context, env *Env, groups []string) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	resps, err := adm.DeleteGroups(ctx, groups...)
	if err != nil {
		return env.wrap("delete groups", err)
	}
	type result struct {
		Group string `json:"group"`
		Error string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("GROUP", "STATUS")
	for _, g := range groups {
		r := resps[g]
		if r.Err != nil {
			e := describeErr(r.Err)
			failed = append(failed, failure{g, e.Error()})
			out = append(out, result{g, e.Error()})
			t.styledRow(red, g, e.Error())
			continue
		}
		out = append(out, result{Group: g})
		t.row(g, "deleted")
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("delete group", failed)
}

// GroupDeleteOffsetsOptions are the options of `group delete-offsets`.
type GroupDeleteOffsetsOptions struct {
	Group      string
	Topic      string
	Partitions []int32 // empty: every partition of the topic
}

func groupDeleteOffsetsCommand(env *Env) *cobra.Command {
	var o GroupDeleteOffsetsOptions
	cmd := &cobra.Command{
		Use:               "delete-offsets GROUP --topic TOPIC",
		Short:             "Delete a group's committed offsets for a topic (or some partitions)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(env, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Group = args[0]
			return GroupDeleteOffsets(cmd.Context(), env, o)
		},
	}
	cmd.Flags().StringVarP(&o.Topic, "topic", "t", "", "topic whose offsets to delete (required)")
	cmd.Flags().Int32SliceVarP(&o.Partitions, "partitions", "p", nil, "only these partitions")
	_ = cmd.MarkFlagRequired("topic")
	_ = cmd.RegisterFlagCompletionFunc("topic", completeTopicFlag(env))
	addJSONFlag(cmd, env)
	return cmd
}

// GroupDeleteOffsets deletes committed offsets of a group.
func GroupDeleteOffsets(ctx context.Context, env *Env, o GroupDeleteOffsetsOptions) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	parts := o.Partitions
	if len(parts) == 0 {
		details, err := requireTopics(ctx, env, adm, o.Topic)
		if err != nil {
			return fmt.Errorf("delete offsets: %w", err)
		}
		parts = details[o.Topic].Partitions.Numbers()
	}
	set := kadm.TopicsSet{}
	set.Add(o.Topic, parts...)
	resps, err := adm.DeleteOffsets(ctx, o.Group, set)
	if err != nil {
		return env.wrap(fmt.Sprintf("delete offsets of group %q", o.Group), err)
	}
	type result struct {
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Error     string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("TOPIC", "PARTITION", "STATUS")
	for _, p := range parts {
		perr := resps[o.Topic][p]
		if perr != nil {
			e := describeErr(perr)
			failed = append(failed, failure{fmt.Sprintf("%s/%d", o.Topic, p), e.Error()})
			out = append(out, result{o.Topic, p, e.Error()})
			t.styledRow(red, o.Topic, p, e.Error())
			continue
		}
		out = append(out, result{Topic: o.Topic, Partition: p})
		t.row(o.Topic, p, "deleted")
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures(fmt.Sprintf("delete offsets of group %q for", o.Group), failed)
}

var errNothingToReset = errors.New("reset-offsets: give -o/--offset or --shift-by")
