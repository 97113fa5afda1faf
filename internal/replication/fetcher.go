package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/kclient"
)

// leaderMovedBackoff is how soon a partition the leader did not know as
// its own (yet) is fetched again.
const leaderMovedBackoff = 50 * time.Millisecond

// errLeaderMoved marks a fetch answer that only says the two brokers'
// metadata differ for a moment.
var errLeaderMoved = errors.New("leader and follower disagree on leadership")

// ReplicaClientID is the client id of a follower's fetches.
const ReplicaClientID = "strata-replica-fetcher"

// fetchVersion is the Fetch version followers send: the last one that
// names topics and carries ReplicaID as a field (v15 moves it to
// ReplicaState), with LastFetchedEpoch (v12+) for truncation.
const fetchVersion = 12

// FetcherConfig tunes the followers' fetching (Kafka's replica.fetch.*).
type FetcherConfig struct {
	MaxWait          time.Duration // replica.fetch.wait.max.ms
	PartitionMaxByte int32         // replica.fetch.max.bytes
	ResponseMaxBytes int32         // replica.fetch.response.max.bytes
	Backoff          time.Duration // replica.fetch.backoff.ms
	// Dial connects to leaders (TLS, and the SASL mechanism, of the
	// inter-broker listener); nil means plain TCP.
	Dial kclient.DialFunc
}

func (c *FetcherConfig) withDefaults() FetcherConfig {
	out := *c
	if out.MaxWait <= 0 {
		out.MaxWait = 500 * time.Millisecond
	}
	if out.PartitionMaxByte <= 0 {
		out.PartitionMaxByte = 1 << 20
	}
	if out.ResponseMaxBytes <= 0 {
		out.ResponseMaxBytes = 10 << 20
	}
	if out.Backoff <= 0 {
		out.Backoff = time.Second
	}
	return out
}

// fetcher is the follower side of replication for every partition this
// broker follows from one leader broker: one long-polling Fetch at a time
// over its own connection (Kafka's replica fetcher thread). Records are
// appended verbatim with the leader's offsets and epochs.
type fetcher struct {
	nodeID int32
	leader int32
	cfg    FetcherConfig
	log    *slog.Logger
	client *kclient.Client
	quota  *quota // the broker's follower throttle, shared by its fetchers
	// session is the incremental fetch session with the leader; only
	// the run goroutine uses it, as respBuf: every response is read into
	// it, and handled (appended) before the next fetch reuses it.
	session fetchSession
	respBuf []byte

	mu    sync.Mutex
	addr  string
	parts map[TopicPartition]*Partition
	// epochs are the partitions' leader epochs when added.
	epochs map[TopicPartition]int32
	delay  map[TopicPartition]time.Time // partitions backing off after an error
	wake   chan struct{}
	// interrupt ends the fetch in flight (nil when none): a partition
	// added meanwhile is fetched at once instead of after the leader's
	// long poll.
	interrupt context.CancelFunc

	cancel context.CancelFunc
	done   chan struct{}
}

func newFetcher(nodeID, leader int32, addr string, cfg FetcherConfig, q *quota, logger *slog.Logger) *fetcher {
	log := logger.With("component", "replica-fetcher", "leader", leader)
	f := &fetcher{nodeID: nodeID, leader: leader, addr: addr, cfg: cfg, quota: q, log: log,
		client: kclient.NewWithOptions(cfg.MaxWait+30*time.Second, kclient.Options{Dial: cfg.Dial, Logger: log}),
		parts:  map[TopicPartition]*Partition{}, epochs: map[TopicPartition]int32{}, delay: map[TopicPartition]time.Time{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go f.run(ctx)
	return f
}

func (f *fetcher) setAddr(addr string) {
	f.mu.Lock()
	if addr != f.addr && f.interrupt != nil {
		f.interrupt() // the fetch in flight went to the old address
	}
	f.addr = addr
	f.mu.Unlock()
}

// add makes the fetcher replicate tp. A partition it already fetches in
// the same leader epoch is left alone: the manager calls add for every
// followed partition on every metadata image, and interrupting the fetch
// in flight each time would cost a new connection and a full fetch
// session for nothing.
func (f *fetcher) add(tp TopicPartition, p *Partition) {
	epoch := p.LeaderEpoch()
	f.mu.Lock()
	if cur, ok := f.parts[tp]; ok && cur == p && f.epochs[tp] == epoch {
		f.mu.Unlock()
		return
	}
	f.parts[tp] = p
	f.epochs[tp] = epoch
	delete(f.delay, tp)
	if f.interrupt != nil {
		f.interrupt()
	}
	f.mu.Unlock()
	f.poke()
}

func (f *fetcher) remove(tp TopicPartition) {
	f.mu.Lock()
	delete(f.parts, tp)
	delete(f.epochs, tp)
	delete(f.delay, tp)
	f.mu.Unlock()
}

func (f *fetcher) empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts) == 0
}

