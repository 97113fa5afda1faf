package inproc

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMillionRecordsLeaderRestart: three nodes, a topic of three partitions
// with three replicas, one idempotent acks=all producer sending 1M small
// records (value = its sequence number, partition = sequence mod 3) in
// large batches. After a third of them are acknowledged the leader of
// partition 0 is stopped; it is started again once a new leader has taken
// over and more records are in, and rejoins the ISR while the load goes
// on. Then every partition is read from the start: every acknowledged
// record must be there exactly once, at the offset it was acknowledged
// with, and in the order it was sent; nothing else may be there. The
// consumer (franz-go) must have read through incremental fetch sessions,
// and, the ISRs settled, 50 more acks=all writes must be replicated
// through the followers' incremental sessions alone.
func TestMillionRecordsLeaderRestart(t *testing.T) {
	total := 1_000_000
	if testing.Short() {
		total = 200_000
	}
	const parts = 3
	c := newCluster(t, 3, map[string]string{"replica.lag.time.max.ms": "5000"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	adm := kadm.NewClient(c.client())
	waitFor(t, "3 brokers", 30*time.Second, func() bool {
		md, err := adm.Metadata(ctx)
		return err == nil && len(md.Brokers) == 3
	})
	const topic = "million"
	if r, err := adm.CreateTopic(ctx, parts, 3, nil, topic); err != nil || r.Err != nil {
		t.Fatalf("create topic: %v %v", err, r.Err)
	}
	fullISR := func() bool {
		ps := partitions(ctx, adm, topic)
		if len(ps) != parts {
			return false
		}
		for _, p := range ps {
			if p.Leader < 0 || len(p.ISR) != 3 {
				return false
			}
		}
		return true
	}
	waitFor(t, "full ISR", 30*time.Second, fullISR)

	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(200_000), kgo.RecordDeliveryTimeout(90*time.Second))

	// acked[p][i] is the offset of the i-th record sent to partition p
	// (sequence i*parts+p), -1 until acknowledged, -2 if it failed.
	var acked [parts][]int64
	for p := range acked {
		acked[p] = make([]int64, (total+parts-1-p)/parts)
		for i := range acked[p] {
			acked[p][i] = -1
		}
	}
	var mu sync.Mutex
	var nAcked, nFailed atomic.Int64
	var firstErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for seq := range total {
			v := binary.BigEndian.AppendUint64(nil, uint64(seq))
			r := &kgo.Record{Value: v, Partition: int32(seq % parts)}
			prod.Produce(ctx, r, func(r *kgo.Record, err error) {
				seq := binary.BigEndian.Uint64(r.Value)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					acked[r.Partition][seq/parts] = -2
					if firstErr == nil {
						firstErr = err
					}
					nFailed.Add(1)
					return
				}
				acked[r.Partition][seq/parts] = r.Offset
				nAcked.Add(1)
			})
		}
		prod.Flush(ctx)
	}()
	progress := func(n int64, what string) {
		waitFor(t, fmt.Sprintf("%d records acknowledged (%s)", n, what), 90*time.Second, func() bool {
			return nAcked.Load()+nFailed.Load() >= n
		})
	}

	start := time.Now()
	progress(int64(total/3), "before the stop")
	leader := partitions(ctx, adm, topic)[0].Leader
	if leader < 1 {
		t.Fatalf("partition 0 has no leader")
	}
	t.Logf("%d acknowledged after %v; stopping node %d, leader of partition 0", nAcked.Load(), time.Since(start).Round(time.Millisecond), leader)
	c.node(leader).stop()
	waitFor(t, "a new leader of partition 0", 30*time.Second, func() bool {
		p, ok := partitions(ctx, adm, topic)[0]
		return ok && p.Leader > 0 && p.Leader != leader
	})
	progress(int64(total/2), "while the leader is down")
	t.Logf("%d acknowledged after %v; restarting node %d", nAcked.Load(), time.Since(start).Round(time.Millisecond), leader)
	c.node(leader).start()
	waitFor(t, "node back in every ISR", 60*time.Second, fullISR)
	t.Logf("node %d back in every ISR after %v (%d acknowledged)", leader, time.Since(start).Round(time.Millisecond), nAcked.Load())
	<-done
	t.Logf("%d acknowledged, %d failed in %v", nAcked.Load(), nFailed.Load(), time.Since(start).Round(time.Millisecond))
	if nFailed.Load() > 0 {
		t.Errorf("%d records failed; first: %v", nFailed.Load(), firstErr)
	}

	// Read everything back.
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxBytes(16<<20))
	next := [parts]int{} // index in acked[p] of the next record expected
	var read int64
	for read < want {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", read, want, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			read++
			p := r.Partition
			seq := binary.BigEndian.Uint64(r.Value)
			if int(seq)%parts != int(p) {
				t.Fatalf("record %d in partition %d", seq, p)
			}
			i := int(seq / parts)
			// Records that failed may be absent; any other gap, a
			// duplicate or a record out of order is a loss or a bug.
			for next[p] < i && acked[p][next[p]] == -2 {
				next[p]++
			}
			if i != next[p] {
				t.Fatalf("partition %d offset %d holds record #%d, want #%d (a duplicate, a loss or a reordering)", p, r.Offset, i, next[p])
			}
			if o := acked[p][i]; o >= 0 && o != r.Offset {
				t.Fatalf("partition %d: record #%d at offset %d, acknowledged at %d", p, i, r.Offset, o)
			}
			next[p]++
		})
	}
	for p := range parts {
		for i := next[p]; i < len(acked[p]); i++ {
			if acked[p][i] >= 0 {
				t.Fatalf("partition %d: acknowledged record #%d (offset %d) missing", p, i, acked[p][i])
			}
		}
	}
	t.Logf("read back %d records in order", read)

	// franz-go's consumer above read through incremental sessions too.
	consumerIncremental := int64(0)
	for _, nd := range c.nodes {
		st := nd.srv.FetchSessions()
		consumerIncremental += st.Incremental - st.FollowerIncremental
	}
	if consumerIncremental == 0 {
		t.Errorf("the franz-go consumer made no incremental fetch")
	}

	// The followers fetch through their sessions: with the ISRs settled,
	// each acks=all write below takes incremental fetches from both
	// followers of its leader, and no full one.
	p1 := partitions(ctx, adm, topic)[1].Leader
	lead := c.node(p1).srv
	before := lead.FetchSessions()
	one := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 50 {
		if err := one.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte(fmt.Sprint("quiet-", i))}).FirstErr(); err != nil {
			t.Fatalf("quiet produce %d: %v", i, err)
		}
	}
	after := lead.FetchSessions()
	t.Logf("node %d (leader of partition 1) fetch sessions: %+v, before the quiet writes %+v", p1, after, before)
	if after.PrivilegedSessions < 2 || after.FollowerFull != before.FollowerFull || after.FollowerIncremental-before.FollowerIncremental < 50 {
		t.Errorf("50 acks=all writes took %d incremental and %d full follower fetches at node %d (%d follower sessions): want at least 50 incremental, no full one",
			after.FollowerIncremental-before.FollowerIncremental, after.FollowerFull-before.FollowerFull, p1, after.PrivilegedSessions)
	}
}
