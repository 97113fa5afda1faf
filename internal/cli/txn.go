package cli

// strata txn: what kafka-transactions.sh offers. list and describe ask the
// transaction coordinators (ListTransactions, DescribeTransactions),
// describe-producers asks a partition's leader (DescribeProducers), and
// abort writes an abort marker for a hanging transaction on one partition
// (WriteTxnMarkers to its leader), given the producer id, epoch and
// coordinator epoch, or the transaction's start offset (looked up with
// DescribeProducers, as kafka-transactions.sh does).

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
)

func txnCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "txn",
		Short: "List and describe transactions, their producers, and abort hanging ones",
	}
	cmd.AddCommand(txnListCommand(env), txnDescribeCommand(env), txnDescribeProducersCommand(env), txnAbortCommand(env))
	return cmd
}

func txnListCommand(env *Env) *cobra.Command {
	var states []string
	var pids []int64
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List transactional ids with their producer and state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return TxnList(cmd.Context(), env, states, pids)
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "only these states (Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort)")
	cmd.Flags().Int64SliceVar(&pids, "producer-id", nil, "only these producer ids")
	addJSONFlag(cmd, env)
	return cmd
}

// TxnList prints the transactions of every coordinator.
func TxnList(ctx context.Context, env *Env, states []string, pids []int64) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	listed, err := adm.ListTransactions(ctx, pids, states)
	if err != nil && len(listed) == 0 {
		return env.wrap("list transactions", err)
	}
	type row struct {
		TransactionalID string `json:"transactional_id"`
		Coordinator     int32  `json:"coordinator"`
		ProducerID      int64  `json:"producer_id"`
		State           string `json:"state"`
	}
	out := []row{}
	t := newTable("TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE")
	for _, l := range listed.Sorted() {
		out = append(out, row{l.TxnID, l.Coordinator, l.ProducerID, l.State})
		t.row(l.TxnID, l.Coordinator, l.ProducerID, l.State)
	}
	if env.JSON {
		if werr := writeJSON(env.Stdout, out); werr != nil {
			return werr
		}
	} else if werr := t.write(env.Stdout, env.Color); werr != nil {
		return werr
	}
	if err != nil {
		// Some coordinators did not answer: say so after what did.
		return env.wrap("list transactions (partial)", err)
	}
	return nil
}

func txnDescribeCommand(env *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe TRANSACTIONAL-ID...",
		Short: "Show a transaction's state, producer, timeout, start and partitions",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return TxnDescribe(cmd.Context(), env, args)
		},
	}
	addJSONFlag(cmd, env)
	return cmd
}

// TxnDescribe prints each transactional id's state at its coordinator.
func TxnDescribe(ctx context.Context, env *Env, ids []string) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	described, err := adm.DescribeTransactions(ctx, ids...)
	if err != nil && len(described) == 0 {
		return env.wrap("describe transactions", err)
	}
	type row struct {
		TransactionalID string   `json:"transactional_id"`
		Coordinator     int32    `json:"coordinator"`
		State           string   `json:"state,omitempty"`
		ProducerID      int64    `json:"producer_id"`
		ProducerEpoch   int16    `json:"producer_epoch"`
		TimeoutMs       int32    `json:"timeout_ms"`
		Start           string   `json:"start,omitempty"`
		Partitions      []string `json:"partitions"`
		Error           string   `json:"error,omitempty"`
	}
	out := []row{}
	t := newTable("TRANSACTIONAL-ID", "COORDINATOR", "STATE", "PRODUCER-ID", "EPOCH", "TIMEOUT", "STARTED", "PARTITIONS")
	var failed []string
	for _, id := range ids {
		d, ok := described[id]
		if !ok {
			d = kadm.DescribedTransaction{TxnID: id, Coordinator: -1, Err: errors.New("no answer")}
		}
		r := row{TransactionalID: id, Coordinator: d.Coordinator, State: d.State, ProducerID: d.ProducerID, ProducerEpoch: d.ProducerEpoch,
			TimeoutMs: d.TimeoutMillis, Partitions: []string{}}
		if d.StartTimestamp > 0 {
			r.Start = time.UnixMilli(d.StartTimestamp).UTC().Format(time.RFC3339Nano)
		}
		for _, tp := range d.Topics.Sorted() {
			for _, p := range tp.Partitions {
				r.Partitions = append(r.Partitions, fmt.Sprintf("%s-%d", tp.Topic, p))
			}
		}
		if d.Err != nil {
			r.Error = errString(d.Err)
			failed = append(failed, id)
			t.row(id, d.Coordinator, r.Error, "", "", "", "", "")
		} else {
			start := r.Start
			if start == "" {
				start = "-"
			}
			t.row(id, d.Coordinator, d.State, d.ProducerID, d.ProducerEpoch, time.Duration(d.TimeoutMillis)*time.Millisecond, start, strings.Join(r.Partitions, " "))
		}
		out = append(out, r)
	}
	if env.JSON {
		if werr := writeJSON(env.Stdout, out); werr != nil {
			return werr
		}
	} else if werr := t.write(env.Stdout, env.Color); werr != nil {
		return werr
	}
	if len(failed) > 0 {
		return fmt.Errorf("describe transactions: %s failed", strings.Join(failed, ", "))
	}
	return nil
}

