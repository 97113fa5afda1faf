package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Transaction outcomes, as the producer learned them.
const (
	TxnCommitted Outcome = "committed" // EndTxn(commit) answered without error
	TxnAborted   Outcome = "aborted"   // we aborted it (or never asked to commit it): it can never commit
	TxnUnknown   Outcome = "unknown"   // EndTxn(commit) failed or timed out: committed or aborted
)

// TxnValue is one record of a transaction.
type TxnValue struct {
	Partition int32  `json:"partition"`
	Value     string `json:"value"`
	Offset    int64  `json:"offset"` // -1 unless its produce was acknowledged
}

// Txn is one transaction of a transactional producer.
type Txn struct {
	ID       int        `json:"id"`
	Producer string     `json:"producer"`
	Values   []TxnValue `json:"values"`
	Outcome  Outcome    `json:"outcome"`
	Err      string     `json:"err,omitempty"`
	StartMs  int64      `json:"start_ms"`
	EndMs    int64      `json:"end_ms"`
}

// TxnHistory is what the transactional clients did and saw, on a topic
// of their own so that the main checker's rules (every acknowledged write
// is read) stay as they are.
type TxnHistory struct {
	mu    sync.Mutex
	start time.Time

	Topic string `json:"topic"`
	Txns  []Txn  `json:"txns"`
	// Reads are the read_committed reader's polls.
	Reads []Read `json:"reads"`
	// Final is a read_committed read of every partition up to its end
	// after healing, once the last stable offset reached the high
	// watermark (or FinalStuck says where it did not).
	Final      map[int32][]Rec `json:"final"`
	FinalEnd   map[int32]int64 `json:"final_end"`
	FinalStuck map[int32]int64 `json:"final_stuck,omitempty"` // partition -> LSO that never reached the end
	// FinalIncomplete lists partitions the final read could not finish.
	FinalIncomplete []int32 `json:"final_incomplete,omitempty"`
	// Stuck counts transactions whose records the client neither
	// acknowledged nor failed within stuckAfter: the producer gave up on
	// them (closing the client) instead of waiting for ever.
	Stuck int `json:"stuck,omitempty"`
}

// stuckAfter bounds how long a transaction waits for its records'
// answers (the client's delivery timeout is 8 s).
const stuckAfter = 30 * time.Second

func newTxnHistory(topic string) *TxnHistory {
	return &TxnHistory{start: time.Now(), Topic: topic, Final: map[int32][]Rec{}, FinalEnd: map[int32]int64{}}
}

func (h *TxnHistory) now() int64 { return time.Since(h.start).Milliseconds() }

// TxnWorkload runs transactional producers (1-4 records over random
// partitions per transaction, 3 in 4 committed, the rest aborted) and one
// read_committed reader of every partition.
type TxnWorkload struct {
	c         *Cluster
	h         *TxnHistory
	parts     int32
	producers int
	seed      int64
	// stalls saves diagnostics when a producer's records stay unanswered
	// (nil: none).
	stalls *stallRecorder
}

