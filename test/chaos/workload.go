package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Workload is the clients of one schedule.
type Workload struct {
	c         *Cluster
	h         *History
	topic     string
	parts     int32
	acks      string // "all" or "1"
	producers int
	rate      int // records per second per producer
	group     string
}

// classify maps a produce error to an outcome: only rejections that mean
// the broker did not append are failures; timeouts and lost connections
// may have been written.
func classify(err error) Outcome {
	if err == nil {
		return OK
	}
	for _, definite := range []error{kerr.InvalidRecord, kerr.MessageTooLarge, kerr.CorruptMessage, kerr.InvalidTopicException,
		kerr.RecordListTooLarge, kerr.InvalidRequiredAcks, kerr.TopicAuthorizationFailed, kerr.PolicyViolation} {
		if errors.Is(err, definite) {
			return Failed
		}
	}
	return Unknown
}

func (w *Workload) produce(ctx context.Context, name, class string, acks string, wg *sync.WaitGroup) error {
	opts := append(w.c.clientOpts(),
		kgo.DefaultProduceTopic(w.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(8*time.Second),
		kgo.ProduceRequestTimeout(5*time.Second),
		kgo.ProducerLinger(0),
	)
	if acks == "1" {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks())) // idempotent: franz-go's default
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cl.Close()
		inflight := make(chan struct{}, 64)
		tick := time.NewTicker(time.Second / time.Duration(w.rate))
		defer tick.Stop()
		var seq int
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-tick.C:
			}
			select {
			case inflight <- struct{}{}:
			default:
				continue // 64 in flight: the cluster is stuck; wait, do not pile up
			}
			p := int32(seq % int(w.parts))
			v := fmt.Sprintf("%s-%d", name, seq)
			seq++
			i := w.h.begin(name, class, p, v)
			cl.Produce(context.Background(), &kgo.Record{Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
				o := classify(err)
				off := int64(-1)
				if o == OK {
					off = r.Offset
				}
				w.h.finish(i, o, off, err)
				<-inflight
			})
		}
		fctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		cl.Flush(fctx)
		cancel()
	}()
	return nil
}

// consume runs a group member (group != "") or an assigned reader of every
// partition from offset 0.
func (w *Workload) consume(ctx context.Context, name string, group bool, wg *sync.WaitGroup) error {
	opts := append(w.c.clientOpts(), kgo.FetchMaxWait(500*time.Millisecond), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	reset := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		for _, ps := range m {
			for _, p := range ps {
				w.h.read(Read{Consumer: name, Partition: p, Reset: true})
			}
		}
	}
	if group {
		opts = append(opts, kgo.ConsumerGroup(w.group), kgo.ConsumeTopics(w.topic), kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(reset), kgo.OnPartitionsRevoked(reset), kgo.OnPartitionsLost(reset),
			kgo.SessionTimeout(6*time.Second), kgo.AutoCommitInterval(500*time.Millisecond))
	} else {
		m := map[int32]kgo.Offset{}
		for p := int32(0); p < w.parts; p++ {
			m[p] = kgo.NewOffset().At(0)
		}
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.topic: m}))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 500)
			fs.EachError(func(_ string, _ int32, err error) {
				if !errors.Is(err, context.Canceled) {
					w.h.consumerError()
				}
			})
			fs.EachRecord(func(r *kgo.Record) {
				w.h.read(Read{Consumer: name, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			})
			if group {
				cl.AllowRebalance()
			}
		}
	}()
	return nil
}

// Run drives producers and consumers until ctx ends and returns once
// every in-flight write has an outcome.
func (w *Workload) Run(ctx context.Context, control bool) error {
	var prod, cons sync.WaitGroup
	cctx, stopConsumers := context.WithCancel(context.Background())
	defer stopConsumers()
	for i := 0; i < 2; i++ {
		if err := w.consume(cctx, fmt.Sprintf("group-%d", i), true, &cons); err != nil {
			return err
		}
	}
	if err := w.consume(cctx, "assigned", false, &cons); err != nil {
		return err
	}
	for i := 0; i < w.producers; i++ {
		if err := w.produce(ctx, fmt.Sprintf("p%d", i), "main", w.acks, &prod); err != nil {
			return err
		}
	}
	if control {
		if err := w.produce(ctx, "c", "control", "1", &prod); err != nil {
			return err
		}
	}
	prod.Wait()
	stopConsumers()
	cons.Wait()
	w.h.settle()
	return nil
}

// FinalRead reads every partition from the start up to its end offset.
func (w *Workload) FinalRead(ctx context.Context, timeout time.Duration) error {
	cl, err := kgo.NewClient(w.c.clientOpts()...)
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	err = await(ctx, "end offsets of every partition", timeout, func(ctx context.Context) bool {
		ends, err = adm.ListEndOffsets(ctx, w.topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		n := 0
		ends.Each(func(kadm.ListedOffset) { n++ })
		return n == int(w.parts)
	})
	// A leader's high watermark can trail an acknowledged record for a
	// moment after the ISR is whole again (it moves with the followers'
	// next fetches): give it a few seconds to cover every acknowledged
	// main write before taking the end offsets as final. One that never
	// does is reported by the checker.
	if err == nil {
		acked := w.h.maxAcked("main")
		await(ctx, "high watermarks past every acknowledged write", 10*time.Second, func(ctx context.Context) bool {
			e, lerr := adm.ListEndOffsets(ctx, w.topic)
			if lerr != nil || e.Error() != nil {
				return false
			}
			ends = e
			covered := true
			e.Each(func(o kadm.ListedOffset) {
				if a, ok := acked[o.Partition]; ok && o.Offset <= a {
					covered = false
				}
			})
			return covered
		})
	}
	cl.Close()
	if err != nil {
		return err
	}
	want := map[int32]int64{}
	m := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		w.h.FinalEnd[o.Partition] = o.Offset
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			m[o.Partition] = kgo.NewOffset().At(0)
		}
	})
	if len(m) == 0 {
		return nil
	}
	cl, err = kgo.NewClient(append(w.c.clientOpts(), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.topic: m}))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	next := map[int32]int64{}
	for {
		done := true
		for p, end := range want {
			if next[p] < end {
				done = false
			}
		}
		if done {
			return nil
		}
		fs := cl.PollRecords(rctx, 1000)
		if rctx.Err() != nil {
			for p, end := range want {
				if next[p] < end {
					w.h.FinalIncomplete = append(w.h.FinalIncomplete, p)
				}
			}
			sort.Slice(w.h.FinalIncomplete, func(i, j int) bool { return w.h.FinalIncomplete[i] < w.h.FinalIncomplete[j] })
			return fmt.Errorf("final read incomplete: partitions %v", w.h.FinalIncomplete)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				w.h.Final[r.Partition] = append(w.h.Final[r.Partition], Rec{Offset: r.Offset, Value: string(r.Value)})
			}
			if r.Offset+1 > next[r.Partition] {
				next[r.Partition] = r.Offset + 1
			}
		})
	}
}
