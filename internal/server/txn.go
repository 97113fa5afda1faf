package server

// The transaction coordinator's wiring: __transaction_state created on
// first use like __consumer_offsets, the coordinator's shards following
// the leadership of its partitions, producer ids from the controller's
// blocks, the marker channel (WriteTxnMarkers to partition leaders, grouped
// per broker, in-process to this broker), and the KIP-890 part 1
// verification a partition leader asks of the coordinator.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/stratalog/strata/internal/broker"
	"github.com/stratalog/strata/internal/controller"
	"github.com/stratalog/strata/internal/coordinator/runtime"
	"github.com/stratalog/strata/internal/coordinator/txn"
	"github.com/stratalog/strata/internal/kclient"
	"github.com/stratalog/strata/internal/metadata"
	"github.com/stratalog/strata/internal/replication"
)

// txnServer is the node's transaction coordinator and what drives it.
type txnServer struct {
	s     *Server
	coord *txn.Coordinator
	// rpc sends the markers; verify, a few clients used in turn, the
	// verifications (each client has one request in flight per broker, so
	// neither waits behind the other).
	rpc    *kclient.Client
	verify [4]*kclient.Client
	next   atomic.Uint32
	log    *slog.Logger
	pids   pidBlocks
	tick   time.Duration
	create atomic.Bool // __transaction_state is being created

	mu  sync.Mutex
	led map[int32]led
}

// startTxns builds the transaction coordinator; it follows the leadership
// of __transaction_state partitions (follow).
func (s *Server) startTxns(logger *slog.Logger) {
	cfg := s.cfg
	parts := int32(cfg.Int64("transaction.state.log.num.partitions"))
	if t := s.loader.Image().Topics[broker.TransactionStateTopic]; t != nil {
		parts = int32(len(t.Partitions))
	}
	ms := func(key string) time.Duration { return time.Duration(cfg.Int64(key)) * time.Millisecond }
	txLog := logger.With("component", "txn-wiring")
	rpcOpts := kclient.Options{Dial: s.sec.dial, Logger: txLog}
	tx := &txnServer{s: s, rpc: kclient.NewWithOptions(forwardTimeout, rpcOpts), log: txLog, led: map[int32]led{},
		tick: ms("transaction.abort.timed.out.transaction.cleanup.interval.ms")}
	for i := range tx.verify {
		tx.verify[i] = kclient.NewWithOptions(forwardTimeout, rpcOpts)
	}
	tx.pids.alloc = func(n int64) (int64, error) { return s.link.AllocateProducerIDs(n) }
	tx.coord = txn.New(txn.Options{
		Logger:             logger,
		NumPartitions:      parts,
		MaxTimeout:         ms("transaction.max.timeout.ms"),
		IDExpiration:       ms("transactional.id.expiration.ms"),
		WriteTimeout:       ms("offsets.commit.timeout.ms"),
		AllocateProducerID: tx.pids.nextID,
		Markers:            tx,
	})
	s.tx = tx
}

// run drives the coordinator until ctx ends: the marker sender and the
// timeouts.
func (tx *txnServer) run(ctx context.Context) {
	tx.coord.Start(ctx)
	tx.coord.Run(ctx, tx.tick)
}

// close answers what waits and drops the connections.
func (tx *txnServer) close() {
	tx.coord.Close()
	tx.rpc.Close()
	for _, c := range tx.verify {
		c.Close()
	}
}

