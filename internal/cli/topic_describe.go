package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicDescribeOptions are the options of `topic describe`.
type TopicDescribeOptions struct {
	Topics []string
}

func topicDescribeCommand(env *Env) *cobra.Command {
	var o TopicDescribeOptions
	cmd := &cobra.Command{
		Use:   "describe TOPIC...",
		Short: "Show partitions (leader, replicas, ISR, offsets, size) and configs of topics",
		Long: `Show a topic's partitions with their leader, replicas, in-sync replicas, log
start and end offsets and size on disk, then its configs; configs that differ
from the default are highlighted (on a terminal) and their source is shown.`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeTopics(env, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topics = args
			return TopicDescribe(cmd.Context(), env, o)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

type partitionJSON struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	// Offline lists replicas on brokers that are down (Metadata's
	// offline replicas).
	Offline       []int32 `json:"offline_replicas,omitempty"`
	ISR           []int32 `json:"isr"`
	LogStart      int64   `json:"log_start_offset"`
	HighWatermark int64   `json:"high_watermark"`
	SizeBytes     int64   `json:"size_bytes"`
	Error         string  `json:"error,omitempty"`

	UnderReplicated bool    `json:"under_replicated"`         // fewer in-sync replicas than replicas
	ELR             []int32 `json:"elr,omitempty"`            // eligible leader replicas (KIP-966), where reported
	LastKnownELR    []int32 `json:"last_known_elr,omitempty"` // where reported
}

type configJSON struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Source    string `json:"source"`
	Default   bool   `json:"default"`
	Sensitive bool   `json:"sensitive,omitempty"`
}

type topicJSON struct {
	Topic             string          `json:"topic"`
	ID                string          `json:"id,omitempty"`
	Internal          bool            `json:"internal"`
	ReplicationFactor int             `json:"replication_factor"`
	Partitions        []partitionJSON `json:"partitions"`
	UnderReplicated   []int32         `json:"under_replicated"` // partitions
	Configs           []configJSON    `json:"configs"`
}

// requireTopics loads metadata for topics and fails with one clear line if
// any is missing or unloadable.
// errNoSuchTopic is wrapped by requireTopics for a topic the cluster does
// not have.
var errNoSuchTopic = errors.New("does not exist")

func requireTopics(ctx context.Context, env *Env, adm *kadm.Client, topics ...string) (kadm.TopicDetails, error) {
	md, err := adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, env.wrap("load metadata", err)
	}
	for _, t := range topics {
		d, ok := md.Topics[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("topic %q %w", t, errNoSuchTopic)
		}
		if d.Err != nil {
			return nil, fmt.Errorf("topic %q: %w", t, describeErr(d.Err))
		}
	}
	return md.Topics, nil
}

// TopicDescribe prints partitions and configs of each topic.
func TopicDescribe(ctx context.Context, env *Env, o TopicDescribeOptions) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	details, err := requireTopics(ctx, env, adm, o.Topics...)
	if err != nil {
		return err
	}
	// Partitions without a leader (their broker is down) have no offsets
	// to list: show them with "-" rather than failing the whole describe.
	starts, err := adm.ListStartOffsets(ctx, o.Topics...)
	if err != nil && starts == nil {
		return env.wrap("list start offsets", err)
	}
	ends, err := adm.ListEndOffsets(ctx, o.Topics...)
	if err != nil && ends == nil {
		return env.wrap("list end offsets", err)
	}
	if err != nil && env.Verbose {
		fmt.Fprintf(env.Stderr, "strata: some offsets unavailable: %v\n", describeErr(err))
	}
	configs, err := adm.DescribeTopicConfigs(ctx, o.Topics...)
	if err != nil {
		return env.wrap("describe topic configs", err)
	}
	sizes := loadSizes(ctx, env, adm, details)
	elrs := loadELR(ctx, env, cl, o.Topics)

	var out []topicJSON
	for _, name := range o.Topics {
		d := details[name]
		tj := topicJSON{Topic: name, Internal: d.IsInternal, Partitions: []partitionJSON{},
			UnderReplicated: []int32{}, Configs: []configJSON{}}
		if d.ID != (kadm.TopicID{}) {
			tj.ID = topicIDString(d.ID)
		}
		for _, p := range d.Partitions.Sorted() {
			pj := partitionJSON{Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Offline: p.OfflineReplicas,
				Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR), LogStart: -1, HighWatermark: -1, SizeBytes: -1, Error: errString(p.Err),
				UnderReplicated: len(p.ISR) < len(p.Replicas), ELR: elrs[name][p.Partition].ELR, LastKnownELR: elrs[name][p.Partition].LastKnown}
			if s, ok := starts.Lookup(name, p.Partition); ok && s.Err == nil {
				pj.LogStart = s.Offset
			}
			if e, ok := ends.Lookup(name, p.Partition); ok && e.Err == nil {
				pj.HighWatermark = e.Offset
			}
			if sz, ok := sizes[name][p.Partition]; ok {
				pj.SizeBytes = sz
			}
			if pj.UnderReplicated {
				tj.UnderReplicated = append(tj.UnderReplicated, p.Partition)
			}
			tj.Partitions = append(tj.Partitions, pj)
			// The largest, not the first partition's (kadm's NumReplicas
			// picks any): partitions under reassignment have more.
			tj.ReplicationFactor = max(tj.ReplicationFactor, len(p.Replicas))
		}
		if rc, err := configs.On(name, nil); err == nil && rc.Err == nil {
			for _, c := range rc.Configs {
				tj.Configs = append(tj.Configs, configJSON{Key: c.Key, Value: c.MaybeValue(), Source: configSourceName(c.Source),
					Default: isDefaultSource(c.Source), Sensitive: c.Sensitive})
			}
			sort.Slice(tj.Configs, func(i, j int) bool { return tj.Configs[i].Key < tj.Configs[j].Key })
		} else if err == nil && rc.Err != nil {
			return fmt.Errorf("describe configs of topic %q: %w", name, errWithMessage(rc.Err, rc.ErrMessage))
		}
		out = append(out, tj)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	for i, tj := range out {
		if i > 0 {
			fmt.Fprintln(env.Stdout)
		}
		if err := printTopic(env.Stdout, env.Color, tj); err != nil {
			return err
		}
	}
	return nil
}

