package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ProduceOptions are the options of `produce`.
type ProduceOptions struct {
	Topic         string
	File          string   // read lines from here instead of stdin
	KeyDelim      string   // split each line into key and value at the first delim
	Headers       []string // key=value, added to every record
	Partition     int32    // -1: the default partitioner
	Compression   string   // none, gzip, snappy, lz4, zstd
	Acks          string   // all, 1, 0
	Idempotent    bool
	IdempotentSet bool // --idempotent given explicitly (then it must not be ignored)
}

func produceCommand(env *Env) *cobra.Command {
	o := ProduceOptions{}
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce one record per line of stdin (or --file)",
		Long: `Produce one record per input line. With -k, each line is split at the first
delimiter into key and value. At the end the number of acknowledged records and
any failures are reported; the exit code is non-zero if any record failed.
Ctrl-C or SIGTERM stops reading: the lines already read are still delivered
and counted, and the exit code is non-zero (a second Ctrl-C exits at once).
If the cluster answers nothing for --timeout while records wait (a broker gone
mid-request), the command stops reading and reports those records as
unanswered: they may or may not have been written.`,
		Example: `  echo hello | strata produce orders
  printf 'k1:v1\nk2:v2\n' | strata produce orders -k :
  strata produce orders --file events.txt --compression zstd -H source=import`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeTopics(env, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Topic = args[0]
			o.IdempotentSet = cmd.Flags().Changed("idempotent")
			// Ctrl-C stops reading; what was read is delivered and
			// reported. A second Ctrl-C kills at once.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			go func() { <-ctx.Done(); stop() }()
			defer stop()
			return Produce(ctx, env, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.File, "file", "", "read records from this file instead of stdin")
	f.StringVarP(&o.KeyDelim, "key-delim", "k", "", "split each line into key and value at this delimiter")
	f.StringArrayVarP(&o.Headers, "header", "H", nil, "header key=value added to every record (repeatable)")
	f.Int32VarP(&o.Partition, "partition", "p", -1, "produce to this partition (default: by key hash, or sticky without keys)")
	f.StringVar(&o.Compression, "compression", "none", "none, gzip, snappy, lz4 or zstd")
	f.StringVar(&o.Acks, "acks", "all", "all, 1 or 0 (1 and 0 turn idempotence off)")
	f.BoolVar(&o.Idempotent, "idempotent", true, "idempotent producer (needs --acks all)")
	addJSONFlag(cmd, env)
	return cmd
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// producerOpts maps acks, compression and idempotence to kgo options.
func producerOpts(acks, compression string, idempotent bool) ([]kgo.Opt, error) {
	codec, err := compressionCodec(compression)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.ProducerBatchCompression(codec)}
	switch strings.ToLower(acks) {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
		if !idempotent {
			opts = append(opts, kgo.DisableIdempotentWrite())
		}
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return nil, fmt.Errorf("--acks %q: want all, 1 or 0", acks)
	}
	return opts, nil
}

// ProduceResult is what `produce --json` prints.
type ProduceResult struct {
	Topic        string          `json:"topic"`
	Acknowledged int64           `json:"acknowledged"`
	Failed       int64           `json:"failed"`
	Partitions   map[int32]int64 `json:"records_per_partition"`
	Errors       []string        `json:"errors,omitempty"`
	Interrupted  bool            `json:"interrupted,omitempty"` // input was not read to its end
	// Unanswered records got neither an acknowledgement nor an error
	// within --timeout of the cluster's last answer: they may or may not
	// have been written.
	Unanswered int64 `json:"unanswered,omitempty"`
}

// maxReportedErrors bounds how many individual failures are printed; the
// count is always exact.
const maxReportedErrors = 10

// Produce reads lines and produces one record per line, then reports how
// many were acknowledged and how many failed; any failure is an error. When
// ctx ends (an interrupt), reading stops, the lines already read are still
// delivered and counted, and the report says where input stopped.
func Produce(ctx context.Context, env *Env, o ProduceOptions) error {
	var hdrs []kgo.RecordHeader
	for _, h := range o.Headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return fmt.Errorf("--header %q: want key=value", h)
		}
		hdrs = append(hdrs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if o.IdempotentSet && o.Idempotent && !isAcksAll(o.Acks) {
		return fmt.Errorf("--idempotent needs --acks all (got --acks %s)", o.Acks)
	}
	popts, err := producerOpts(o.Acks, o.Compression, o.Idempotent)
	if err != nil {
		return err
	}
	in := env.Stdin
	if o.File != "" {
		f, err := os.Open(o.File)
		if err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		defer f.Close()
		in = f
	}
	batchMax, maxMessage, err := produceCheckTopic(ctx, env, o)
	if err != nil {
		return err
	}
	if o.Partition >= 0 {
		popts = append(popts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	if batchMax > 0 {
		// Batches no larger than the topic accepts: otherwise a batch
		// of lines that each fit fails as a whole (MESSAGE_TOO_LARGE),
		// and only a line too large by itself should fail.
		popts = append(popts, kgo.ProducerBatchMaxBytes(batchMax))
	}
	popts = append(popts, kgo.DefaultProduceTopic(o.Topic), kgo.RecordDeliveryTimeout(max(env.timeout(), time.Second)),
		kgo.ProduceRequestTimeout(env.timeout()))
	cl, err := env.newClient(popts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var (
		acked, failed atomic.Int64
		mu            sync.Mutex
		errs          []string
		perPartition  = map[int32]int64{}
		wg            sync.WaitGroup
		stopped       bool  // under mu: no more lines are produced
		line          int64 // under mu: lines read and produced
		pending       int64 // under mu: produced, not yet answered
		lastAnswer    time.Time
	)
	timeout := env.timeout()
	// gaveUp closes when the cluster is gone: no answer for --timeout
	// while records wait, or a record that timed out in the client.
	stalled := make(chan struct{})
	var stallOnce sync.Once
	giveUp := func() { stallOnce.Do(func() { close(stalled) }) }
	// Records are not tied to ctx: an interrupt stops reading, and what
	// was read is still delivered (or reported failed).
	produce := func(b []byte) bool {
		r := &kgo.Record{Value: b, Headers: hdrs}
		if o.Partition >= 0 {
			r.Partition = o.Partition
		}
		if o.KeyDelim != "" {
			if k, v, ok := bytes.Cut(b, []byte(o.KeyDelim)); ok {
				r.Key, r.Value = k, v
			}
		}
		mu.Lock()
		if stopped {
			mu.Unlock()
			return false
		}
		line++
		n := line
		if pending == 0 {
			lastAnswer = time.Now()
		}
		pending++
		wg.Add(1)
		mu.Unlock()
		size := len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			size += len(h.Key) + len(h.Value)
		}
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			pending--
			lastAnswer = time.Now()
			if err != nil {
				if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(err, kgo.ErrRecordRetries) {
					giveUp()
				}
				failed.Add(1)
				if len(errs) < maxReportedErrors {
					errs = append(errs, fmt.Sprintf("line %d: %v", n, describeProduceErr(err, o.Topic, size, maxMessage)))
				}
				return
			}
			acked.Add(1)
			perPartition[r.Partition]++
		})
		return true
	}
	readDone := make(chan error, 1)
	go func() {
		br := bufio.NewReaderSize(in, 64<<10)
		for {
			b, rerr := br.ReadBytes('\n')
			if len(b) > 0 && !produce(trimEOL(b)) {
				readDone <- nil
				return
			}
			if rerr != nil {
				if errors.Is(rerr, io.EOF) {
					rerr = nil
				}
				readDone <- rerr
				return
			}
		}
	}()
	// kgo cannot time out an idempotent record whose request got no
	// answer (a broker killed mid-request): it would retry it forever.
	// The command bounds it instead: when records wait and the cluster
	// has not answered any for --timeout, it stops reading and reports
	// them as unanswered.
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		tick := time.NewTicker(max(timeout/8, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-watchDone:
				return
			case <-tick.C:
			}
			mu.Lock()
			stall := pending > 0 && time.Since(lastAnswer) > timeout
			mu.Unlock()
			if stall {
				giveUp()
				return
			}
		}
	}()
	var readErr error
	interrupted, gaveUp, unread := false, false, ""
	select {
	case readErr = <-readDone:
	case <-ctx.Done():
		interrupted = true
	case <-stalled:
		gaveUp, unread = true, "; the rest of the input was not read"
	}
	mu.Lock()
	stopped = true
	lines := line
	mu.Unlock()
	delivered := make(chan struct{})
	go func() { wg.Wait(); close(delivered) }()
	select {
	case <-delivered:
	case <-stalled:
		gaveUp = true
	}

	mu.Lock()
	res := ProduceResult{Topic: o.Topic, Acknowledged: acked.Load(), Failed: failed.Load(), Partitions: maps.Clone(perPartition),
		Errors: slices.Clone(errs), Interrupted: interrupted, Unanswered: pending}
	mu.Unlock()
	if env.JSON {
		if err := writeJSON(env.Stdout, res); err != nil {
			return err
		}
	} else {
		for _, e := range errs {
			fmt.Fprintln(env.Stderr, "strata: "+e)
		}
		if more := res.Failed - int64(len(errs)); more > 0 {
			fmt.Fprintf(env.Stderr, "strata: ... and %d more failures\n", more)
		}
		if res.Unanswered > 0 {
			fmt.Fprintf(env.Stdout, "produced %d records to %s: %d acknowledged, %d failed, %d unanswered\n", lines, o.Topic, res.Acknowledged, res.Failed, res.Unanswered)
		} else {
			fmt.Fprintf(env.Stdout, "produced %d records to %s: %d acknowledged, %d failed\n", lines, o.Topic, res.Acknowledged, res.Failed)
		}
	}
	switch {
	case gaveUp && res.Unanswered > 0:
		return fmt.Errorf("produce: the cluster did not answer for %v: %d of %d records unanswered (they may or may not have been written), %d acknowledged, %d failed%s",
			timeout, res.Unanswered, lines, res.Acknowledged, res.Failed, unread)
	case readErr != nil:
		return fmt.Errorf("produce: reading input after %d lines: %w", lines, readErr)
	case res.Failed > 0:
		first := ""
		if len(errs) > 0 {
			first = ": first: " + errs[0]
		}
		return fmt.Errorf("produce: %d of %d records failed%s", res.Failed, lines, first)
	case interrupted:
		return fmt.Errorf("produce: interrupted after %d lines (all %d acknowledged); the rest of the input was not read", lines, res.Acknowledged)
	}
	return nil
}

