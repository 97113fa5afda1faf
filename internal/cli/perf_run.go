package cli

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runProducers drives o.Clients producers until o.Records or o.Duration,
// open loop when o.Rate > 0: each record has a due time and done is called
// with it, so latency counts from when the record should have been sent.
// With stamp, the due time in unix nanoseconds leads each value (for e2e).
func runProducers(ctx context.Context, env *Env, o PerfOptions, start time.Time, stamp bool,
	done func(r *kgo.Record, due time.Time, err error)) error {
	popts, err := producerOpts(o.Acks, o.Compression, true)
	if err != nil {
		return err
	}
	popts = append(popts, kgo.DefaultProduceTopic(o.Topic), kgo.ProducerLinger(o.Linger),
		kgo.RecordDeliveryTimeout(max(env.timeout(), 30*time.Second)))
	clients := make([]*kgo.Client, o.Clients)
	for i := range clients {
		if clients[i], err = env.newClient(popts...); err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return err
		}
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	size := o.RecordSize
	if stamp {
		size = max(size, 8)
	}
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.Clients) / o.Rate)
	}
	var wg sync.WaitGroup
	for i, cl := range clients {
		n := int64(-1)
		if o.Records > 0 {
			n = o.Records / int64(o.Clients)
			if int64(i) < o.Records%int64(o.Clients) {
				n++
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := interval * time.Duration(i) / time.Duration(o.Clients)
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for k := int64(0); n < 0 || k < n; k++ {
				var due time.Time
				if interval > 0 {
					due = start.Add(offset + time.Duration(k)*interval)
					if d := due.Sub(env.now()); d > 0 {
						timer.Reset(d)
						select {
						case <-ctx.Done():
							return
						case <-timer.C:
						}
					}
				} else {
					due = env.now()
				}
				if o.Duration > 0 && due.Sub(start) >= o.Duration {
					return
				}
				if ctx.Err() != nil {
					return
				}
				r := &kgo.Record{Value: payload}
				if stamp {
					v := make([]byte, size)
					copy(v, payload)
					binary.BigEndian.PutUint64(v, uint64(due.UnixNano()))
					r.Value = v
				}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) { done(r, due, err) })
			}
		}()
	}
	wg.Wait()
	for _, cl := range clients {
		if err := cl.Flush(ctx); err != nil && ctx.Err() == nil {
			return fmt.Errorf("perf: flushing: %w", err)
		}
	}
	return nil
}

// PerfProduce produces and reports acknowledgement latency and throughput.
func PerfProduce(ctx context.Context, env *Env, o PerfOptions) error {
	if err := o.validate(true); err != nil {
		return err
	}
	if err := ensureTopic(ctx, env, o.Topic, o.Partitions); err != nil {
		return err
	}
	stats := &perfStats{latency: true}
	start := env.now()
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go stats.progress(pctx, env.Stderr, o.Progress, start, env.now)
	err := runProducers(ctx, env, o, start, false, func(r *kgo.Record, due time.Time, err error) {
		if err != nil {
			stats.fail(err)
			return
		}
		stats.ok(len(r.Value)+len(r.Key), env.now().Sub(due))
	})
	stopProgress()
	if err != nil {
		return err
	}
	return writePerfReport(env, stats.report("produce", o.Topic, env.now().Sub(start), o.Rate))
}

// PerfConsume reads the topic from the start (by o.Clients consumers that
// split its partitions) and reports throughput. Without --records or
// --duration it reads up to the end offsets seen at start.
func PerfConsume(ctx context.Context, env *Env, o PerfOptions) error {
	if err := o.validate(false); err != nil {
		return err
	}
	adm, admCl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer admCl.Close()
	octx, cancel := env.opCtx(ctx)
	details, err := requireTopics(octx, env, adm, o.Topic)
	var starts, ends kadm.ListedOffsets
	if err == nil {
		if starts, err = adm.ListStartOffsets(octx, o.Topic); err == nil {
			ends, err = adm.ListEndOffsets(octx, o.Topic)
		}
		err = env.wrap("perf consume: list offsets", err)
	}
	cancel()
	if err != nil {
		return err
	}
	target := o.Records
	assign := make([]map[int32]kgo.Offset, o.Clients)
	for i, p := range details[o.Topic].Partitions.Numbers() {
		s, _ := starts.Lookup(o.Topic, p)
		e, _ := ends.Lookup(o.Topic, p)
		if o.Records == 0 && o.Duration == 0 {
			target += max(e.Offset-s.Offset, 0)
		}
		c := i % o.Clients
		if assign[c] == nil {
			assign[c] = map[int32]kgo.Offset{}
		}
		assign[c][p] = kgo.NewOffset().At(s.Offset)
	}
	stats := &perfStats{}
	start := env.now()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	if o.Duration > 0 {
		var c context.CancelFunc
		runCtx, c = context.WithTimeout(runCtx, o.Duration)
		defer c()
	}
	go stats.progress(runCtx, env.Stderr, o.Progress, start, env.now)
	if o.Records != 0 || o.Duration != 0 || target > 0 {
		var wg sync.WaitGroup
		for _, parts := range assign {
			if parts == nil {
				continue
			}
			cl, err := env.newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: parts}))
			if err != nil {
				return err
			}
			defer cl.Close()
			wg.Add(1)
			go func() {
				defer wg.Done()
				consumeLoop(runCtx, env, cl, stats, func(r *kgo.Record) { stats.ok(len(r.Value)+len(r.Key), 0) })
				if target > 0 && stats.count() >= target {
					stop()
				}
			}()
		}
		go func() { // stop when the target is reached
			t := time.NewTicker(10 * time.Millisecond)
			defer t.Stop()
			for target > 0 {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
					if stats.count() >= target {
						stop()
						return
					}
				}
			}
		}()
		wg.Wait()
	}
	stop()
	return writePerfReport(env, stats.report("consume", o.Topic, env.now().Sub(start), 0))
}