func (f *fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fetcher) stop() {
	f.cancel()
	<-f.done
	f.client.Close()
}

func (f *fetcher) run(ctx context.Context) {
	defer close(f.done)
	failures := 0
	for ctx.Err() == nil {
		req, parts, addr, next := f.build()
		if len(parts) == 0 {
			f.sleep(ctx, next)
			continue
		}
		fctx, interrupt := context.WithCancel(ctx)
		f.mu.Lock()
		f.interrupt = interrupt
		f.mu.Unlock()
		resp, err := f.client.DoInto(fctx, addr, ReplicaClientID, req, &f.respBuf)
		f.mu.Lock()
		f.interrupt = nil
		f.mu.Unlock()
		interrupted := fctx.Err() != nil
		interrupt()
		if err != nil {
			// The leader may or may not have taken the fetch: the
			// session starts over.
			f.session.failed()
			if ctx.Err() != nil {
				return
			}
			if interrupted {
				continue // a partition was added: fetch again with it
			}
			failures++
			if failures == 1 || failures%30 == 0 {
				f.log.Warn("fetch from leader failed; retrying", "addr", addr, "failures", failures, "err", err)
			}
			f.sleep(ctx, time.Now().Add(f.cfg.Backoff))
			continue
		}
		failures = 0
		fr := resp.(*kmsg.FetchResponse)
		if !f.session.answered(fr) {
			if sessionError(fr.ErrorCode) {
				// Evicted, or out of step: a full fetch at once.
				f.log.Info("fetch session refused by the leader; starting a new one", "session", req.SessionID, "epoch", req.SessionEpoch, "err", kerr.ErrorForCode(fr.ErrorCode))
				continue
			}
			f.log.Warn("fetch from leader refused", "err", kerr.ErrorForCode(fr.ErrorCode))
			f.sleep(ctx, time.Now().Add(f.cfg.Backoff))
			continue
		}
		f.handle(fr, parts)
	}
}

// sleep waits until t, a poke, or the end.
func (f *fetcher) sleep(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if t.IsZero() {
		d = time.Hour
	}
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
	case <-f.wake:
	case <-tm.C:
	}
}

// fetching is a partition in a fetch in flight, with what the fetch asked:
// a response is applied only if the partition is still there (same leader
// epoch, same log end), so a response from an earlier leader, or one that
// crossed a truncation, is dropped rather than appended.
type fetching struct {
	p      *Partition
	epoch  int32
	offset int64
}

// throttleRecheck is how soon a fetcher that left out throttled
// partitions looks at its quota again.
const throttleRecheck = 100 * time.Millisecond

