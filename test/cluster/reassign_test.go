package cluster

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// reassignRun is a cluster of three combined nodes and node 4, a broker
// only (never the active controller, so that it may be paused), with a
// partition on 1,2,3 (1 leading, min.insync.replicas=2) that an acks=all
// idempotent producer keeps writing to.
type reassignRun struct {
	t      *testing.T
	c      *testCluster
	ctx    context.Context
	topic  string
	cl     *kgo.Client
	adm    *kadm.Client // on cl, which knows the active controller
	active int32
	acked  *ackedLog
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newReassignRun(t *testing.T, topic string) *reassignRun {
	c := newRolesCluster(t, 3, 1, "")
	r := &reassignRun{t: t, c: c, ctx: ctxT(t, 3*time.Minute), topic: topic,
		acked: &ackedLog{acked: map[int32]map[string]int64{}}, stop: make(chan struct{})}
	c.waitBrokers(r.ctx, 4)
	r.cl = c.client()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, []int32{1, 2, 3}
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "min.insync.replicas", kmsg.StringPtr("2")
	rt.Configs = append(rt.Configs, cfg)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(r.ctx, r.cl) // an admin request: the client learns the controller
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create on 1,2,3: %v %+v", err, resp)
	}
	r.adm = kadm.NewClient(r.cl)
	c.waitFullISR(topic, 1, 30*time.Second)
	if leader, _, replicas := c.partitionState(topic, 0); leader != 1 || !slices.Equal(replicas, []int32{1, 2, 3}) {
		t.Fatalf("before: leader %d replicas %v", leader, replicas)
	}
	if r.active = c.leader(); r.active < 1 {
		t.Fatal("no active controller")
	}

	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer prod.Flush(r.ctx)
		for i := 0; ; i++ {
			select {
			case <-r.stop:
				return
			default:
			}
			prod.Produce(r.ctx, &kgo.Record{Value: []byte("v" + strconv.Itoa(i))}, r.acked.add)
			if i%200 == 199 {
				prod.Flush(r.ctx)
			}
		}
	}()
	r.progress("progress before the reassignment", 2000)
	return r
}

func (r *reassignRun) count() int {
	r.acked.mu.Lock()
	defer r.acked.mu.Unlock()
	return len(r.acked.acked[0])
}

// progress waits for n more acknowledged records.
func (r *reassignRun) progress(what string, n int) {
	r.t.Helper()
	before := r.count()
	waitFor(r.t, what, 60*time.Second, func() bool { return r.count() >= before+n })
}

// pause4 stops node 4 (SIGSTOP) until resume4.
func (r *reassignRun) pause4() {
	r.c.node(4).cmd.Process.Signal(syscall.SIGSTOP)
	r.t.Cleanup(r.resume4)
}

func (r *reassignRun) resume4() {
	if n := r.c.node(4); n.running() {
		n.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// assign reassigns the partition (nil cancels) through kadm.
func (r *reassignRun) assign(replicas []int32) {
	r.t.Helper()
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(r.topic, 0, replicas)
	res, err := r.adm.AlterPartitionAssignments(r.ctx, req)
	if err != nil || res.Error() != nil {
		r.t.Fatalf("reassign to %v: %v %v", replicas, err, res.Error())
	}
	r.t.Logf("reassign to %v at %d acknowledged", replicas, r.count())
}

// listed is the reassignment in progress, ok false when there is none.
func (r *reassignRun) listed() (kadm.ListPartitionReassignmentsResponse, bool, error) {
	set := kadm.TopicsSet{}
	set.Add(r.topic, 0)
	lr, err := r.adm.ListPartitionReassignments(r.ctx, set)
	if err != nil {
		return kadm.ListPartitionReassignmentsResponse{}, false, err
	}
	l, ok := lr[r.topic][0]
	return l, ok, nil
}

// state is the partition's leader, ISR and replicas in the active
// controller's Metadata answer (asked directly: node 4 may be paused);
// leader -2 if it cannot be read.
func (r *reassignRun) state() (leader int32, isr, replicas []int32) {
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(r.topic)
	mreq.Topics = append(mreq.Topics, mt)
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	raw, err := r.cl.Broker(int(r.active)).RetriableRequest(ctx, mreq)
	if err != nil {
		return -2, nil, nil
	}
	m := raw.(*kmsg.MetadataResponse)
	if len(m.Topics) != 1 || len(m.Topics[0].Partitions) != 1 {
		return -2, nil, nil
	}
	p := m.Topics[0].Partitions[0]
	return p.Leader, p.ISR, p.Replicas
}

// inProgress checks the reassignment to 2,3,4 is seen in progress: by
// ListPartitionReassignments and in Metadata's full replica list.
func (r *reassignRun) inProgress() {
	r.t.Helper()
	l, ok, err := r.listed()
	if err != nil || !ok || !slices.Equal(l.Replicas, []int32{2, 3, 4, 1}) ||
		!slices.Equal(l.AddingReplicas, []int32{4}) || !slices.Equal(l.RemovingReplicas, []int32{1}) {
		r.t.Fatalf("in progress: %+v %t %v", l, ok, err)
	}
	waitFor(r.t, "metadata to list the full replica set", 10*time.Second, func() bool {
		_, _, replicas := r.state()
		return slices.Equal(replicas, []int32{2, 3, 4, 1})
	})
}

// settled waits until no reassignment is listed and the partition has
// replicas (and ISR) want and a leader among them.
func (r *reassignRun) settled(what string, want []int32) time.Duration {
	r.t.Helper()
	sorted := slices.Sorted(slices.Values(want))
	return waitFor(r.t, what, 90*time.Second, func() bool {
		if _, ok, err := r.listed(); err != nil || ok {
			return false
		}
		leader, isr, replicas := r.state()
		slices.Sort(isr)
		return slices.Contains(want, leader) && slices.Equal(replicas, want) && slices.Equal(isr, sorted)
	})
}

// noReplicaOn waits until node has deleted (or never had) its log of the
// partition.
func (r *reassignRun) noReplicaOn(node int32) {
	r.t.Helper()
	waitFor(r.t, "the log to be gone from a node that is no replica", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(r.c.node(node).dir, "data", r.topic+"-0"))
		return os.IsNotExist(err)
	})
}

