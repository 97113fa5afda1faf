package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func topicCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, delete and configure topics",
	}
	cmd.AddCommand(topicCreateCommand(env), topicListCommand(env), topicDescribeCommand(env),
		topicDeleteCommand(env), topicAlterConfigCommand(env), topicAddPartitionsCommand(env))
	return cmd
}

// TopicCreateOptions are the options of `topic create`.
type TopicCreateOptions struct {
	Topics            []string
	Partitions        int32    // -1: broker default
	ReplicationFactor int16    // -1: broker default
	Configs           []string // key=value
	DryRun            bool
}

func topicCreateCommand(env *Env) *cobra.Command {
	var o TopicCreateOptions
	cmd := &cobra.Command{
		Use:   "create TOPIC...",
		Short: "Create topics",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topics = args
			return TopicCreate(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.Int32VarP(&o.Partitions, "partitions", "p", -1, "number of partitions (default: the broker's num.partitions)")
	f.Int16VarP(&o.ReplicationFactor, "replication-factor", "r", -1, "replicas per partition (default: the broker's default)")
	f.StringArrayVarP(&o.Configs, "config", "c", nil, "topic config key=value (repeatable)")
	f.BoolVar(&o.DryRun, "dry-run", false, "validate only; create nothing")
	addJSONFlag(cmd, env)
	return cmd
}

// parseConfigs parses key=value pairs.
func parseConfigs(kvs []string) (map[string]*string, error) {
	m := make(map[string]*string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("config %q: want key=value", kv)
		}
		m[k] = &v
	}
	return m, nil
}

// TopicCreate creates topics; each topic's result is printed, and an error
// is returned if any failed.
func TopicCreate(ctx context.Context, env *Env, o TopicCreateOptions) error {
	configs, err := parseConfigs(o.Configs)
	if err != nil {
		return err
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	create := adm.CreateTopics
	if o.DryRun {
		create = adm.ValidateCreateTopics
	}
	resps, err := create(ctx, o.Partitions, o.ReplicationFactor, configs, o.Topics...)
	if err != nil {
		return env.wrap("create topics", err)
	}
	type result struct {
		Topic             string `json:"topic"`
		ID                string `json:"id,omitempty"`
		Partitions        int32  `json:"partitions"`
		ReplicationFactor int16  `json:"replication_factor"`
		Error             string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("TOPIC", "PARTITIONS", "REPLICAS", "STATUS")
	for _, name := range o.Topics {
		r := resps[name]
		res := result{Topic: name, Partitions: r.NumPartitions, ReplicationFactor: r.ReplicationFactor}
		status := "created"
		if o.DryRun {
			status = "valid (dry run)"
		}
		if r.Err != nil {
			e := errWithMessage(r.Err, r.ErrMessage)
			res.Error = e.Error()
			status = e.Error()
			failed = append(failed, failure{name, e.Error()})
			t.styledRow(red, name, "-", "-", status)
		} else {
			if r.ID != (kadm.TopicID{}) {
				res.ID = topicIDString(r.ID)
			}
			t.row(name, r.NumPartitions, r.ReplicationFactor, status)
		}
		out = append(out, res)
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("create topic", failed)
}

// failure is one item (a topic, a group, a partition) that failed.
type failure struct{ item, err string }

// joinFailures makes one error line out of per-item failures, naming the
// items that failed alike once: "create topic a, b: <why>; c: <why>".
func joinFailures(what string, failed []failure) error {
	if len(failed) == 0 {
		return nil
	}
	var errs []string
	items := map[string][]string{}
	for _, f := range failed {
		if _, ok := items[f.err]; !ok {
			errs = append(errs, f.err)
		}
		items[f.err] = append(items[f.err], f.item)
	}
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = strings.Join(items[e], ", ") + ": " + e
	}
	return fmt.Errorf("%s %s", what, strings.Join(parts, "; "))
}

// TopicListOptions are the options of `topic list`.
type TopicListOptions struct {
	Internal bool
}

func topicListCommand(env *Env) *cobra.Command {
	var o TopicListOptions
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return TopicList(cmd.Context(), env, o)
		},
	}
	cmd.Flags().BoolVarP(&o.Internal, "internal", "i", false, "include internal topics")
	addJSONFlag(cmd, env)
	return cmd
}

// TopicList prints every topic with its partition and replica counts.
func TopicList(ctx context.Context, env *Env, o TopicListOptions) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	list := adm.ListTopics
	if o.Internal {
		list = adm.ListTopicsWithInternal
	}
	topics, err := list(ctx)
	if err != nil {
		return env.wrap("list topics", err)
	}
	type row struct {
		Topic             string `json:"topic"`
		ID                string `json:"id,omitempty"`
		Partitions        int    `json:"partitions"`
		ReplicationFactor int    `json:"replication_factor"`
		Internal          bool   `json:"internal,omitempty"`
		Error             string `json:"error,omitempty"`
	}
	out := []row{}
	t := newTable("TOPIC", "PARTITIONS", "REPLICAS")
	for _, d := range topics.Sorted() {
		r := row{Topic: d.Topic, Partitions: len(d.Partitions), ReplicationFactor: d.Partitions.NumReplicas(), Internal: d.IsInternal, Error: errString(d.Err)}
		if d.ID != (kadm.TopicID{}) {
			r.ID = topicIDString(d.ID)
		}
		out = append(out, r)
		if d.Err != nil {
			t.styledRow(red, d.Topic, "-", errString(d.Err))
			continue
		}
		t.row(d.Topic, r.Partitions, r.ReplicationFactor)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	return t.write(env.Stdout, env.Color)
}

// TopicDeleteOptions are the options of `topic delete`.
type TopicDeleteOptions struct {
	Topics []string
}

func topicDeleteCommand(env *Env) *cobra.Command {
	var o TopicDeleteOptions
	cmd := &cobra.Command{
		Use:               "delete TOPIC...",
		Aliases:           []string{"rm"},
		Short:             "Delete topics",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopics(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topics = args
			return TopicDelete(cmd.Context(), env, o)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// TopicDelete deletes topics, printing each result.
func TopicDelete(ctx context.Context, env *Env, o TopicDeleteOptions) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	resps, err := adm.DeleteTopics(ctx, o.Topics...)
	if err != nil {
		return env.wrap("delete topics", err)
	}
	type result struct {
		Topic string `json:"topic"`
		Error string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("TOPIC", "STATUS")
	for _, name := range o.Topics {
		r := resps[name]
		if r.Err != nil {
			e := errWithMessage(r.Err, r.ErrMessage)
			failed = append(failed, failure{name, e.Error()})
			out = append(out, result{name, e.Error()})
			t.styledRow(red, name, e.Error())
			continue
		}
		out = append(out, result{Topic: name})
		t.row(name, "deleted")
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("delete topic", failed)
}

// TopicAlterConfigOptions are the options of `topic alter-config`.
type TopicAlterConfigOptions struct {
	Topics []string
	Set    []string // key=value
	Delete []string // keys to return to their default
	DryRun bool
}

func topicAlterConfigCommand(env *Env) *cobra.Command {
	var o TopicAlterConfigOptions
	cmd := &cobra.Command{
		Use:   "alter-config TOPIC...",
		Short: "Set or delete topic config overrides",
		Example: `  strata topic alter-config orders -c retention.ms=3600000
  strata topic alter-config orders --delete retention.ms`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopics(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topics = args
			return TopicAlterConfig(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Set, "config", "c", nil, "set key=value (repeatable)")
	f.StringArrayVar(&o.Delete, "delete", nil, "delete the override of key, back to the default (repeatable)")
	f.BoolVar(&o.DryRun, "dry-run", false, "validate only; change nothing")
	addJSONFlag(cmd, env)
	return cmd
}

// TopicAlterConfig applies incremental config changes to topics.
func TopicAlterConfig(ctx context.Context, env *Env, o TopicAlterConfigOptions) error {
	if len(o.Set) == 0 && len(o.Delete) == 0 {
		return errors.New("alter-config: nothing to do; give -c key=value or --delete key")
	}
	sets, err := parseConfigs(o.Set)
	if err != nil {
		return err
	}
	var alters []kadm.AlterConfig
	keys := make([]string, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: sets[k]})
	}
	for _, k := range o.Delete {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	alter := adm.AlterTopicConfigs
	if o.DryRun {
		alter = adm.ValidateAlterTopicConfigs
	}
	resps, err := alter(ctx, alters, o.Topics...)
	if err != nil {
		return env.wrap("alter topic config", err)
	}
	type result struct {
		Topic string `json:"topic"`
		Error string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("TOPIC", "STATUS")
	for _, name := range o.Topics {
		r, err := resps.On(name, nil)
		if err == nil {
			err = r.Err
		}
		if err != nil {
			e := errWithMessage(err, r.ErrMessage)
			failed = append(failed, failure{name, e.Error()})
			out = append(out, result{name, e.Error()})
			t.styledRow(red, name, e.Error())
			continue
		}
		out = append(out, result{Topic: name})
		status := "altered"
		if o.DryRun {
			status = "valid (dry run)"
		}
		t.row(name, status)
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("alter config of topic", failed)
}

// TopicAddPartitionsOptions are the options of `topic add-partitions`.
type TopicAddPartitionsOptions struct {
	Topics []string
	Add    int // partitions to add
	Total  int // or the new total
}

func topicAddPartitionsCommand(env *Env) *cobra.Command {
	var o TopicAddPartitionsOptions
	cmd := &cobra.Command{
		Use:               "add-partitions TOPIC...",
		Short:             "Add partitions to topics (-n to add, or -p for the new total)",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopics(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topics = args
			return TopicAddPartitions(cmd.Context(), env, o)
		},
	}
	cmd.Flags().IntVarP(&o.Add, "num", "n", 0, "number of partitions to add")
	cmd.Flags().IntVarP(&o.Total, "partitions", "p", 0, "new total number of partitions")
	addJSONFlag(cmd, env)
	return cmd
}

// TopicAddPartitions grows topics.
func TopicAddPartitions(ctx context.Context, env *Env, o TopicAddPartitionsOptions) error {
	if (o.Add > 0) == (o.Total > 0) {
		return errors.New("add-partitions: give exactly one of -n/--num (to add) or -p/--partitions (new total), positive")
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	var resps kadm.CreatePartitionsResponses
	if o.Add > 0 {
		resps, err = adm.CreatePartitions(ctx, o.Add, o.Topics...)
	} else {
		resps, err = adm.UpdatePartitions(ctx, o.Total, o.Topics...)
	}
	if err != nil {
		return env.wrap("add partitions", err)
	}
	type result struct {
		Topic string `json:"topic"`
		Error string `json:"error,omitempty"`
	}
	var out []result
	var failed []failure
	t := newTable("TOPIC", "STATUS")
	for _, name := range o.Topics {
		r, ok := resps[name]
		err := r.Err
		if !ok {
			err = kerr.UnknownTopicOrPartition
		}
		if err != nil {
			e := errWithMessage(err, r.ErrMessage)
			failed = append(failed, failure{name, e.Error()})
			out = append(out, result{name, e.Error()})
			t.styledRow(red, name, e.Error())
			continue
		}
		out = append(out, result{Topic: name})
		t.row(name, "partitions added")
	}
	if env.JSON {
		err = writeJSON(env.Stdout, out)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures("add partitions to topic", failed)
}

// configSourceName shortens kmsg config sources for tables.
func configSourceName(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic"
	case kmsg.ConfigSourceDynamicBrokerConfig:
		return "broker"
	case kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "cluster-default"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "static-broker"
	case kmsg.ConfigSourceDefaultConfig:
		return "default"
	case kmsg.ConfigSourceDynamicBrokerLoggerConfig:
		return "broker-logger"
	}
	return "unknown"
}