// follow runs after the partition manager applied img: the
// __transaction_state partitions this node now leads (in a new epoch) are
// loaded, the ones it stopped leading unloaded.
func (tx *txnServer) follow(img *metadata.Image, parts *replication.Manager) {
	t := img.Topics[broker.TransactionStateTopic]
	if t == nil {
		return
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for i := range int32(len(t.Partitions)) {
		var now led
		if p, _ := parts.Get(broker.TransactionStateTopic, i); p != nil && p.IsLeader() {
			now = led{p, p.LeaderEpoch()}
		}
		cur := tx.led[i]
		if now == cur {
			continue
		}
		if cur.p != nil {
			tx.coord.Unload(i)
			delete(tx.led, i)
			tx.log.Info("gave up transaction coordination", "partition", i)
		}
		if p := now.p; p != nil {
			tx.led[i] = now
			tx.coord.Load(i, now.epoch, txnLog{p})
		}
	}
}

// txnLog is a __transaction_state partition as the coordinator runtime
// uses it: appended as the leader, durable once in every in-sync replica
// (and fsynced under log.fsync=always).
type txnLog struct{ p *replication.Partition }

func (l txnLog) Append(batch []byte) (int64, error) {
	res, err := l.p.Append(batch)
	if err != nil {
		if errors.Is(err, replication.ErrNotLeader) || errors.Is(err, replication.ErrClosed) {
			return -1, fmt.Errorf("%w: %v", runtime.ErrNotCoordinator, err)
		}
		return -1, err
	}
	return res.LastOffset, nil
}

func (l txnLog) WaitDurable(ctx context.Context, offset int64) error {
	if err := l.p.Sync(offset); err != nil {
		return err
	}
	err := l.p.WaitReplicated(ctx, offset)
	if errors.Is(err, replication.ErrNotLeader) {
		return fmt.Errorf("%w: %v", runtime.ErrNotCoordinator, err)
	}
	return err
}

func (l txnLog) ForEachBatch(fn func(batch []byte) error) error { return l.p.ForEachBatch(0, fn) }

func (l txnLog) EndOffset() int64 { return l.p.LogEndOffset() }

// ensureTxnTopic creates __transaction_state in the background if it does
// not exist yet (FindCoordinator calls it, as Kafka creates the topic on
// first use).
func (tx *txnServer) ensureTopic() {
	s := tx.s
	if s.loader.Image().Topics[broker.TransactionStateTopic] != nil || !tx.create.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer tx.create.Store(false)
		if s.loader.Image().Topics[broker.TransactionStateTopic] != nil {
			return
		}
		rf := s.internalReplicationFactor("transaction.state.log.replication.factor")
		minISR := min(s.cfg.Int64("transaction.state.log.min.isr"), int64(rf))
		req := controller.CreateTopic{
			Name:              broker.TransactionStateTopic,
			Partitions:        tx.coord.NumPartitions(),
			ReplicationFactor: rf,
			Configs: map[string]*string{
				"cleanup.policy":      strPtr("compact"),
				"segment.bytes":       strPtr(s.cfg.String("transaction.state.log.segment.bytes")),
				"compression.type":    strPtr("producer"),
				"min.insync.replicas": strPtr(fmt.Sprint(minISR)),
			},
			Internal: true,
		}
		res := s.link.CreateTopics([]controller.CreateTopic{req}, false)
		if err := res[0].Err; err != nil && !errors.Is(err, controller.ErrTopicExists) && !errors.Is(err, kerr.TopicAlreadyExists) {
			tx.log.Warn("create "+broker.TransactionStateTopic, "err", err)
		}
	}()
}

// pidBlocks hands out producer ids from blocks the controller reserves.
type pidBlocks struct {
	alloc   func(count int64) (int64, error)
	mu      sync.Mutex
	at, end int64
}

func (p *pidBlocks) nextID() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at >= p.end {
		start, err := p.alloc(1000)
		if err != nil {
			return -1, fmt.Errorf("reserve producer ids: %w", err)
		}
		p.at, p.end = start, start+1000
	}
	id := p.at
	p.at++
	return id, nil
}

// errNoLeader is a marker's partition without a leader now: retried.
var errNoLeader = errors.New("partition has no leader")