// finish stops the producer and reads every acknowledged record back.
func (r *reassignRun) finish() {
	r.t.Helper()
	close(r.stop)
	r.wg.Wait()
	r.t.Logf("%d records acknowledged, %d produce errors", r.count(), r.acked.fails)
	checkAllPresent(r.t, r.c, r.topic, 1, r.acked)
}

// TestReassignUnderLoad: the partition moves from 1,2,3 to 2,3,4 with
// AlterPartitionReassignments (KIP-455) under acks=all load. Node 4 is
// paused when it starts, so that it is seen in progress; then 4 catches up
// and joins the ISR, the reassignment completes, leadership leaves 1, and
// 1 deletes its replica. Every acknowledged record is read back once, in
// order. Last, brokers that are not the active controller relay the
// request.
func TestReassignUnderLoad(t *testing.T) {
	r := newReassignRun(t, "reassigned")
	r.pause4()
	r.assign([]int32{2, 3, 4})
	r.inProgress()
	time.Sleep(500 * time.Millisecond)
	r.resume4()
	took := r.settled("the reassignment to complete", []int32{2, 3, 4})
	leader, _, _ := r.state()
	t.Logf("reassignment completed in %v at %d acknowledged; leader %d", took, r.count(), leader)
	r.progress("progress after the reassignment", 1000)
	r.noReplicaOn(1)
	r.finish()

	// A cancel without a reassignment, sent to each broker that is not the
	// active controller, gets the controller's NO_REASSIGNMENT_IN_PROGRESS,
	// not NOT_CONTROLLER.
	active := r.c.leader()
	for _, n := range r.c.nodes {
		if n.id == active {
			continue
		}
		creq := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		ct := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		ct.Topic = r.topic
		cp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		cp.Partition = 0 // Replicas nil: cancel
		ct.Partitions = append(ct.Partitions, cp)
		creq.Topics = append(creq.Topics, ct)
		raw, err := r.cl.Broker(int(n.id)).RetriableRequest(r.ctx, creq)
		if err != nil {
			t.Fatalf("cancel through node %d: %v", n.id, err)
		}
		cresp := raw.(*kmsg.AlterPartitionAssignmentsResponse)
		if cresp.ErrorCode != 0 || len(cresp.Topics) != 1 || len(cresp.Topics[0].Partitions) != 1 ||
			cresp.Topics[0].Partitions[0].ErrorCode != kerr.NoReassignmentInProgress.Code {
			t.Fatalf("cancel through node %d (controller %d): %+v", n.id, active, cresp)
		}
	}
}

// TestReassignCancelUnderLoad: a reassignment from 1,2,3 to 2,3,4 that
// cannot complete (node 4 paused) is cancelled under acks=all load: the
// partition is back on 1,2,3 (listed 2,3,1) with 1 leading, node 4 keeps no log of it,
// and every acknowledged record is read back.
func TestReassignCancelUnderLoad(t *testing.T) {
	r := newReassignRun(t, "cancelled")
	r.pause4()
	r.assign([]int32{2, 3, 4})
	r.inProgress()
	r.progress("progress during the reassignment", 1000)
	r.assign(nil)
	// Reverting drops the adding replicas from the list as it stands
	// (Kafka's PartitionReassignmentRevert): 2,3,1.
	r.settled("the cancel to revert the partition", []int32{2, 3, 1})
	if leader, _, _ := r.state(); leader != 1 {
		t.Fatalf("leader %d after the cancel, want 1 (it stayed in the ISR)", leader)
	}
	r.resume4()
	r.progress("progress after the cancel", 1000)
	r.noReplicaOn(4)
	r.finish()
}
