package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listReassignments lists the reassignments in progress of set's
// partitions, or all of them for a nil set (which kadm cannot ask for).
func listReassignments(ctx context.Context, env *Env, cl *kgo.Client, set kadm.TopicsSet) (kadm.ListPartitionReassignmentsResponses, error) {
	const key = int16(kmsg.ListPartitionReassignments)
	if err := requireAPI(ctx, env, cl, "list reassignments", key); err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	req.TimeoutMillis = int32(env.timeout().Milliseconds())
	if set != nil {
		req.Topics = []kmsg.ListPartitionReassignmentsRequestTopic{}
		for _, t := range set.IntoList() {
			req.Topics = append(req.Topics, kmsg.ListPartitionReassignmentsRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
		}
	}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = errWithMessage(kerr.ErrorForCode(resp.ErrorCode), derefOr(resp.ErrorMessage))
	}
	if err != nil {
		return nil, apiErr(env, "list reassignments", key, err)
	}
	out := kadm.ListPartitionReassignmentsResponses{}
	for _, t := range resp.Topics {
		out[t.Topic] = map[int32]kadm.ListPartitionReassignmentsResponse{}
		for _, p := range t.Partitions {
			out[t.Topic][p.Partition] = kadm.ListPartitionReassignmentsResponse{Topic: t.Topic, Partition: p.Partition,
				Replicas: p.Replicas, AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas}
		}
	}
	return out, nil
}

func derefOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func reassignVerify(ctx context.Context, env *Env, adm *kadm.Client, cl *kgo.Client, plan reassignPlan) error {
	set := kadm.TopicsSet{}
	for _, p := range plan.Partitions {
		set.Add(p.Topic, p.Partition)
	}
	ongoing, err := listReassignments(ctx, env, cl, set)
	if err != nil {
		return err
	}
	md, err := adm.Metadata(ctx, set.Topics()...)
	if err != nil {
		return env.wrap("load metadata", err)
	}
	var rs []partitionResult
	done := 0
	for _, pp := range plan.Partitions {
		r := partitionResult{Topic: pp.Topic, Partition: pp.Partition}
		r.Status, r.Error = verifyStatus(pp, md.Topics, ongoing)
		if r.Status == "done" {
			done++
		}
		rs = append(rs, r)
	}
	if err := writePartitionResults(env, "verify reassignment of", rs); err != nil {
		return err
	}
	if done < len(rs) {
		return &ExitStatus{Code: 2, Err: fmt.Errorf("reassignment not complete: %d of %d partitions done", done, len(rs))}
	}
	return nil
}

// verifyStatus is where one partition of a plan is: done (its replicas
// are the plan's and all in sync), in progress, catching up, or not
// reassigned; or an error when the partition cannot be looked up.
func verifyStatus(pp planPartition, topics kadm.TopicDetails, ongoing kadm.ListPartitionReassignmentsResponses) (status, errMsg string) {
	if r, ok := ongoing[pp.Topic][pp.Partition]; ok {
		return fmt.Sprintf("in progress (adding %s, removing %s)", cellString(r.AddingReplicas), cellString(r.RemovingReplicas)), ""
	}
	t, ok := topics[pp.Topic]
	if ok && t.Err != nil {
		return "failed", describeErr(t.Err).Error()
	}
	p, ok := t.Partitions[pp.Partition]
	if !ok {
		return "failed", "no such partition"
	}
	if !slices.Equal(p.Replicas, pp.Replicas) {
		return fmt.Sprintf("not reassigned (replicas %s, plan %s)", cellString(p.Replicas), cellString(pp.Replicas)), ""
	}
	if !sameSet(p.ISR, p.Replicas) {
		return fmt.Sprintf("catching up (in sync %s of %s)", cellString(p.ISR), cellString(p.Replicas)), ""
	}
	return "done", ""
}

func sameSet(a, b []int32) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