// produceCheckTopic fails with a clear error if the topic or partition does
// not exist (instead of every record failing after retries), and returns
// the topic's max.message.bytes as a batch size bound for kgo (0: unknown)
// and as it is (for error messages; 0: unknown).
func produceCheckTopic(ctx context.Context, env *Env, o ProduceOptions) (batchMax int32, maxMessage int64, err error) {
	adm, cl, err := env.newAdmin()
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ctx, cancel := env.opCtx(ctx)
	defer cancel()
	details, err := requireTopics(ctx, env, adm, o.Topic)
	if err != nil {
		if errors.Is(err, errNoSuchTopic) {
			return 0, 0, fmt.Errorf("produce: %w; create it first: strata topic create %s", err, o.Topic)
		}
		return 0, 0, fmt.Errorf("produce: %w", err)
	}
	if o.Partition >= 0 {
		if _, ok := details[o.Topic].Partitions[o.Partition]; !ok {
			return 0, 0, fmt.Errorf("produce: topic %q has no partition %d (it has %d)", o.Topic, o.Partition, len(details[o.Topic].Partitions))
		}
	}
	// Best effort: not every cluster lets every client describe configs.
	rcs, err := adm.DescribeTopicConfigs(ctx, o.Topic)
	if err != nil {
		return 0, 0, nil
	}
	rc, err := rcs.On(o.Topic, nil)
	if err != nil || rc.Err != nil {
		return 0, 0, nil
	}
	for _, c := range rc.Configs {
		if c.Key != "max.message.bytes" {
			continue
		}
		n, err := strconv.ParseInt(c.MaybeValue(), 10, 64)
		if err != nil {
			return 0, 0, nil
		}
		// kgo takes [512, 1 GiB]; below 512 lines too large by
		// themselves still fail at the broker, one by one.
		return int32(min(max(n, 512), 1<<30)), n, nil
	}
	return 0, 0, nil
}

// describeProduceErr says what a failed record means to the user: a record
// too large names its size, the limit and how to raise it.
func describeProduceErr(err error, topic string, size int, maxMessage int64) error {
	if errors.Is(err, kerr.MessageTooLarge) {
		limit := "the topic's max.message.bytes"
		if maxMessage > 0 {
			limit = fmt.Sprintf("the topic's max.message.bytes (%d, counting the batch header)", maxMessage)
		}
		return fmt.Errorf("a record of %d bytes is larger than %s; raise it with: strata topic alter-config %s -c max.message.bytes=N (MESSAGE_TOO_LARGE)", size, limit, topic)
	}
	return describeErr(err)
}

func isAcksAll(acks string) bool {
	a := strings.ToLower(acks)
	return a == "all" || a == "-1"
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