// build makes the next fetch over the partitions not backing off and not
// held back by the follower throttle (Kafka's shouldFollowerThrottle: an
// out-of-sync replica in follower.replication.throttled.replicas while the
// broker's follower.replication.throttled.rate is exceeded). next is when
// the earliest left-out partition is due, zero if none.
func (f *fetcher) build() (*kmsg.FetchRequest, map[TopicPartition]fetching, string, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var next time.Time
	overQuota := f.quota != nil && f.quota.exceeded()
	req := kmsg.NewPtrFetchRequest()
	req.Version = fetchVersion
	req.ReplicaID = f.nodeID
	req.MaxWaitMillis = int32(f.cfg.MaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = f.cfg.ResponseMaxBytes
	parts := make(map[TopicPartition]fetching, len(f.parts))
	list := make([]fetchPart, 0, len(f.parts))
	for tp, p := range f.parts {
		if d, ok := f.delay[tp]; ok {
			if d.After(now) {
				if next.IsZero() || d.Before(next) {
					next = d
				}
				continue
			}
			delete(f.delay, tp)
		}
		if overQuota && p.followerThrottled() && !p.followerInSync() {
			if d := now.Add(throttleRecheck); next.IsZero() || d.Before(next) {
				next = d
			}
			continue
		}
		fp := fetchPart{tp: tp, id: p.TopicID, params: fetchParams{maxBytes: f.cfg.PartitionMaxByte}}
		fp.params.offset, fp.params.lastEpoch, fp.params.leaderEpoch, fp.params.logStart = p.fetchState()
		parts[tp] = fetching{p, fp.params.leaderEpoch, fp.params.offset}
		list = append(list, fp)
	}
	// A stable order, so that a full fetch lists partitions alike each time.
	slices.SortFunc(list, func(a, b fetchPart) int {
		if c := strings.Compare(a.tp.Topic, b.tp.Topic); c != 0 {
			return c
		}
		return cmp.Compare(a.tp.Partition, b.tp.Partition)
	})
	if len(list) > 0 {
		f.session.fill(req, f.addr, list)
	}
	if !next.IsZero() {
		// A partition backing off is due before the long poll would end:
		// poll no longer, so that it is fetched when due.
		wait := max(time.Until(next), 0)
		req.MaxWaitMillis = int32(min(wait, f.cfg.MaxWait) / time.Millisecond)
	}
	return req, parts, f.addr, next
}

// handle applies a fetch response to the partitions it was for.
func (f *fetcher) handle(resp *kmsg.FetchResponse, parts map[TopicPartition]fetching) {
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			tp := TopicPartition{rt.Topic, rp.Partition}
			fp, ok := parts[tp]
			if !ok {
				continue
			}
			if f.quota != nil && fp.p.followerThrottled() {
				f.quota.record(int64(len(rp.RecordBatches)))
			}
			if err := fp.apply(rp); err != nil {
				level, backoff := slog.LevelWarn, f.cfg.Backoff
				if errors.Is(err, errLeaderMoved) {
					// The leader has not applied the same metadata yet
					// (a new topic, a new epoch: it will in a moment), or
					// leadership moved on and the next image says so.
					level, backoff = slog.LevelDebug, min(backoff, leaderMovedBackoff)
				}
				if errors.Is(err, ErrStorage) {
					level = slog.LevelDebug // the partition logged it when it went into error
				}
				f.log.Log(context.Background(), level, "replicating partition; backing off", "partition", tp.DirName(), "after", backoff, "err", err)
				f.mu.Lock()
				if _, ok := f.parts[tp]; ok {
					f.delay[tp] = time.Now().Add(backoff)
				}
				f.mu.Unlock()
			}
		}
	}
}

// apply takes one partition's answer, unless the partition moved on since
// the fetch was built.
func (fp fetching) apply(rp *kmsg.FetchResponseTopicPartition) error {
	p := fp.p
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	if p.IsLeader() || p.LeaderEpoch() != fp.epoch || p.LogEndOffset() != fp.offset {
		return nil
	}
	switch err := kerr.ErrorForCode(rp.ErrorCode); err {
	case nil:
	case kerr.OffsetOutOfRange:
		offset := p.LogEndOffset()
		if rp.LogStartOffset > offset {
			return p.resetTo(rp.LogStartOffset)
		}
		if rp.HighWatermark >= 0 && rp.HighWatermark < offset {
			return p.truncateTo(rp.HighWatermark)
		}
		return fmt.Errorf("fetch offset %d out of range at the leader (log start %d)", offset, rp.LogStartOffset)
	case kerr.NotLeaderForPartition, kerr.FencedLeaderEpoch, kerr.UnknownLeaderEpoch, kerr.UnknownTopicOrPartition, kerr.UnknownTopicID:
		// The leader has not caught up with the metadata this follower
		// has, or leadership moved: the metadata image will tell.
		return fmt.Errorf("%w: %w", errLeaderMoved, err)
	default:
		return fmt.Errorf("leader answered %w", err)
	}
	if de := rp.DivergingEpoch; de.Epoch >= 0 || de.EndOffset >= 0 {
		to := min(de.EndOffset, p.localEndOffsetForEpoch(de.Epoch))
		if de.Epoch < 0 {
			to = max(de.EndOffset, 0)
		}
		return p.truncateTo(to)
	}
	return p.appendAsFollower(rp.RecordBatches, rp.HighWatermark)
}

// brokerAddr is a broker's host:port.
func brokerAddr(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