func (w *TxnWorkload) produce(ctx context.Context, name string, wg *sync.WaitGroup) {
	rng := rand.New(rand.NewSource(w.seed + int64(len(name))*7919))
	clientLog := &ringLog{}
	newClient := func() (*kgo.Client, error) {
		return kgo.NewClient(append(w.c.clientOpts(),
			kgo.WithLogger(clientLog),
			kgo.DefaultProduceTopic(w.h.Topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.TransactionalID("chaos-"+w.h.Topic+"-"+name),
			kgo.TransactionTimeout(10*time.Second),
			kgo.RecordDeliveryTimeout(8*time.Second),
			kgo.ProduceRequestTimeout(5*time.Second),
			kgo.ProducerLinger(0),
		)...)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var cl *kgo.Client
		defer func() {
			if cl != nil {
				cl.Close()
			}
		}()
		for seq := 0; ctx.Err() == nil; seq++ {
			if cl == nil {
				var err error
				if cl, err = newClient(); err != nil {
					return
				}
			}
			t := Txn{ID: seq, Producer: name, StartMs: w.h.now()}
			if err := cl.BeginTransaction(); err != nil {
				// The client is in a state it cannot leave: start over
				// (InitProducerId fences it and aborts what it left).
				cl.Close()
				cl = nil
				continue
			}
			n := 1 + rng.Intn(4)
			var mu sync.Mutex
			var pwg sync.WaitGroup
			produceErr := false
			for i := 0; i < n; i++ {
				p := int32(rng.Intn(int(w.parts)))
				v := fmt.Sprintf("%s-t%d-%d", name, seq, i)
				t.Values = append(t.Values, TxnValue{Partition: p, Value: v, Offset: -1})
				idx := i
				pwg.Add(1)
				cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(v)}, func(r *kgo.Record, err error) {
					defer pwg.Done()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						produceErr = true
						return
					}
					t.Values[idx].Offset = r.Offset
				})
			}
			answered := make(chan struct{})
			go func() { pwg.Wait(); close(answered) }()
			stuck := false
			select {
			case <-answered:
			case <-time.After(stuckAfter):
				// franz-go never fails an idempotent record whose
				// request got no answer; do not wait for ever. The
				// transaction was never asked to commit: it aborts.
				stuck = true
				if w.stalls != nil {
					w.stalls.record(name, fmt.Sprintf("transaction %d: records unanswered after %v", seq, stuckAfter), clientLog)
				}
			}
			mu.Lock()
			commit := !produceErr && !stuck && rng.Intn(4) != 0
			mu.Unlock()
			ectx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			var err error
			if stuck {
				err = fmt.Errorf("records unanswered after %v", stuckAfter)
			} else if commit {
				err = cl.EndTransaction(ectx, kgo.TryCommit)
			} else {
				if aerr := cl.AbortBufferedRecords(ectx); aerr != nil {
					err = aerr
				} else {
					err = cl.EndTransaction(ectx, kgo.TryAbort)
				}
			}
			cancel()
			t.EndMs = w.h.now()
			switch {
			case !commit:
				// Never asked to commit: whatever happened, it cannot
				// commit (a failed abort leaves it to the coordinator's
				// timeout or the next InitProducerId, which abort it).
				t.Outcome = TxnAborted
			case err == nil:
				t.Outcome = TxnCommitted
			default:
				t.Outcome = TxnUnknown
			}
			if stuck {
				w.h.mu.Lock()
				w.h.Stuck++
				w.h.mu.Unlock()
			}
			if err != nil || produceErr || stuck {
				if err != nil {
					t.Err = err.Error()
				}
				cl.Close()
				cl = nil
				// Back off before the next client: a cluster that refuses
				// transactions must not be hammered.
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
			}
			w.h.mu.Lock()
			w.h.Txns = append(w.h.Txns, t)
			w.h.mu.Unlock()
		}
	}()
}

func (w *TxnWorkload) read(ctx context.Context, wg *sync.WaitGroup) error {
	m := map[int32]kgo.Offset{}
	for p := int32(0); p < w.parts; p++ {
		m[p] = kgo.NewOffset().At(0)
	}
	cl, err := kgo.NewClient(append(w.c.clientOpts(), kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.h.Topic: m}))...)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cl.Close()
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 500)
			fs.EachRecord(func(r *kgo.Record) {
				w.h.mu.Lock()
				w.h.Reads = append(w.h.Reads, Read{Consumer: "read-committed", Partition: r.Partition, Offset: r.Offset, Value: string(r.Value), AtMs: w.h.now()})
				w.h.mu.Unlock()
			})
		}
	}()
	return nil
}

