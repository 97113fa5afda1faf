package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The replication throttle keys (KIP-73) `cluster reassign --throttle`
// sets and --verify clears, as kafka-reassign-partitions does.
const (
	leaderRateKey       = "leader.replication.throttled.rate"
	followerRateKey     = "follower.replication.throttled.rate"
	leaderReplicasKey   = "leader.replication.throttled.replicas"
	followerReplicasKey = "follower.replication.throttled.replicas"
)

// reassignThrottles is what --throttle sets for a plan: for each partition
// that gains replicas, its current replicas in the topic's leader list and
// the replicas it gains in the follower list (partition:broker, sorted);
// brokers are every current and new replica of those partitions, which
// get the rate for both sides.
type reassignThrottles struct {
	Leader, Follower map[string]string
	Brokers          []int32
}

func planThrottles(cur assignment, plan reassignPlan) reassignThrottles {
	type ref struct{ p, b int32 }
	leader, follower := map[string][]ref{}, map[string][]ref{}
	brokers := map[int32]bool{}
	for _, pp := range plan.Partitions {
		now := cur[pp.Topic][pp.Partition]
		var adding []int32
		for _, b := range pp.Replicas {
			if !slices.Contains(now, b) && !slices.Contains(adding, b) {
				adding = append(adding, b)
			}
		}
		if len(adding) == 0 {
			continue
		}
		for _, b := range now {
			leader[pp.Topic] = append(leader[pp.Topic], ref{pp.Partition, b})
			brokers[b] = true
		}
		for _, b := range adding {
			follower[pp.Topic] = append(follower[pp.Topic], ref{pp.Partition, b})
			brokers[b] = true
		}
	}
	join := func(rs []ref) string {
		slices.SortFunc(rs, func(a, b ref) int {
			if a.p != b.p {
				return int(a.p - b.p)
			}
			return int(a.b - b.b)
		})
		rs = slices.Compact(rs)
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%d:%d", r.p, r.b)
		}
		return strings.Join(parts, ",")
	}
	out := reassignThrottles{Leader: map[string]string{}, Follower: map[string]string{}, Brokers: slices.Sorted(maps.Keys(brokers))}
	for t, rs := range leader {
		out.Leader[t] = join(rs)
	}
	for t, rs := range follower {
		out.Follower[t] = join(rs)
	}
	return out
}

// applyThrottles sets the plan's throttles at rate bytes/s before its
// reassignments start.
func applyThrottles(ctx context.Context, env *Env, adm *kadm.Client, plan reassignPlan, rate int64) error {
	topics := map[string]bool{}
	for _, pp := range plan.Partitions {
		topics[pp.Topic] = true
	}
	details, err := requireTopics(ctx, env, adm, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return err
	}
	cur := assignment{}
	for t, d := range details {
		cur[t] = map[int32][]int32{}
		for _, p := range d.Partitions {
			cur[t][p.Partition] = slices.Clone(p.Replicas)
		}
	}
	th := planThrottles(cur, plan)
	for _, t := range slices.Sorted(maps.Keys(th.Follower)) {
		cfgs := []kadm.AlterConfig{
			{Op: kadm.SetConfig, Name: leaderReplicasKey, Value: kadm.StringPtr(th.Leader[t])},
			{Op: kadm.SetConfig, Name: followerReplicasKey, Value: kadm.StringPtr(th.Follower[t])},
		}
		if err := alterConfigsResult(adm.AlterTopicConfigs(ctx, cfgs, t)); err != nil {
			return env.wrap("throttle topic "+t, err)
		}
	}
	r := kadm.StringPtr(strconv.FormatInt(rate, 10))
	for _, b := range th.Brokers {
		cfgs := []kadm.AlterConfig{{Op: kadm.SetConfig, Name: leaderRateKey, Value: r}, {Op: kadm.SetConfig, Name: followerRateKey, Value: r}}
		if err := alterConfigsResult(adm.AlterBrokerConfigs(ctx, cfgs, b)); err != nil {
			return env.wrap(fmt.Sprintf("throttle broker %d", b), err)
		}
	}
	if len(th.Brokers) > 0 {
		fmt.Fprintf(env.Stderr, "strata: replication throttled to %d B/s on brokers %s; `--verify` removes the throttle once the reassignment is done\n", rate, cellString(th.Brokers))
	}
	return nil
}

// clearThrottles removes the throttle rates set on any broker and the
// throttled-replica lists of the plan's topics (kafka-reassign-partitions'
// clearAllThrottles); only what is set is deleted, and a note goes to
// stderr when anything was.
func clearThrottles(ctx context.Context, env *Env, adm *kadm.Client, plan reassignPlan) error {
	removed, err := clearSetThrottles(ctx, env, adm, plan)
	if removed {
		fmt.Fprintln(env.Stderr, "strata: replication throttles removed")
	}
	return err
}

func clearSetThrottles(ctx context.Context, env *Env, adm *kadm.Client, plan reassignPlan) (bool, error) {
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return false, env.wrap("list brokers", err)
	}
	set := func(rc kadm.ResourceConfig, keys ...string) []kadm.AlterConfig {
		var out []kadm.AlterConfig
		for _, c := range rc.Configs {
			if slices.Contains(keys, c.Key) && (c.Source == kmsg.ConfigSourceDynamicBrokerConfig || c.Source == kmsg.ConfigSourceDynamicTopicConfig) {
				out = append(out, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: c.Key})
			}
		}
		return out
	}
	removed := false
	for _, b := range brokers.NodeIDs() {
		rcs, err := adm.DescribeBrokerConfigs(ctx, b)
		if err == nil && len(rcs) == 1 {
			err = rcs[0].Err
		}
		if err != nil {
			return removed, env.wrap(fmt.Sprintf("describe the configs of broker %d", b), err)
		}
		if del := set(rcs[0], leaderRateKey, followerRateKey); len(del) > 0 {
			if err := alterConfigsResult(adm.AlterBrokerConfigs(ctx, del, b)); err != nil {
				return removed, env.wrap(fmt.Sprintf("clear the throttle of broker %d", b), err)
			}
			removed = true
		}
	}
	topics := map[string]bool{}
	for _, pp := range plan.Partitions {
		topics[pp.Topic] = true
	}
	if len(topics) == 0 {
		return removed, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return removed, env.wrap("describe topic configs", err)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			continue // a topic gone: nothing to clear
		}
		if del := set(rc, leaderReplicasKey, followerReplicasKey); len(del) > 0 {
			if err := alterConfigsResult(adm.AlterTopicConfigs(ctx, del, rc.Name)); err != nil {
				return removed, env.wrap("clear the throttle of topic "+rc.Name, err)
			}
			removed = true
		}
	}
	return removed, nil
}

func alterConfigsResult(rs kadm.AlterConfigsResponses, err error) error {
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range rs {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, r.Err))
		}
	}
	return errors.Join(errs...)
}
