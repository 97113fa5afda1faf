package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func clusterHealthCommand(env *Env) *cobra.Command {
	var httpAddrs []string
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Offline, under-replicated, under- and at-min-ISR partitions; exit status 2 when unhealthy",
		Long: `Checks every partition of the cluster (Metadata, and min.insync.replicas of
each topic from DescribeConfigs, 1 where unset) and lists those that are:

  offline           no leader, or a leader that is not a live broker
  under-min-isr     fewer in-sync replicas than min.insync.replicas: acks=all
                    produce fails
  under-replicated  fewer in-sync replicas than replicas
  at-min-isr        down to min.insync.replicas in-sync replicas: one more
                    failure stops acks=all produce (a partition with no more
                    replicas than min.insync.replicas, rf 1 say, is not
                    listed: that is its configuration, not a failure)

With --http, it also asks each node's HTTP listener (its --http-listen
address) for /readyz, as a load balancer would: a node is ready when it is
registered, caught up with the metadata log and has every hosted partition
open.

Exit status: 0 when no partition is offline or under min ISR (and every node
named with --http is ready), 2 when any is (under-replicated and at-min-ISR
partitions are listed but are not failures), 1 when the cluster cannot be
asked.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return clusterHealth(cmd.Context(), env, httpAddrs)
		},
	}
	addJSONFlag(cmd, env)
	cmd.Flags().StringSliceVar(&httpAddrs, "http", nil, "host:port of nodes' HTTP listeners (--http-listen) to ask for /readyz (comma-separated or repeated)")
	return cmd
}

// Partition states found by `cluster health`, worst first.
const (
	stateOffline         = "offline"
	stateUnderMinISR     = "under-min-isr"
	stateUnderReplicated = "under-replicated"
	stateAtMinISR        = "at-min-isr"
)

type partitionHealth struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Leader    int32    `json:"leader"`
	Replicas  []int32  `json:"replicas"`
	ISR       []int32  `json:"isr"`
	MinISR    int      `json:"min_isr"`
	States    []string `json:"states"`
}

type healthReport struct {
	Healthy         bool              `json:"healthy"`
	Brokers         int               `json:"brokers"`
	FencedBrokers   []int32           `json:"fenced_brokers"`
	Partitions      int               `json:"partitions"`
	Offline         int               `json:"offline"`
	UnderMinISR     int               `json:"under_min_isr"`
	UnderReplicated int               `json:"under_replicated"`
	AtMinISR        int               `json:"at_min_isr"`
	Problems        []partitionHealth `json:"problems"` // partitions in any state, by topic and partition
	// Nodes are the /readyz answers of the nodes named with --http.
	Nodes []nodeReadiness `json:"nodes,omitempty"`
}

// partitionStates is what is wrong with one partition, worst first; live
// are the brokers that serve (Metadata's), minISR the topic's
// min.insync.replicas.
func partitionStates(p kadm.PartitionDetail, live map[int32]bool, minISR int) []string {
	var s []string
	if p.Leader < 0 || !live[p.Leader] {
		s = append(s, stateOffline)
	}
	if len(p.ISR) < minISR {
		s = append(s, stateUnderMinISR)
	}
	if len(p.ISR) < len(p.Replicas) {
		s = append(s, stateUnderReplicated)
	}
	if len(p.ISR) == minISR && len(p.ISR) < len(p.Replicas) {
		s = append(s, stateAtMinISR)
	}
	return s
}

// assessHealth classifies every partition of md; minISR gives a topic's
// min.insync.replicas.
func assessHealth(v clusterView, minISR func(topic string) int) healthReport {
	r := healthReport{Brokers: len(v.md.Brokers) + len(v.extra), FencedBrokers: []int32{}, Problems: []partitionHealth{}}
	live := map[int32]bool{}
	for _, b := range v.md.Brokers {
		live[b.NodeID] = !v.fenced[b.NodeID]
	}
	for id := range v.fenced {
		r.FencedBrokers = append(r.FencedBrokers, id)
	}
	slices.Sort(r.FencedBrokers)
	for _, t := range v.md.Topics.Sorted() {
		if t.Err != nil {
			continue
		}
		m := minISR(t.Topic)
		for _, p := range t.Partitions.Sorted() {
			r.Partitions++
			states := partitionStates(p, live, m)
			if len(states) == 0 {
				continue
			}
			for _, s := range states {
				switch s {
				case stateOffline:
					r.Offline++
				case stateUnderMinISR:
					r.UnderMinISR++
				case stateUnderReplicated:
					r.UnderReplicated++
				case stateAtMinISR:
					r.AtMinISR++
				}
			}
			r.Problems = append(r.Problems, partitionHealth{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader,
				Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR), MinISR: m, States: states})
		}
	}
	r.Healthy = r.Offline == 0 && r.UnderMinISR == 0
	return r
}

func orEmpty(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

// ClusterHealth prints the health report; an unhealthy cluster is an
// *ExitStatus with code 2, after the report.
func ClusterHealth(ctx context.Context, env *Env) error { return clusterHealth(ctx, env, nil) }

func clusterHealth(ctx context.Context, env *Env, httpAddrs []string) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	v, err := loadClusterWith(ctx, env, adm, cl)
	if err != nil {
		return err
	}
	minISR, err := loadMinISR(ctx, env, adm, v.md.Topics.Names())
	if err != nil {
		return err
	}
	r := assessHealth(v, func(t string) int { return minISR[t] })
	notReady := 0
	if len(httpAddrs) > 0 {
		r.Nodes = readNodes(ctx, httpAddrs)
		for _, n := range r.Nodes {
			if !n.Ready {
				notReady++
			}
		}
		r.Healthy = r.Healthy && notReady == 0
	}
	if env.JSON {
		err = writeJSON(env.Stdout, r)
	} else {
		err = printHealth(env.Stdout, env.Color, r)
		if err == nil && len(r.Nodes) > 0 {
			err = printNodes(env.Stdout, env.Color, r.Nodes)
		}
	}
	if err != nil || r.Healthy {
		return err
	}
	msg := fmt.Sprintf("cluster unhealthy: %d offline, %d under min ISR (of %d partitions)", r.Offline, r.UnderMinISR, r.Partitions)
	if notReady > 0 {
		msg += fmt.Sprintf(", %d of %d nodes not ready", notReady, len(r.Nodes))
	}
	return &ExitStatus{Code: 2, Err: fmt.Errorf("%s", msg)}
}

// loadMinISR resolves min.insync.replicas of topics: the topic's value,
// else the broker default DescribeConfigs reports, else 1.
func loadMinISR(ctx context.Context, env *Env, adm *kadm.Client, topics []string) (map[string]int, error) {
	out := make(map[string]int, len(topics))
	for _, t := range topics {
		out[t] = 1
	}
	if len(topics) == 0 {
		return out, nil
	}
	configs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil && configs == nil {
		return nil, env.wrap("describe topic configs", err)
	}
	for _, rc := range configs {
		if rc.Err != nil {
			fmt.Fprintf(env.Stderr, "strata: min.insync.replicas of topic %q unknown, assuming 1: %v\n", rc.Name, errWithMessage(rc.Err, rc.ErrMessage))
			continue
		}
		for _, c := range rc.Configs {
			if c.Key != "min.insync.replicas" {
				continue
			}
			if n, err := strconv.Atoi(c.MaybeValue()); err == nil && n > 0 {
				out[rc.Name] = n
			}
		}
	}
	return out, nil
}

func printHealth(w io.Writer, color bool, r healthReport) error {
	brokers := strconv.Itoa(r.Brokers)
	if len(r.FencedBrokers) > 0 {
		brokers += fmt.Sprintf(" (%d fenced: %s)", len(r.FencedBrokers), cellString(r.FencedBrokers))
	}
	status := "healthy"
	if !r.Healthy {
		status = "unhealthy"
	}
	writeFields(w,
		"BROKERS", brokers,
		"PARTITIONS", strconv.Itoa(r.Partitions),
		"OFFLINE", strconv.Itoa(r.Offline),
		"UNDER-MIN-ISR", strconv.Itoa(r.UnderMinISR),
		"UNDER-REPLICATED", strconv.Itoa(r.UnderReplicated),
		"AT-MIN-ISR", strconv.Itoa(r.AtMinISR),
		"STATUS", status)
	if len(r.Problems) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable("TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "MIN-ISR", "STATE")
	for _, p := range r.Problems {
		s := yellow
		if p.States[0] == stateOffline || p.States[0] == stateUnderMinISR {
			s = red
		}
		t.styledRow(s, p.Topic, p.Partition, leaderCell(p.Leader), p.Replicas, p.ISR, p.MinISR, strings.Join(p.States, ","))
	}
	return t.write(w, color)
}