func txnDescribeProducersCommand(env *Env) *cobra.Command {
	var topic string
	var partition int32
	cmd := &cobra.Command{
		Use:   "describe-producers --topic T --partition P",
		Short: "Show the producers of a partition, with the start offset of their open transaction",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return TxnDescribeProducers(cmd.Context(), env, topic, partition)
		},
	}
	cmd.Flags().StringVar(&topic, "topic", "", "topic (required)")
	cmd.Flags().Int32Var(&partition, "partition", 0, "partition")
	cmd.MarkFlagRequired("topic")
	addJSONFlag(cmd, env)
	return cmd
}

// describeProducers asks the partition's leader for its producers.
func describeProducers(ctx context.Context, adm *kadm.Client, topic string, partition int32) (kadm.DescribedProducersPartition, error) {
	res, err := adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {partition: {}}})
	if err != nil {
		return kadm.DescribedProducersPartition{}, err
	}
	d, ok := res[topic].Partitions[partition]
	if !ok {
		return d, fmt.Errorf("no answer for %s-%d", topic, partition)
	}
	if d.Err != nil {
		return d, fmt.Errorf("%s-%d: %w", topic, partition, d.Err)
	}
	return d, nil
}

// TxnDescribeProducers prints a partition's active producers.
func TxnDescribeProducers(ctx context.Context, env *Env, topic string, partition int32) error {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	d, err := describeProducers(ctx, adm, topic, partition)
	if err != nil {
		return env.wrap("describe producers", err)
	}
	type row struct {
		ProducerID            int64  `json:"producer_id"`
		ProducerEpoch         int16  `json:"producer_epoch"`
		LastSequence          int32  `json:"last_sequence"`
		LastTimestamp         string `json:"last_timestamp"`
		CoordinatorEpoch      int32  `json:"coordinator_epoch"`
		CurrentTxnStartOffset int64  `json:"current_txn_start_offset"`
	}
	ps := d.ActiveProducers.Sorted()
	sort.Slice(ps, func(i, j int) bool { return ps[i].ProducerID < ps[j].ProducerID })
	out := []row{}
	t := newTable("PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "LAST-TIMESTAMP", "COORDINATOR-EPOCH", "TXN-START-OFFSET")
	for _, p := range ps {
		ts := time.UnixMilli(p.LastTimestamp).UTC().Format(time.RFC3339Nano)
		out = append(out, row{p.ProducerID, p.ProducerEpoch, p.LastSequence, ts, p.CoordinatorEpoch, p.CurrentTxnStartOffset})
		start := any(p.CurrentTxnStartOffset)
		if p.CurrentTxnStartOffset < 0 {
			start = "none"
		}
		t.row(p.ProducerID, p.ProducerEpoch, p.LastSequence, ts, p.CoordinatorEpoch, start)
	}
	if env.JSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "%s-%d, leader %v\n", topic, partition, leaderCell(d.Leader))
	return t.write(env.Stdout, env.Color)
}

