package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ReassignOptions are the options of `cluster reassign`: one of Generate,
// Execute, Verify and Cancel.
type ReassignOptions struct {
	Generate, Execute, Verify, Cancel bool

	Topics  []string // --generate: the topics to move
	Brokers []int32  // --generate: where to
	Plan    string   // reassignment JSON file; "-" is stdin
	// Throttle (--execute, bytes/s, 0 or -1 none) sets KIP-73 replication
	// throttles on the moving replicas; --verify and --cancel remove them
	// unless PreserveThrottles.
	Throttle          int64
	PreserveThrottles bool
}

func clusterReassignCommand(env *Env) *cobra.Command {
	var o ReassignOptions
	cmd := &cobra.Command{
		Use:   "reassign (--generate --topics T,... --broker-ids ID,... | --execute --plan FILE | --verify --plan FILE | --cancel [--plan FILE])",
		Short: "Move partition replicas between brokers (kafka-reassign-partitions in one command)",
		Long: `--generate prints a plan in Kafka's reassignment JSON that moves the topics'
replicas onto the given brokers: it keeps each partition's replication
factor, moves as few replicas as it can (replicas on brokers that stay, stay,
and replicas move between them only to even out the topic), and spreads
preferred leaders. The current assignment goes to stderr, to roll back with.

--execute starts the plan's reassignments (AlterPartitionAssignments).
--verify shows each partition's progress: done when its replicas are the
plan's and all are in sync; exit status 2 while any is not done.
--cancel stops the plan's reassignments, or every one in progress without
--plan; replicas already added are removed again.

--throttle RATE with --execute limits the replication of the moving
replicas to RATE bytes/s, as kafka-reassign-partitions does: the leader and
follower rates on every broker involved, and the topics' leader and follower
throttled-replica lists. --verify removes them once every partition is done,
and --cancel at once, unless --preserve-throttles.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return Reassign(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Generate, "generate", false, "print a plan that moves --topics onto --broker-ids")
	f.BoolVar(&o.Execute, "execute", false, "start the reassignments of --plan")
	f.BoolVar(&o.Verify, "verify", false, "show the progress of --plan's reassignments")
	f.BoolVar(&o.Cancel, "cancel", false, "cancel --plan's reassignments, or all in progress")
	f.StringSliceVar(&o.Topics, "topics", nil, "topics to move (--generate)")
	f.Int32SliceVar(&o.Brokers, "broker-ids", nil, "ids of the brokers to move them onto (--generate)")
	f.StringVar(&o.Plan, "plan", "", "reassignment JSON file, - for stdin")
	f.Int64Var(&o.Throttle, "throttle", -1, "replication throttle of the moving replicas in bytes/s (--execute)")
	f.BoolVar(&o.PreserveThrottles, "preserve-throttles", false, "keep the replication throttles (--verify, --cancel)")
	_ = cmd.RegisterFlagCompletionFunc("topics", completeTopicFlag(env))
	addJSONFlag(cmd, env)
	return cmd
}

func (o ReassignOptions) check() error {
	n := 0
	for _, b := range []bool{o.Generate, o.Execute, o.Verify, o.Cancel} {
		if b {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.New("give one of --generate, --execute, --verify and --cancel")
	case o.Generate && (len(o.Topics) == 0 || len(o.Brokers) == 0):
		return errors.New("--generate needs --topics and --broker-ids")
	case o.Generate && o.Plan != "":
		return errors.New("--generate writes a plan; --plan is for --execute, --verify and --cancel")
	case (o.Execute || o.Verify) && o.Plan == "":
		return errors.New("--execute and --verify need --plan FILE")
	case o.Throttle > 0 && !o.Execute:
		return errors.New("--throttle goes with --execute")
	case o.Throttle < -1:
		return errors.New("--throttle must be a rate in bytes/s")
	case o.PreserveThrottles && !(o.Verify || o.Cancel):
		return errors.New("--preserve-throttles goes with --verify and --cancel")
	}
	return nil
}

// Reassign runs one of the four modes.
func Reassign(ctx context.Context, env *Env, o ReassignOptions) error {
	if err := o.check(); err != nil {
		return err
	}
	var plan reassignPlan
	if o.Plan != "" {
		var err error
		if plan, err = loadPlan(env, o.Plan); err != nil {
			return err
		}
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	switch {
	case o.Generate:
		return reassignGenerate(ctx, env, adm, o)
	case o.Execute:
		if o.Throttle > 0 {
			if err := applyThrottles(ctx, env, adm, plan, o.Throttle); err != nil {
				return err
			}
		}
		return reassignExecute(ctx, env, adm, cl, plan)
	case o.Verify:
		err := reassignVerify(ctx, env, adm, cl, plan)
		if err == nil && !o.PreserveThrottles {
			err = clearThrottles(ctx, env, adm, plan)
		}
		return err
	}
	err = reassignCancel(ctx, env, adm, cl, plan)
	if err == nil && !o.PreserveThrottles {
		err = clearThrottles(ctx, env, adm, plan)
	}
	return err
}

func loadPlan(env *Env, path string) (reassignPlan, error) {
	if path == "-" {
		p, err := readPlan(env.Stdin)
		if err != nil {
			return p, fmt.Errorf("stdin: %w", err)
		}
		return p, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return reassignPlan{}, err
	}
	defer f.Close()
	p, err := readPlan(f)
	if err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func reassignGenerate(ctx context.Context, env *Env, adm *kadm.Client, o ReassignOptions) error {
	details, err := requireTopics(ctx, env, adm, o.Topics...)
	if err != nil {
		return err
	}
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return env.wrap("list brokers", err)
	}
	for _, b := range o.Brokers {
		if !slices.Contains(brokers.NodeIDs(), b) {
			return fmt.Errorf("broker %d is not a live broker of the cluster (live: %s)", b, cellString(brokers.NodeIDs()))
		}
	}
	cur := assignment{}
	for _, t := range o.Topics {
		cur[t] = map[int32][]int32{}
		for _, p := range details[t].Partitions {
			cur[t][p.Partition] = slices.Clone(p.Replicas)
		}
	}
	next, err := generatePlan(cur, o.Brokers)
	if err != nil {
		return err
	}
	moved, total, leaders := movedReplicas(cur, next)
	fmt.Fprintf(env.Stderr, "strata: the plan moves %d of %d replicas and changes %d preferred leaders; the current assignment, to roll back:\n%s",
		moved, total, leaders, encodePlan(cur.plan()))
	_, err = io.WriteString(env.Stdout, encodePlan(next.plan()))
	return err
}

func reassignExecute(ctx context.Context, env *Env, adm *kadm.Client, cl *kgo.Client, plan reassignPlan) error {
	const key = int16(kmsg.AlterPartitionAssignments)
	if err := requireAPI(ctx, env, cl, "reassign partitions", key); err != nil {
		return err
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, p := range plan.Partitions {
		req.Assign(p.Topic, p.Partition, p.Replicas)
	}
	return alterAssignments(ctx, env, adm, req, "started")
}

// alterAssignments sends req and prints each partition's result, ok when
// it succeeded; it is --execute and, with nil replicas, --cancel.
func alterAssignments(ctx context.Context, env *Env, adm *kadm.Client, req kadm.AlterPartitionAssignmentsReq, ok string) error {
	const key = int16(kmsg.AlterPartitionAssignments)
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return apiErr(env, "reassign partitions", key, err)
	}
	var rs []partitionResult
	res.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		rs = append(rs, newPartitionResult(r.Topic, r.Partition, ok, r.Err, r.ErrMessage, kerr.NoReassignmentInProgress))
	})
	return writePartitionResults(env, "reassign partitions", rs)
}

func reassignCancel(ctx context.Context, env *Env, adm *kadm.Client, cl *kgo.Client, plan reassignPlan) error {
	const key = int16(kmsg.AlterPartitionAssignments)
	if err := requireAPI(ctx, env, cl, "cancel reassignments", key); err != nil {
		return err
	}
	var req kadm.AlterPartitionAssignmentsReq
	for _, p := range plan.Partitions {
		req.Assign(p.Topic, p.Partition, nil)
	}
	if len(plan.Partitions) == 0 { // every reassignment in progress
		ongoing, err := listReassignments(ctx, env, cl, nil)
		if err != nil {
			return err
		}
		ongoing.Each(func(r kadm.ListPartitionReassignmentsResponse) { req.Assign(r.Topic, r.Partition, nil) })
		if len(req) == 0 && !env.JSON {
			_, err := fmt.Fprintln(env.Stdout, "no reassignment in progress")
			return err
		}
	}
	return alterAssignments(ctx, env, adm, req, "cancelled")
}
