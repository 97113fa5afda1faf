package cli

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// elr is a partition's eligible leader replicas (KIP-966): replicas that
// left the ISR while it was below min.insync.replicas and so still have
// every committed record.
type elr struct{ ELR, LastKnown []int32 }

// loadELR asks DescribeTopicPartitions (API 75) for the ELR of topics'
// partitions. Metadata does not carry them. Best effort: a cluster
// without the API (or ELR) gives none, noted under --verbose.
func loadELR(ctx context.Context, env *Env, cl *kgo.Client, topics []string) map[string]map[int32]elr {
	out := map[string]map[int32]elr{}
	req := kmsg.NewPtrDescribeTopicPartitionsRequest()
	for _, t := range topics {
		req.Topics = append(req.Topics, kmsg.DescribeTopicPartitionsRequestTopic{Topic: t})
	}
	for page := 0; page < 100; page++ {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			if env.Verbose {
				fmt.Fprintf(env.Stderr, "strata: eligible leader replicas unavailable: %v\n", describeErr(err))
			}
			return out
		}
		for _, t := range resp.Topics {
			if t.Topic == nil || kerr.ErrorForCode(t.ErrorCode) != nil {
				continue
			}
			for _, p := range t.Partitions {
				if len(p.EligibleLeaderReplicas)+len(p.LastKnownELR) == 0 {
					continue
				}
				if out[*t.Topic] == nil {
					out[*t.Topic] = map[int32]elr{}
				}
				out[*t.Topic][p.Partition] = elr{p.EligibleLeaderReplicas, p.LastKnownELR}
			}
		}
		if resp.NextCursor == nil {
			break
		}
		req.Cursor = &kmsg.DescribeTopicPartitionsRequestCursor{Topic: resp.NextCursor.Topic, Partition: resp.NextCursor.Partition}
	}
	return out
}
