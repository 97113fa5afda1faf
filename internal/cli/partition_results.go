package cli

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// partitionResult is the outcome of an admin request for one partition:
// an election, a reassignment, a cancellation.
type partitionResult struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
}

// newPartitionResult turns a per-partition error into a result: nil is ok;
// codes in benign ("ELECTION_NOT_NEEDED" for an election) are a status,
// not a failure; anything else is an error.
func newPartitionResult(topic string, partition int32, ok string, err error, msg string, benign ...error) partitionResult {
	r := partitionResult{Topic: topic, Partition: partition, Status: ok}
	if err == nil {
		return r
	}
	var ke *kerr.Error
	for _, b := range benign {
		if errors.Is(err, b) && errors.As(err, &ke) {
			r.Status = ke.Message
			return r
		}
	}
	e := errWithMessage(err, msg)
	r.Status, r.Error = "failed", e.Error()
	return r
}

// writePartitionResults prints results sorted by topic and partition, as a
// table or --json, and returns one error line naming the partitions that
// failed (exit status 1) after printing them all.
func writePartitionResults(env *Env, what string, rs []partitionResult) error {
	slices.SortFunc(rs, func(a, b partitionResult) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	var failed []failure
	t := newTable("TOPIC", "PARTITION", "STATUS")
	for _, r := range rs {
		if r.Error != "" {
			failed = append(failed, failure{fmt.Sprintf("%s/%d", r.Topic, r.Partition), r.Error})
			t.styledRow(red, r.Topic, r.Partition, r.Error)
		} else {
			t.row(r.Topic, r.Partition, r.Status)
		}
	}
	var err error
	if env.JSON {
		if rs == nil {
			rs = []partitionResult{}
		}
		err = writeJSON(env.Stdout, rs)
	} else {
		err = t.write(env.Stdout, env.Color)
	}
	if err != nil {
		return err
	}
	return joinFailures(what, failed)
}
