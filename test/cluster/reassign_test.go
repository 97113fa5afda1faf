package cluster

import (
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

// TestReassignUnderLoad: a partition on brokers 1,2,3 (1 leading) moves to
// 2,3,4 with AlterPartitionReassignments (KIP-455) while an acks=all
// idempotent producer keeps writing. 4 catches up and joins the ISR, the
// reassignment completes, leadership leaves 1, and 1 deletes its replica.
// Node 4 is paused when the reassignment starts, so that ListPartition-
// Reassignments and Metadata are seen reporting it in progress.
// Every acknowledged record is read back once, in order.
func TestReassignUnderLoad(t *testing.T) {
	// Three combined nodes and node 4, a broker only (never the active
	// controller: it is paused below).
	c := newRolesCluster(t, 3, 1, "")
	ctx := ctxT(t, 3*time.Minute)
	const topic = "reassigned"
	c.waitBrokers(ctx, 4)

	cl := c.client()
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
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create on 1,2,3: %v %+v", err, resp)
	}
	c.waitFullISR(topic, 1, 30*time.Second)
	if leader, _, replicas := c.partitionState(topic, 0); leader != 1 || !slices.Equal(replicas, []int32{1, 2, 3}) {
		t.Fatalf("before: leader %d replicas %v", leader, replicas)
	}

	acked := &ackedLog{acked: map[int32]map[string]int64{}}
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			prod.Produce(ctx, &kgo.Record{Value: []byte("v" + strconv.Itoa(i))}, acked.add)
			if i%200 == 199 {
				prod.Flush(ctx)
			}
		}
	}()
	count := func() int {
		acked.mu.Lock()
		defer acked.mu.Unlock()
		return len(acked.acked[0])
	}
	waitFor(t, "progress before the reassignment", 60*time.Second, func() bool { return count() >= 2000 })

	// Node 4 is paused while the reassignment starts, so that it is
	// seen in progress. The admin client is one that already knows the
	// active controller (CreateTopics went there): it sends nothing to
	// the paused node.
	adm := kadm.NewClient(cl)
	active := c.leader()
	if active < 1 {
		t.Fatal("no active controller")
	}
	c.node(4).cmd.Process.Signal(syscall.SIGSTOP)
	var areq kadm.AlterPartitionAssignmentsReq
	areq.Assign(topic, 0, []int32{2, 3, 4})
	ares, err := adm.AlterPartitionAssignments(ctx, areq)
	if err != nil || ares.Error() != nil {
		c.node(4).cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("reassign to 2,3,4: %v %v", err, ares.Error())
	}
	t.Logf("reassignment to 2,3,4 started at %d acknowledged", count())
	set := kadm.TopicsSet{}
	set.Add(topic, 0)
	lr, err := adm.ListPartitionReassignments(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := lr[topic][0]; !ok || !slices.Equal(r.Replicas, []int32{2, 3, 4, 1}) ||
		!slices.Equal(r.AddingReplicas, []int32{4}) || !slices.Equal(r.RemovingReplicas, []int32{1}) {
		t.Errorf("in progress: %+v", lr)
	}
	waitFor(t, "metadata to list the full replica set", 10*time.Second, func() bool {
		mreq := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		mreq.Topics = append(mreq.Topics, mt)
		raw, err := cl.Broker(int(active)).RetriableRequest(ctx, mreq)
		if err != nil {
			return false
		}
		m := raw.(*kmsg.MetadataResponse)
		return len(m.Topics) == 1 && len(m.Topics[0].Partitions) == 1 && slices.Equal(m.Topics[0].Partitions[0].Replicas, []int32{2, 3, 4, 1})
	})
	time.Sleep(500 * time.Millisecond)
	c.node(4).cmd.Process.Signal(syscall.SIGCONT)
	took := waitFor(t, "the reassignment to complete", 90*time.Second, func() bool {
		lr, err := adm.ListPartitionReassignments(ctx, set)
		if err != nil || len(lr) != 0 && len(lr[topic]) != 0 {
			return false
		}
		leader, isr, replicas := c.partitionState(topic, 0)
		slices.Sort(isr)
		return leader >= 2 && slices.Equal(replicas, []int32{2, 3, 4}) && slices.Equal(isr, []int32{2, 3, 4})
	})
	leader, _, _ := c.partitionState(topic, 0)
	t.Logf("reassignment completed in %v at %d acknowledged; leader %d", took, count(), leader)
	before := count()
	waitFor(t, "progress after the reassignment", 60*time.Second, func() bool { return count() >= before+1000 })
	close(stop)
	wg.Wait()
	prod.Flush(ctx)
	t.Logf("%d records acknowledged, %d produce errors", count(), acked.fails)

	// Node 1 is no longer a replica: it deletes its log.
	waitFor(t, "node 1 to delete its replica", 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(c.node(1).dir, "data", topic+"-0"))
		return os.IsNotExist(err)
	})
	checkAllPresent(t, c, topic, 1, acked)

	// A broker that is not the active controller relays the request: a
	// cancel without a reassignment gets the controller's
	// NO_REASSIGNMENT_IN_PROGRESS, not NOT_CONTROLLER.
	active = c.leader()
	for _, n := range c.nodes {
		if n.id == active {
			continue
		}
		creq := kmsg.NewPtrAlterPartitionAssignmentsRequest()
		ct := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		ct.Topic = topic
		cp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		cp.Partition = 0 // Replicas nil: cancel
		ct.Partitions = append(ct.Partitions, cp)
		creq.Topics = append(creq.Topics, ct)
		raw, err := cl.Broker(int(n.id)).RetriableRequest(ctx, creq)
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