// loadSizes is each partition's size on disk, best effort: not every
// cluster answers DescribeLogDirs, and a broker that is down does not.
// With replicas on several brokers it is the largest copy (the leader's).
func loadSizes(ctx context.Context, env *Env, adm *kadm.Client, details kadm.TopicDetails) map[string]map[int32]int64 {
	sizes := map[string]map[int32]int64{}
	dirs, err := adm.DescribeAllLogDirs(ctx, details.TopicsSet())
	if dirs != nil { // partial when a broker is down
		dirs.Each(func(d kadm.DescribedLogDir) {
			d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
				if sizes[p.Topic] == nil {
					sizes[p.Topic] = map[int32]int64{}
				}
				sizes[p.Topic][p.Partition] = max(sizes[p.Topic][p.Partition], p.Size)
			})
		})
	}
	if err != nil && env.Verbose {
		fmt.Fprintf(env.Stderr, "strata: sizes unavailable: %v\n", describeErr(err))
	}
	return sizes
}

func isDefaultSource(s kmsg.ConfigSource) bool {
	return s == kmsg.ConfigSourceDefaultConfig || s == kmsg.ConfigSourceStaticBrokerConfig || s == kmsg.ConfigSourceUnknown
}

func printTopic(w io.Writer, color bool, tj topicJSON) error {
	id := tj.ID
	if id == "" {
		id = "-"
	}
	under := "none"
	if n := len(tj.UnderReplicated); n > 0 {
		under = fmt.Sprintf("%d of %d partitions (%s), ISR marked *", n, len(tj.Partitions), cellString(tj.UnderReplicated))
	}
	writeFields(w, "TOPIC", tj.Topic, "ID", id, "PARTITIONS", strconv.Itoa(len(tj.Partitions)),
		"REPLICAS", strconv.Itoa(tj.ReplicationFactor), "INTERNAL", strconv.FormatBool(tj.Internal), "UNDER-REPLICATED", under)
	fmt.Fprintln(w)
	// ELR columns (KIP-966) only where the cluster reports eligible
	// leader replicas.
	withELR := slices.ContainsFunc(tj.Partitions, func(p partitionJSON) bool { return len(p.ELR)+len(p.LastKnownELR) > 0 })
	header := []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK", "SIZE"}
	if withELR {
		header = slices.Insert(header, 5, "ELR", "LAST-KNOWN-ELR")
	}
	t := newTable(header...)
	for _, p := range tj.Partitions {
		s, isr := plain, cellString(p.ISR)
		if p.UnderReplicated {
			s, isr = red, isr+" *"
		}
		if p.Error != "" {
			s = red
		}
		leader := leaderCell(p.Leader)
		if p.Leader < 0 && len(p.Replicas) > 0 && len(p.Offline) == len(p.Replicas) {
			leader = "offline" // every replica's broker is down: no election can help
		}
		cells := []any{p.Partition, leader, p.LeaderEpoch, p.Replicas, isr, offsetCell(p.LogStart), offsetCell(p.HighWatermark), humanBytes(p.SizeBytes)}
		if withELR {
			cells = slices.Insert(cells, 5, any(p.ELR), any(p.LastKnownELR))
		}
		t.styledRow(s, cells...)
	}
	if err := t.write(w, color); err != nil {
		return err
	}
	if len(tj.Configs) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	ct := newTable("CONFIG", "VALUE", "SOURCE")
	for _, c := range tj.Configs {
		v := c.Value
		if c.Sensitive {
			v = "(sensitive)"
		}
		if c.Default {
			ct.row(c.Key, v, c.Source)
		} else {
			ct.styledRow(yellow, c.Key, v, c.Source+" *")
		}
	}
	return ct.write(w, color)
}

func offsetCell(o int64) any {
	if o < 0 {
		return "-"
	}
	return o
}