// consumeLoop polls until ctx ends or nothing arrives for --timeout.
func consumeLoop(ctx context.Context, env *Env, cl *kgo.Client, stats *perfStats, each func(*kgo.Record)) {
	for {
		pctx, cancel := env.opCtx(ctx)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		if fs.NumRecords() == 0 && pctx.Err() != nil {
			return // idle for --timeout
		}
		fs.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil && pctx.Err() == nil {
				stats.fail(fmt.Errorf("fetch %s/%d: %w", t, p, err))
			}
		})
		fs.EachRecord(each)
	}
}

// PerfE2E produces (open loop at --rate) and consumes the same records,
// reporting latency from each record's due time to its arrival at the
// consumer.
func PerfE2E(ctx context.Context, env *Env, o PerfOptions) error {
	if err := o.validate(true); err != nil {
		return err
	}
	if err := ensureTopic(ctx, env, o.Topic, o.Partitions); err != nil {
		return err
	}
	adm, admCl, err := env.newAdmin()
	if err != nil {
		return err
	}
	octx, cancel := env.opCtx(ctx)
	ends, err := adm.ListEndOffsets(octx, o.Topic)
	cancel()
	admCl.Close()
	if err != nil {
		return env.wrap("perf e2e: list end offsets", err)
	}
	parts := map[int32]kgo.Offset{}
	ends.Each(func(l kadm.ListedOffset) { parts[l.Partition] = kgo.NewOffset().At(l.Offset) })
	cons, err := env.newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: parts}),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cons.Close()

	stats := &perfStats{latency: true}
	var (
		mu       sync.Mutex
		acked    int64
		produced = make(chan struct{})
		lastRecv atomic.Int64 // unix ns of the last record consumed
	)
	consCtx, stopCons := context.WithCancel(ctx)
	defer stopCons()
	consDone := make(chan struct{})
	go func() {
		defer close(consDone)
		for {
			select {
			case <-produced:
				// Producers are done: stop once every acknowledged
				// record arrived, or after --timeout of silence.
				mu.Lock()
				all := stats.received() >= acked
				mu.Unlock()
				if all {
					return
				}
			default:
			}
			pctx, cancel := context.WithTimeout(consCtx, 200*time.Millisecond)
			fs := cons.PollFetches(pctx)
			cancel()
			if consCtx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 {
					return
				}
				due := time.Unix(0, int64(binary.BigEndian.Uint64(r.Value)))
				now := env.now()
				stats.ok(len(r.Value)+len(r.Key), now.Sub(due))
				lastRecv.Store(now.UnixNano())
			})
		}
	}()

	start := env.now()
	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go stats.progress(pctx, env.Stderr, o.Progress, start, env.now)
	err = runProducers(ctx, env, o, start, true, func(_ *kgo.Record, _ time.Time, err error) {
		if err != nil {
			stats.fail(fmt.Errorf("produce: %w", err))
			return
		}
		mu.Lock()
		acked++
		mu.Unlock()
	})
	close(produced)
	if err != nil {
		stopCons()
		<-consDone
		return err
	}
	select {
	case <-consDone:
	case <-time.After(env.timeout()):
		stopCons()
		<-consDone
		stats.fail(fmt.Errorf("consume: records still missing after %s", env.timeout()))
	}
	stopProgress()
	// The run lasts until the last record arrived, not until the
	// consumer noticed that nothing more would.
	end := env.now()
	if n := lastRecv.Load(); n != 0 {
		end = time.Unix(0, n)
	}
	return writePerfReport(env, stats.report("e2e", o.Topic, end.Sub(start), o.Rate))
}