// TxnAbortOptions name the transaction to abort on a partition: the
// producer id, epoch and coordinator epoch, or the start offset of its
// open transaction (the rest is looked up).
type TxnAbortOptions struct {
	Topic            string
	Partition        int32
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	StartOffset      int64
}

func txnAbortCommand(env *Env) *cobra.Command {
	o := TxnAbortOptions{ProducerID: -1, ProducerEpoch: -1, CoordinatorEpoch: -1, StartOffset: -1}
	cmd := &cobra.Command{
		Use:   "abort --topic T --partition P (--start-offset O | --producer-id ID --producer-epoch E --coordinator-epoch C)",
		Short: "Abort a hanging transaction on one partition (writes an abort marker at its leader)",
		Long: `Abort a hanging transaction on one partition: the partition's leader writes
an abort marker for the producer, which lets the last stable offset move on.
Use it for a transaction its coordinator no longer knows (strata txn
describe-producers shows the open transactions of a partition). With
--start-offset, the producer, epoch and coordinator epoch are those of the
producer whose open transaction starts there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return TxnAbort(cmd.Context(), env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Topic, "topic", "", "topic (required)")
	f.Int32Var(&o.Partition, "partition", 0, "partition")
	f.Int64Var(&o.ProducerID, "producer-id", -1, "producer id of the transaction")
	f.Int16Var(&o.ProducerEpoch, "producer-epoch", -1, "producer epoch of the transaction")
	f.Int32Var(&o.CoordinatorEpoch, "coordinator-epoch", -1, "coordinator epoch of the transaction")
	f.Int64Var(&o.StartOffset, "start-offset", -1, "start offset of the open transaction (instead of the three above)")
	cmd.MarkFlagRequired("topic")
	return cmd
}

// TxnAbort writes an abort marker for a transaction on one partition.
func TxnAbort(ctx context.Context, env *Env, o TxnAbortOptions) error {
	byOffset := o.StartOffset >= 0
	byProducer := o.ProducerID >= 0 || o.ProducerEpoch >= 0 || o.CoordinatorEpoch >= 0
	switch {
	case byOffset && byProducer:
		return errors.New("give --start-offset or the producer flags, not both")
	case !byOffset && (o.ProducerID < 0 || o.ProducerEpoch < 0 || o.CoordinatorEpoch < 0):
		return errors.New("give --start-offset, or all of --producer-id, --producer-epoch and --coordinator-epoch")
	}
	adm, cl, err := env.newAdmin()
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	if byOffset {
		d, err := describeProducers(ctx, adm, o.Topic, o.Partition)
		if err != nil {
			return env.wrap("describe producers", err)
		}
		found := false
		for _, p := range d.ActiveProducers {
			if p.CurrentTxnStartOffset == o.StartOffset {
				o.ProducerID, o.ProducerEpoch, o.CoordinatorEpoch, found = p.ProducerID, p.ProducerEpoch, p.CoordinatorEpoch, true
				break
			}
		}
		if !found {
			return fmt.Errorf("no open transaction starts at offset %d of %s-%d", o.StartOffset, o.Topic, o.Partition)
		}
	}
	res, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{ProducerID: o.ProducerID, ProducerEpoch: o.ProducerEpoch, Commit: false,
		CoordinatorEpoch: o.CoordinatorEpoch, Topics: kadm.TopicsSet{o.Topic: {o.Partition: {}}}})
	if err != nil {
		return env.wrap("write the abort marker", err)
	}
	pr, ok := res[o.ProducerID].Topics[o.Topic].Partitions[o.Partition]
	switch {
	case !ok:
		return fmt.Errorf("write the abort marker: no answer for %s-%d", o.Topic, o.Partition)
	case pr.Err != nil:
		return env.wrap("write the abort marker", pr.Err)
	}
	fmt.Fprintf(env.Stdout, "aborted the transaction of producer %d (epoch %d) on %s-%d\n", o.ProducerID, o.ProducerEpoch, o.Topic, o.Partition)
	return nil
}