// Write implements txn.MarkerChannel: the markers go to each partition's
// leader, one WriteTxnMarkers request per broker (in-process to this one),
// the brokers in parallel.
func (tx *txnServer) Write(ctx context.Context, markers []txn.Marker) [][]error {
	img := tx.s.loader.Image()
	out := make([][]error, len(markers))
	type loc struct{ i, k int }
	byLeader := map[int32][]loc{}
	for i, m := range markers {
		out[i] = make([]error, len(m.Partitions))
		for k, tp := range m.Partitions {
			t := img.Topics[tp.Topic]
			if t == nil || tp.Partition < 0 || int(tp.Partition) >= len(t.Partitions) {
				out[i][k] = txn.ErrPartitionGone
				continue
			}
			leader := t.Partitions[tp.Partition].Leader
			if b := img.Brokers[leader]; b == nil || b.Fenced {
				out[i][k] = errNoLeader
				continue
			}
			byLeader[leader] = append(byLeader[leader], loc{i, k})
		}
	}
	var wg sync.WaitGroup
	for leader, locs := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One request entry per marker, with this leader's partitions.
			req := kmsg.NewPtrWriteTxnMarkersRequest()
			req.Version = 2
			entry := map[int]int{} // marker index -> request entry
			var where [][]loc      // request entry -> partition positions
			for _, l := range locs {
				e, ok := entry[l.i]
				if !ok {
					m := markers[l.i]
					e = len(req.Markers)
					entry[l.i] = e
					req.Markers = append(req.Markers, kmsg.WriteTxnMarkersRequestMarker{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch,
						Committed: m.Commit, CoordinatorEpoch: m.CoordinatorEpoch, TransactionVersion: m.TransactionVersion})
					where = append(where, nil)
				}
				tp := markers[l.i].Partitions[l.k]
				rm := &req.Markers[e]
				if n := len(rm.Topics); n == 0 || rm.Topics[n-1].Topic != tp.Topic {
					rm.Topics = append(rm.Topics, kmsg.WriteTxnMarkersRequestMarkerTopic{Topic: tp.Topic})
				}
				t := &rm.Topics[len(rm.Topics)-1]
				t.Partitions = append(t.Partitions, tp.Partition)
				where[e] = append(where[e], l)
			}
			resp, err := tx.send(ctx, img, leader, req)
			for e, ls := range where {
				codes := map[string]map[int32]int16{}
				if err == nil && e < len(resp.Markers) && resp.Markers[e].ProducerID == req.Markers[e].ProducerID {
					for _, t := range resp.Markers[e].Topics {
						m := codes[t.Topic]
						if m == nil {
							m = map[int32]int16{}
							codes[t.Topic] = m
						}
						for _, p := range t.Partitions {
							m[p.Partition] = p.ErrorCode
						}
					}
				}
				for _, l := range ls {
					tp := markers[l.i].Partitions[l.k]
					switch code, ok := codes[tp.Topic][tp.Partition]; {
					case err != nil:
						out[l.i][l.k] = err
					case !ok:
						out[l.i][l.k] = errors.New("no answer for the partition")
					default:
						out[l.i][l.k] = markerError(code)
					}
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// markerError maps a WriteTxnMarkers partition error code as Kafka's
// TransactionMarkerRequestCompletionHandler does.
func markerError(code int16) error {
	switch code {
	case 0:
		return nil
	case kerr.TransactionCoordinatorFenced.Code:
		return fmt.Errorf("%w: %v", txn.ErrMarkerFenced, kerr.ErrorForCode(code))
	case kerr.InvalidProducerEpoch.Code:
		return fmt.Errorf("%w: %v", txn.ErrMarkerStaleEpoch, kerr.ErrorForCode(code))
	default:
		return kerr.ErrorForCode(code) // retried: not leader, not enough replicas, unknown partition ...
	}
}

// send sends req to node, in-process when it is this node.
func (tx *txnServer) send(ctx context.Context, img *metadata.Image, node int32, req kmsg.Request) (*kmsg.WriteTxnMarkersResponse, error) {
	resp, err := tx.request(ctx, tx.rpc, img, node, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.WriteTxnMarkersResponse), nil
}

// request sends req to node's Kafka listener with rpc, or through this
// broker's handlers in-process when node is this one.
func (tx *txnServer) request(ctx context.Context, rpc *kclient.Client, img *metadata.Image, node int32, req kmsg.Request) (kmsg.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	defer cancel()
	if node == tx.s.cfg.NodeID() {
		return tx.s.broker.ServeLocal(ctx, "strata-txn-coordinator", req)
	}
	b := img.Brokers[node]
	if b == nil {
		return nil, fmt.Errorf("%w: broker %d unknown", errNoLeader, node)
	}
	return rpc.Do(ctx, fmt.Sprintf("%s:%d", b.Host, b.Port), "strata-txn-coordinator", req)
}

// Verify is KIP-890 part 1 for a partition leader: it asks the
// coordinator of transactional id whether partitions are in the producer's
// ongoing transaction, per partition (nil, or TRANSACTION_ABORTABLE and
// the like as *kerr.Error). The coordinator is found as FindCoordinator
// finds it; it is asked in-process when it is this node.
func (tx *txnServer) Verify(ctx context.Context, id string, pid int64, epoch int16, parts []txn.TopicPartition) ([]error, error) {
	return tx.ask(ctx, id, pid, epoch, parts, true)
}

// ask sends AddPartitionsToTxn to id's coordinator as a partition leader
// does: verify-only (KIP-890 part 1), or adding the partitions for a
// transaction-version-2 producer (part 2).
func (tx *txnServer) ask(ctx context.Context, id string, pid int64, epoch int16, parts []txn.TopicPartition, verifyOnly bool) ([]error, error) {
	img := tx.s.loader.Image()
	t := img.Topics[broker.TransactionStateTopic]
	if t == nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	p := runtime.PartitionFor(id, int32(len(t.Partitions)))
	leader := t.Partitions[p].Leader
	if leader == tx.s.cfg.NodeID() {
		type answer struct {
			errs []error
			err  error
		}
		ch := make(chan answer, 1)
		if verifyOnly {
			tx.coord.VerifyPartitions(id, pid, epoch, parts, func(errs []error, err error) { ch <- answer{errs, err} })
		} else {
			tx.coord.AddPartitions(id, pid, epoch, parts, 2, func(err error) { ch <- answer{make([]error, len(parts)), err} })
		}
		select {
		case a := <-ch:
			return a.errs, a.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 5
	rt := kmsg.AddPartitionsToTxnRequestTransaction{TransactionalID: id, ProducerID: pid, ProducerEpoch: epoch, VerifyOnly: verifyOnly}
	for _, tp := range parts {
		if n := len(rt.Topics); n == 0 || rt.Topics[n-1].Topic != tp.Topic {
			rt.Topics = append(rt.Topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: tp.Topic})
		}
		rt.Topics[len(rt.Topics)-1].Partitions = append(rt.Topics[len(rt.Topics)-1].Partitions, tp.Partition)
	}
	req.Transactions = append(req.Transactions, rt)
	rpc := tx.verify[tx.next.Add(1)%uint32(len(tx.verify))]
	resp, err := tx.request(ctx, rpc, img, leader, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kerr.CoordinatorNotAvailable, err)
	}
	r := resp.(*kmsg.AddPartitionsToTxnResponse)
	if r.ErrorCode != 0 {
		return nil, kerr.ErrorForCode(r.ErrorCode)
	}
	codes := map[txn.TopicPartition]int16{}
	for _, res := range r.Transactions {
		for _, t := range res.Topics {
			for _, p := range t.Partitions {
				codes[txn.TopicPartition{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
			}
		}
	}
	out := make([]error, len(parts))
	for i, tp := range parts {
		code, ok := codes[tp]
		switch {
		case !ok:
			out[i] = kerr.UnknownServerError
		case code != 0:
			out[i] = kerr.ErrorForCode(code)
		}
	}
	return out, nil
}

// verifier is the broker's TxnVerifier. With
// transaction.partition.verification.enable off, batches of Produce before
// v12 are not verified (every partition is taken for in the transaction),
// but a Produce v12+ of a transaction-version-2 producer still has its
// partition added: that client sends no AddPartitionsToTxn, and without
// the add its partitions would get no marker.
func (tx *txnServer) verifier() broker.TxnVerifier {
	if !tx.s.cfg.Bool("transaction.partition.verification.enable") {
		return addOnly{tx}
	}
	return tx
}

// addOnly is the TxnVerifier with verification off: it only adds the
// partitions of transaction-version-2 producers.
type addOnly struct{ tx *txnServer }

func (addOnly) VerifyPartition(context.Context, string, int64, int16, string, int32) error {
	return nil
}

func (a addOnly) AddPartitionToTxn(ctx context.Context, id string, pid int64, epoch int16, topic string, partition int32) error {
	return a.tx.AddPartitionToTxn(ctx, id, pid, epoch, topic, partition)
}

// VerifyPartition implements broker.TxnVerifier (KIP-890 part 1) with
// Verify: nil when the partition is in the producer's ongoing transaction,
// else an error carrying the Kafka code to answer the produce with
// (PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, as Kafka's
// AddPartitionsToTxnManager answers producers).
func (tx *txnServer) VerifyPartition(ctx context.Context, id string, pid int64, epoch int16, topic string, partition int32) error {
	return tx.askPartition(ctx, id, pid, epoch, topic, partition, true)
}

// AddPartitionToTxn implements broker.TxnPartitionAdder (KIP-890 part 2):
// a Produce v12+ of a transaction-version-2 producer has its partition
// added to the transaction by the partition leader.
func (tx *txnServer) AddPartitionToTxn(ctx context.Context, id string, pid int64, epoch int16, topic string, partition int32) error {
	return tx.askPartition(ctx, id, pid, epoch, topic, partition, false)
}

func (tx *txnServer) askPartition(ctx context.Context, id string, pid int64, epoch int16, topic string, partition int32, verifyOnly bool) error {
	errs, err := tx.ask(ctx, id, pid, epoch, []txn.TopicPartition{{Topic: topic, Partition: partition}}, verifyOnly)
	if err == nil {
		err = errs[0]
	}
	if err == nil {
		return nil
	}
	code := txnErrorCode(err)
	if code == kerr.ProducerFenced {
		code = kerr.InvalidProducerEpoch
	}
	what := "verify"
	if !verifyOnly {
		what = "add"
	}
	return fmt.Errorf("%s %s-%d in the transaction of %q: %w (%w)", what, topic, partition, id, code, err)
}

// txnErrorCode is the Kafka error of a coordinator error (a *kerr.Error
// from a remote coordinator is kept).
func txnErrorCode(err error) *kerr.Error {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	for _, m := range []struct {
		err  error
		code *kerr.Error
	}{
		{txn.ErrNotCoordinator, kerr.NotCoordinator},
		{txn.ErrLoadInProgress, kerr.CoordinatorLoadInProgress},
		{txn.ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable},
		{txn.ErrConcurrentTransactions, kerr.ConcurrentTransactions},
		{txn.ErrProducerFenced, kerr.ProducerFenced},
		{txn.ErrInvalidProducerIDMap, kerr.InvalidProducerIDMapping},
		{txn.ErrTransactionAbortable, kerr.TransactionAbortable},
		{txn.ErrInvalidRequest, kerr.InvalidRequest},
	} {
		if errors.Is(err, m.err) {
			return m.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return kerr.CoordinatorNotAvailable
	}
	return kerr.UnknownServerError
}