// Run drives the transactional producers until ctx ends, with the reader
// beside them until they have stopped.
func (w *TxnWorkload) Run(ctx context.Context) error {
	var prod, cons sync.WaitGroup
	cctx, stop := context.WithCancel(context.Background())
	defer stop()
	if err := w.read(cctx, &cons); err != nil {
		return err
	}
	for i := 0; i < w.producers; i++ {
		w.produce(ctx, fmt.Sprintf("tx%d", i), &prod)
	}
	prod.Wait()
	stop()
	cons.Wait()
	return nil
}

// FinalRead waits (up to timeout) for every partition's last stable offset
// to reach its end (the coordinator completes or times out every
// transaction), then reads every partition read_committed up to the end.
func (w *TxnWorkload) FinalRead(ctx context.Context, timeout time.Duration) error {
	cl, err := kgo.NewClient(w.c.clientOpts()...)
	if err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	ends := map[int32]int64{}
	lso := map[int32]int64{}
	err = await(ctx, "the last stable offset of every partition at its end", timeout, func(ctx context.Context) bool {
		e, err := adm.ListEndOffsets(ctx, w.h.Topic)
		if err != nil || e.Error() != nil {
			return false
		}
		c, err := adm.ListCommittedOffsets(ctx, w.h.Topic)
		if err != nil || c.Error() != nil {
			return false
		}
		e.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		c.Each(func(o kadm.ListedOffset) { lso[o.Partition] = o.Offset })
		if len(ends) != int(w.parts) {
			return false
		}
		for p, end := range ends {
			if lso[p] != end {
				return false
			}
		}
		return true
	})
	cl.Close()
	if err != nil {
		if len(ends) != int(w.parts) {
			return err
		}
		w.h.FinalStuck = map[int32]int64{}
		for p, end := range ends {
			if lso[p] != end {
				w.h.FinalStuck[p] = lso[p]
			}
		}
	}
	// A read_committed fetch skips aborted records and markers, so no
	// record marks the end: write a plain record at the end of every
	// partition that is not stuck, and read until each one arrives.
	want := map[int32]int64{}
	m := map[int32]kgo.Offset{}
	pcl, perr := kgo.NewClient(append(w.c.clientOpts(), kgo.DefaultProduceTopic(w.h.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if perr != nil {
		return errors.Join(err, perr)
	}
	for p, end := range ends {
		w.h.FinalEnd[p] = end
		if _, stuck := w.h.FinalStuck[p]; stuck {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		r, perr := pcl.ProduceSync(pctx, &kgo.Record{Partition: p, Value: []byte(fmt.Sprintf("end-%d", p))}).First()
		cancel()
		if perr != nil {
			pcl.Close()
			return errors.Join(err, fmt.Errorf("end marker record on partition %d: %w", p, perr))
		}
		want[p] = r.Offset
		m[p] = kgo.NewOffset().At(0)
	}
	pcl.Close()
	if len(m) == 0 {
		return err
	}
	rcl, rerr := kgo.NewClient(append(w.c.clientOpts(), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{w.h.Topic: m}))...)
	if rerr != nil {
		return errors.Join(err, rerr)
	}
	defer rcl.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reached := map[int32]bool{}
	for len(reached) < len(want) {
		fs := rcl.PollRecords(rctx, 1000)
		if rctx.Err() != nil {
			for p := range want {
				if !reached[p] {
					w.h.FinalIncomplete = append(w.h.FinalIncomplete, p)
				}
			}
			sort.Slice(w.h.FinalIncomplete, func(i, j int) bool { return w.h.FinalIncomplete[i] < w.h.FinalIncomplete[j] })
			return errors.Join(err, fmt.Errorf("transactional final read incomplete: partitions %v", w.h.FinalIncomplete))
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			switch {
			case !ok:
			case r.Offset < end:
				w.h.Final[r.Partition] = append(w.h.Final[r.Partition], Rec{Offset: r.Offset, Value: string(r.Value)})
			default:
				reached[r.Partition] = true
			}
		})
	}
	return err
}
